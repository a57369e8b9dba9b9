// Dispatch of the per-ISA kernels, and the portable (baseline) versions.
#include "infer/kernels.h"

#include <cstring>

namespace bnn::infer::detail {

void pack_rows(Isa isa, const float* x, int64_t pixels, int64_t C, const float* sgn, const float* thr, uint64_t* out,
               int64_t words, int64_t out_stride) {
#if defined(__x86_64__)
  if (isa == Isa::Avx512 || isa == Isa::Avx512Bw) return pack_rows_avx512(x, pixels, C, sgn, thr, out, words, out_stride);
  if (isa == Isa::Avx2) return pack_rows_avx2(x, pixels, C, sgn, thr, out, words, out_stride);
#endif
  pack_rows_baseline(x, pixels, C, sgn, thr, out, words, out_stride);
}

void bgemm(Isa isa, const Windows& a, int64_t P, const uint64_t* w, int32_t* pop, int64_t ldo) {
#if defined(__x86_64__)
  if (isa == Isa::Avx512) return bgemm_avx512(a, P, w, pop, ldo);
  if (isa == Isa::Avx512Bw) return bgemm_avx512bw(a, P, w, pop, ldo);
  if (isa == Isa::Avx2) return bgemm_avx2(a, P, w, pop, ldo);
#endif
#if defined(__aarch64__)
  if (isa == Isa::Neon) return bgemm_neon(a, P, w, pop, ldo);
#endif
  bgemm_baseline(a, P, w, pop, ldo);
}

void gemm_acc(Isa isa, const float* v, int64_t ldv, int64_t P, int64_t K, const float* wt, int64_t ldw, int64_t O, float* acc,
              int64_t lda) {
#if defined(__x86_64__)
  if (isa == Isa::Avx512 || isa == Isa::Avx512Bw) return gemm_acc_avx512(v, ldv, P, K, wt, ldw, O, acc, lda);
  if (isa == Isa::Avx2) return gemm_acc_avx2(v, ldv, P, K, wt, ldw, O, acc, lda);
#endif
  // On aarch64 the baseline is compiled with Advanced SIMD (always present), so it vectorises.
  gemm_acc_baseline(v, ldv, P, K, wt, ldw, O, acc, lda);
}

void conv_epilogue(Isa isa, const int32_t* sums, int64_t lds, int64_t P, int64_t O, const float* alpha, const float* slope,
                   const float* add, int64_t lda, float* out, int64_t ldo) {
#if defined(__x86_64__)
  if (isa == Isa::Avx512 || isa == Isa::Avx512Bw) return conv_epilogue_avx512(sums, lds, P, O, alpha, slope, add, lda, out, ldo);
  if (isa == Isa::Avx2) return conv_epilogue_avx2(sums, lds, P, O, alpha, slope, add, lda, out, ldo);
#endif
  conv_epilogue_baseline(sums, lds, P, O, alpha, slope, add, lda, out, ldo);
}

__attribute__((optimize("O3", "no-trapping-math", "fp-contract=off"))) void conv_epilogue_baseline(const int32_t* sums, int64_t lds, int64_t P, int64_t O,
                                                                               const float* alpha, const float* slope, const float* add,
                                                                               int64_t lda, float* out, int64_t ldo) {
  BNN_EPILOGUE_BODY
}

void pack_rows_baseline(const float* x, int64_t pixels, int64_t C, const float* sgn, const float* thr, uint64_t* out,
                        int64_t words, int64_t out_stride) {
  for (int64_t p = 0; p < pixels; ++p, x += C, out += out_stride) {
    for (int64_t w = 0; w < words; ++w) {
      uint64_t word = 0;
      const int64_t c0 = w * 64, n = C - c0 < 64 ? C - c0 : 64;
      for (int64_t i = 0; i < n; ++i) {
        word |= static_cast<uint64_t>(sgn[c0 + i] * x[c0 + i] < thr[c0 + i]) << i;
      }
      out[w] = word;
    }
  }
}

void bgemm_baseline(const Windows& win, int64_t P, const uint64_t* w, int32_t* pop, int64_t ldo) {
  for (int64_t p = 0; p < P; ++p) {
    int32_t acc[kBlock] = {};
    const uint64_t* wk = w;
    for (int kh = 0; kh < 3; ++kh) {
      const uint64_t* a = win.base + p * win.pixel_stride + kh * win.row_stride;
      for (int64_t q = 0; q < win.row_words; ++q, wk += kBlock) {
        const uint64_t ak = a[q];
        for (int j = 0; j < kBlock; ++j) acc[j] += __builtin_popcountll(ak ^ wk[j]);
      }
    }
    std::memcpy(pop + p * ldo, acc, sizeof acc);
  }
}

__attribute__((optimize("O3"))) void gemm_acc_baseline(const float* v, int64_t ldv, int64_t P, int64_t K, const float* wt,
                                                       int64_t ldw, int64_t O, float* acc, int64_t lda) {
  BNN_GEMM_ACC_BODY
}

}  // namespace bnn::infer::detail
