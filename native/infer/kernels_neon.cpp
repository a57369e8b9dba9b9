// ARM NEON kernel (aarch64 only): vcnt counts bits per byte; vpadal folds byte counts into 16-bit
// lanes (each step adds at most 16 per lane, so up to 4095 words before a flush to 32 bits).
#if defined(__aarch64__)
#include <arm_neon.h>

#include <algorithm>
#include <type_traits>

#include "infer/kernels.h"

namespace bnn::infer::detail {

void bgemm_neon(const uint64_t* patches, int64_t P, int64_t K, const uint64_t* w, int32_t* pop, int64_t ldo) {
  constexpr int kP = 2, kV = kBlock / 2;  // 8 q registers of 2 x 64 bits per pixel
  auto run = [&](auto pixels_tag, int64_t p0) {
    constexpr int np = decltype(pixels_tag)::value;
    const uint64_t* a = patches + p0 * K;
    uint32x4_t total[np][kV];
    for (int i = 0; i < np; ++i)
      for (int j = 0; j < kV; ++j) total[i][j] = vdupq_n_u32(0);
    for (int64_t k0 = 0; k0 < K; k0 += 4095) {
      const int64_t k1 = std::min<int64_t>(K, k0 + 4095);
      uint16x8_t acc[np][kV];
      for (int i = 0; i < np; ++i)
        for (int j = 0; j < kV; ++j) acc[i][j] = vdupq_n_u16(0);
      for (int64_t k = k0; k < k1; ++k) {
        uint64x2_t wv[kV];
        for (int j = 0; j < kV; ++j) wv[j] = vld1q_u64(w + k * kBlock + 2 * j);
        for (int i = 0; i < np; ++i) {
          const uint64x2_t b = vdupq_n_u64(a[i * K + k]);
          for (int j = 0; j < kV; ++j) {
            acc[i][j] = vpadalq_u8(acc[i][j], vcntq_u8(vreinterpretq_u8_u64(veorq_u64(b, wv[j]))));
          }
        }
      }
      for (int i = 0; i < np; ++i)
        for (int j = 0; j < kV; ++j) total[i][j] = vpadalq_u16(total[i][j], acc[i][j]);
    }
    for (int i = 0; i < np; ++i) {
      for (int j = 0; j < kV; ++j) {
        // Lanes 0,1 hold the first 64-bit word's halves, lanes 2,3 the second's.
        const uint64x2_t s = vpaddlq_u32(total[i][j]);
        pop[(p0 + i) * ldo + 2 * j] = static_cast<int32_t>(vgetq_lane_u64(s, 0));
        pop[(p0 + i) * ldo + 2 * j + 1] = static_cast<int32_t>(vgetq_lane_u64(s, 1));
      }
    }
  };
  int64_t p = 0;
  for (; p + kP <= P; p += kP) run(std::integral_constant<int, kP>{}, p);
  for (; p < P; ++p) run(std::integral_constant<int, 1>{}, p);
}

}  // namespace bnn::infer::detail
#endif
