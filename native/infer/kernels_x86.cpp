// AVX2 and AVX-512 kernels. Each function carries its own target attribute (no global -march), so
// this file compiles for any x86-64 and the caller picks at run time (isa.h).
#if defined(__x86_64__)
#include <immintrin.h>

// GCC 12 warns inside _mm512_cvtepi64_epi32 itself (its undefined-vector idiom), not in this code:
// as -Wmaybe-uninitialized, or as -Wuninitialized where it is inlined into the avx512bw kernels.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include <algorithm>
#include <type_traits>

#include "infer/kernels.h"

namespace bnn::infer::detail {

#define BNN_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vpopcntdq,avx2,fma,popcnt")))
// AVX-512 without VPOPCNTDQ (Skylake-SP, Cascade Lake, Cooper Lake): everything but the popcount
// loop is shared with the tier above, compiled for this subset so that both tiers can run it
// (GCC inlines a function into one whose target is a superset of its own).
#define BNN_AVX512BW __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,popcnt")))
#define BNN_AVX2 __attribute__((target("avx2,fma,popcnt")))

// ---- AVX-512 with VPOPCNTDQ -----------------------------------------------------------------
// One activation word is broadcast against 16 output channels' words (two zmm of 8 x 64 bits);
// kP pixels at a time share the two weight loads: 2 * kP accumulators of 64-bit lane counts
// (4 measured as fast as 6 or 8 at 64-512 channels). `finish(acc0, acc1, p)` receives pixel p's
// two accumulators: stored as int32 counts (bgemm) or turned into the layer's float output
// (bgemm_epilogue).
template <int kP, class Finish>
BNN_AVX512 inline void bgemm_avx512_pixels(const Windows& win, int64_t p, const uint64_t* w, const Finish& finish) {
  const int64_t ps = win.pixel_stride, rw = win.row_words;
  __m512i acc[kP][2];
  for (int i = 0; i < kP; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_si512();
  const uint64_t* wk = w;
  for (int kh = 0; kh < 3; ++kh) {
    const uint64_t* a = win.base + p * ps + kh * win.row_stride;
    for (int64_t q = 0; q < rw; ++q, wk += kBlock) {
      const __m512i w0 = _mm512_loadu_si512(wk);
      const __m512i w1 = _mm512_loadu_si512(wk + 8);
      for (int i = 0; i < kP; ++i) {
        const __m512i bc = _mm512_set1_epi64(static_cast<long long>(a[i * ps + q]));
        acc[i][0] = _mm512_add_epi64(acc[i][0], _mm512_popcnt_epi64(_mm512_xor_si512(bc, w0)));
        acc[i][1] = _mm512_add_epi64(acc[i][1], _mm512_popcnt_epi64(_mm512_xor_si512(bc, w1)));
      }
    }
  }
  for (int i = 0; i < kP; ++i) finish(acc[i][0], acc[i][1], p + i);
}

template <class Finish>
BNN_AVX512 inline void bgemm_avx512_core(const Windows& win, int64_t P, const uint64_t* w, const Finish& finish) {
  int64_t p = 0;
  for (; p + 4 <= P; p += 4) bgemm_avx512_pixels<4>(win, p, w, finish);
  for (; p < P; ++p) bgemm_avx512_pixels<1>(win, p, w, finish);
}

// Functors rather than lambdas: a lambda's body does not inherit its enclosing function's target
// attribute, so it could not use AVX-512 intrinsics.
struct StoreCounts {
  int32_t* pop;
  int64_t ldo;
  BNN_AVX512BW void operator()(__m512i acc0, __m512i acc1, int64_t p) const {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(pop + p * ldo), _mm512_cvtepi64_epi32(acc0));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(pop + p * ldo + 8), _mm512_cvtepi64_epi32(acc1));
  }
};

struct FloatOutput {
  const BlockEpilogue& e;
  __mmask16 m;
  BNN_AVX512BW void operator()(__m512i acc0, __m512i acc1, int64_t i) const {
    const __m512i pop = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(acc0)), _mm512_cvtepi64_epi32(acc1), 1);
    __m512i s = _mm512_sub_epi32(_mm512_set1_epi32(e.full), _mm512_add_epi32(pop, pop));
    if (const int32_t* c = e.corr[i]) s = _mm512_sub_epi32(s, _mm512_maskz_loadu_epi32(m, c));
    __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, e.alpha), _mm512_cvtepi32_ps(s));
    if (e.add) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, e.add + i * e.lda));
    const __m512 sv = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, e.slope), v);
    const __mmask16 pos = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GT_OQ);
    _mm512_mask_storeu_ps(e.out + i * e.ldo, m, _mm512_mask_blend_ps(pos, sv, v));
  }
};

BNN_AVX512 void bgemm_avx512(const Windows& win, int64_t P, const uint64_t* w, int32_t* pop, int64_t ldo) {
  bgemm_avx512_core(win, P, w, StoreCounts{pop, ldo});
}

BNN_AVX512 void bgemm_epilogue_avx512(const Windows& win, int64_t P, const uint64_t* w, const BlockEpilogue& e) {
  const __mmask16 m = e.nch >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << e.nch) - 1);
  bgemm_avx512_core(win, P, w, FloatOutput{e, m});
}

// ---- AVX-512 without VPOPCNTDQ --------------------------------------------------------------
// The AVX2 kernel's byte counting at twice the width: a nibble table through vpshufb gives each
// byte's count, summed in byte lanes for up to 31 words (31 * 8 = 248 < 256), then widened to the
// 64-bit lanes the finishing functors take with vpsadbw. The layout and the kP pixels sharing the
// weight loads are bgemm_avx512_pixels'; 4 pixels keep 8 byte and 8 total accumulators, the table,
// the mask and the two weight vectors in the 32 zmm registers. Its own loop, not a policy of that
// template: the VPOPCNTDQ target attribute belongs to the template, not to an instantiation.
BNN_AVX512BW static inline __m512i popcount_bytes512(__m512i x, __m512i lut, __m512i low) {
  return _mm512_add_epi8(_mm512_shuffle_epi8(lut, _mm512_and_si512(x, low)), _mm512_shuffle_epi8(lut, _mm512_and_si512(_mm512_srli_epi16(x, 4), low)));
}

template <int kP, class Finish>
BNN_AVX512BW inline void bgemm_avx512bw_pixels(const Windows& win, int64_t p, const uint64_t* w, const Finish& finish) {
  // Popcounts of 0..15 in every 16-byte lane (the bytes 0 1 1 2 1 2 2 3 | 1 2 2 3 2 3 3 4).
  constexpr long long kLo = 0x0302020102010100LL, kHi = 0x0403030203020201LL;
  const __m512i lut = _mm512_set_epi64(kHi, kLo, kHi, kLo, kHi, kLo, kHi, kLo);
  const __m512i low = _mm512_set1_epi8(0x0F);
  const __m512i zero = _mm512_setzero_si512();
  const int64_t ps = win.pixel_stride, rw = win.row_words;
  __m512i bytes[kP][2], total[kP][2];
  for (int i = 0; i < kP; ++i) bytes[i][0] = bytes[i][1] = total[i][0] = total[i][1] = zero;
  int run = 0;
  const uint64_t* wk = w;
  for (int kh = 0; kh < 3; ++kh) {
    const uint64_t* a = win.base + p * ps + kh * win.row_stride;
    for (int64_t q = 0; q < rw; ++q, wk += kBlock) {
      const __m512i w0 = _mm512_loadu_si512(wk);
      const __m512i w1 = _mm512_loadu_si512(wk + 8);
      for (int i = 0; i < kP; ++i) {
        const __m512i bc = _mm512_set1_epi64(static_cast<long long>(a[i * ps + q]));
        bytes[i][0] = _mm512_add_epi8(bytes[i][0], popcount_bytes512(_mm512_xor_si512(bc, w0), lut, low));
        bytes[i][1] = _mm512_add_epi8(bytes[i][1], popcount_bytes512(_mm512_xor_si512(bc, w1), lut, low));
      }
      if (++run == 31) {
        for (int i = 0; i < kP; ++i) {
          for (int j = 0; j < 2; ++j) {
            total[i][j] = _mm512_add_epi64(total[i][j], _mm512_sad_epu8(bytes[i][j], zero));
            bytes[i][j] = zero;
          }
        }
        run = 0;
      }
    }
  }
  for (int i = 0; i < kP; ++i) {
    finish(_mm512_add_epi64(total[i][0], _mm512_sad_epu8(bytes[i][0], zero)), _mm512_add_epi64(total[i][1], _mm512_sad_epu8(bytes[i][1], zero)), p + i);
  }
}

template <class Finish>
BNN_AVX512BW inline void bgemm_avx512bw_core(const Windows& win, int64_t P, const uint64_t* w, const Finish& finish) {
  int64_t p = 0;
  for (; p + 4 <= P; p += 4) bgemm_avx512bw_pixels<4>(win, p, w, finish);
  for (; p < P; ++p) bgemm_avx512bw_pixels<1>(win, p, w, finish);
}

BNN_AVX512BW void bgemm_avx512bw(const Windows& win, int64_t P, const uint64_t* w, int32_t* pop, int64_t ldo) {
  bgemm_avx512bw_core(win, P, w, StoreCounts{pop, ldo});
}

BNN_AVX512BW void bgemm_epilogue_avx512bw(const Windows& win, int64_t P, const uint64_t* w, const BlockEpilogue& e) {
  const __mmask16 m = e.nch >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << e.nch) - 1);
  bgemm_avx512bw_core(win, P, w, FloatOutput{e, m});
}

// 16 channels per compare; a masked load covers a channel count that is not a multiple of 16.
BNN_AVX512BW void pack_rows_avx512(const float* x, int64_t pixels, int64_t C, const float* sgn, const float* thr, uint64_t* out,
                                 int64_t words, int64_t out_stride) {
  for (int64_t p = 0; p < pixels; ++p, x += C, out += out_stride) {
    for (int64_t wd = 0; wd < words; ++wd) {
      uint64_t word = 0;
      for (int q = 0; q < 4; ++q) {
        const int64_t c = wd * 64 + q * 16;
        if (c >= C) break;
        const int64_t n = std::min<int64_t>(16, C - c);
        const __mmask16 m = n == 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1);
        const __m512 xv = _mm512_maskz_loadu_ps(m, x + c);
        const __m512 sv = _mm512_maskz_loadu_ps(m, sgn + c);
        const __m512 tv = _mm512_maskz_loadu_ps(m, thr + c);
        const __mmask16 bits = _mm512_mask_cmp_ps_mask(m, _mm512_mul_ps(sv, xv), tv, _CMP_LT_OQ);
        word |= static_cast<uint64_t>(bits) << (q * 16);
      }
      out[wd] = word;
    }
  }
}

BNN_AVX512BW __attribute__((optimize("O3"))) void gemm_acc_avx512(const float* v, int64_t ldv, int64_t P, int64_t K,
                                                                const float* wt, int64_t ldw, int64_t O, float* acc,
                                                                int64_t lda) {
  BNN_GEMM_ACC_BODY
}

// ---- AVX2 -----------------------------------------------------------------------------------
BNN_AVX2 static inline __m256i popcount_bytes(__m256i x) {
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i low = _mm256_set1_epi8(0x0F);
  return _mm256_add_epi8(_mm256_shuffle_epi8(lut, _mm256_and_si256(x, low)),
                         _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(x, 4), low)));
}

// One output at a time: only its 4 byte accumulators live in registers (with the table, the mask
// and a few temporaries; two outputs at a time spilled), weights are memory operands, and the
// 64-bit totals, touched once per 31 words, stay in memory.
BNN_AVX2 static inline void bgemm_avx2_pixel(const uint64_t* a, int64_t row_stride, int64_t rw, const uint64_t* w, int32_t* pop) {
  const __m256i zero = _mm256_setzero_si256();
  alignas(32) int64_t total[4][4] = {};
  __m256i bytes[4] = {zero, zero, zero, zero};
  int run = 0;
  const uint64_t* wk = w;
  for (int kh = 0; kh < 3; ++kh) {
    const uint64_t* ar = a + kh * row_stride;
    for (int64_t q = 0; q < rw; ++q, wk += kBlock) {
      const __m256i* wv = reinterpret_cast<const __m256i*>(wk);
      const __m256i b = _mm256_set1_epi64x(static_cast<long long>(ar[q]));
      for (int j = 0; j < 4; ++j) bytes[j] = _mm256_add_epi8(bytes[j], popcount_bytes(_mm256_xor_si256(b, _mm256_loadu_si256(wv + j))));
      if (++run == 31) {  // byte counts stay below 256: 31 * 8 = 248
        for (int j = 0; j < 4; ++j) {
          __m256i* t = reinterpret_cast<__m256i*>(total[j]);
          _mm256_store_si256(t, _mm256_add_epi64(_mm256_load_si256(t), _mm256_sad_epu8(bytes[j], zero)));
          bytes[j] = zero;
        }
        run = 0;
      }
    }
  }
  for (int j = 0; j < 4; ++j) {
    __m256i* t = reinterpret_cast<__m256i*>(total[j]);
    _mm256_store_si256(t, _mm256_add_epi64(_mm256_load_si256(t), _mm256_sad_epu8(bytes[j], zero)));
    for (int q = 0; q < 4; ++q) pop[4 * j + q] = static_cast<int32_t>(total[j][q]);
  }
}

// No vector popcount: the nibble table with pshufb gives byte counts, summed in bytes for up to
// 31 words, then widened to 64-bit lanes with psadbw.
BNN_AVX2 void bgemm_avx2(const Windows& win, int64_t P, const uint64_t* w, int32_t* pop, int64_t ldo) {
  for (int64_t p = 0; p < P; ++p) bgemm_avx2_pixel(win.base + p * win.pixel_stride, win.row_stride, win.row_words, w, pop + p * ldo);
}

BNN_AVX2 void pack_rows_avx2(const float* x, int64_t pixels, int64_t C, const float* sgn, const float* thr, uint64_t* out,
                             int64_t words, int64_t out_stride) {
  for (int64_t p = 0; p < pixels; ++p, x += C, out += out_stride) {
    for (int64_t wd = 0; wd < words; ++wd) {
      uint64_t word = 0;
      const int64_t c0 = wd * 64, n = std::min<int64_t>(64, C - c0);
      int64_t i = 0;
      for (; i + 8 <= n; i += 8) {
        const __m256 xv = _mm256_loadu_ps(x + c0 + i);
        const __m256 lt = _mm256_cmp_ps(_mm256_mul_ps(_mm256_loadu_ps(sgn + c0 + i), xv), _mm256_loadu_ps(thr + c0 + i), _CMP_LT_OQ);
        word |= static_cast<uint64_t>(static_cast<uint32_t>(_mm256_movemask_ps(lt))) << i;
      }
      for (; i < n; ++i) word |= static_cast<uint64_t>(sgn[c0 + i] * x[c0 + i] < thr[c0 + i]) << i;
      out[wd] = word;
    }
  }
}

BNN_AVX2 __attribute__((optimize("O3"))) void gemm_acc_avx2(const float* v, int64_t ldv, int64_t P, int64_t K, const float* wt,
                                                            int64_t ldw, int64_t O, float* acc, int64_t lda) {
  BNN_GEMM_ACC_BODY
}

BNN_AVX512BW __attribute__((optimize("O3", "no-trapping-math", "fp-contract=off"))) void conv_epilogue_avx512(
    const int32_t* sums, int64_t lds, int64_t P, int64_t O, const float* alpha, const float* slope, const float* add, int64_t lda,
    float* out, int64_t ldo) {
  BNN_EPILOGUE_BODY
}

BNN_AVX2 __attribute__((optimize("O3", "no-trapping-math", "fp-contract=off"))) void conv_epilogue_avx2(
    const int32_t* sums, int64_t lds, int64_t P, int64_t O, const float* alpha, const float* slope, const float* add, int64_t lda,
    float* out, int64_t ldo) {
  BNN_EPILOGUE_BODY
}

}  // namespace bnn::infer::detail
#endif
