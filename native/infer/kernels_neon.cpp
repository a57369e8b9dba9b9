// ARM NEON kernel (aarch64 only): vcnt counts bits per byte; vpadal folds byte counts into 16-bit
// lanes (each word adds at most 16 per lane, so up to 4095 words before a flush to 32 bits).
#if defined(__aarch64__)
#include <arm_neon.h>

#include <algorithm>
#include <type_traits>

#include "infer/kernels.h"

namespace bnn::infer::detail {

void bgemm_neon(const Windows& win, int64_t P, const uint64_t* w, int32_t* pop, int64_t ldo) {
  constexpr int kV = kBlock / 2;  // 8 q registers of 2 x 64 bits
  for (int64_t p = 0; p < P; ++p) {
    uint32x4_t total[kV];
    uint16x8_t acc[kV];
    for (int j = 0; j < kV; ++j) total[j] = vdupq_n_u32(0), acc[j] = vdupq_n_u16(0);
    int run = 0;
    const uint64_t* wk = w;
    for (int kh = 0; kh < 3; ++kh) {
      const uint64_t* a = win.base + p * win.pixel_stride + kh * win.row_stride;
      for (int64_t q = 0; q < win.row_words; ++q, wk += kBlock) {
        const uint64x2_t b = vdupq_n_u64(a[q]);
        for (int j = 0; j < kV; ++j) acc[j] = vpadalq_u8(acc[j], vcntq_u8(vreinterpretq_u8_u64(veorq_u64(b, vld1q_u64(wk + 2 * j)))));
        if (++run == 4095) {  // 16-bit lanes gain at most 16 a word
          for (int j = 0; j < kV; ++j) total[j] = vpadalq_u16(total[j], acc[j]), acc[j] = vdupq_n_u16(0);
          run = 0;
        }
      }
    }
    for (int j = 0; j < kV; ++j) {
      total[j] = vpadalq_u16(total[j], acc[j]);
      // Lanes 0,1 hold the first 64-bit word's halves, lanes 2,3 the second's.
      const uint64x2_t s = vpaddlq_u32(total[j]);
      pop[p * ldo + 2 * j] = static_cast<int32_t>(vgetq_lane_u64(s, 0));
      pop[p * ldo + 2 * j + 1] = static_cast<int32_t>(vgetq_lane_u64(s, 1));
    }
  }
}

}  // namespace bnn::infer::detail
#endif
