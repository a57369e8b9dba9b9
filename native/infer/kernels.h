#pragma once
// The per-ISA kernels behind one dispatching name each (internal to native/infer).
//
// Bit convention everywhere: bit 1 means -1, bit 0 means +1; channel c of a pixel is bit c % 64 of
// its word c / 64; the padding bits above the channel count are 0 in activations and weights alike,
// so their XOR is 0 and they never count.
#include <cstdint>

#include "infer/isa.h"

namespace bnn::infer::detail {

// Output channels per weight block: weights are stored [block][k][kBlock] so that one activation
// word, broadcast, meets kBlock output channels' words in one or two vectors.
constexpr int kBlock = 16;

// Binarises `pixels` channels-last rows of C floats: bit = (sgn[c] * x < thr[c]), i.e. -1 where
// the folded BatchNorm would be negative. Writes `words` uint64 per pixel at out + p * out_stride.
void pack_rows(Isa isa, const float* x, int64_t pixels, int64_t C, const float* sgn, const float* thr, uint64_t* out,
               int64_t words, int64_t out_stride);

// Where the packed 3x3 windows of P outputs lie: output i's window row kh (3 pixels, row_words =
// 3 * words) starts at base + i * pixel_stride + kh * row_stride. Read straight from the padded
// input when the outputs share an output row, or from an im2col copy (pixel_stride = 3 * row_words,
// row_stride = row_words) otherwise.
struct Windows {
  const uint64_t* base;
  int64_t pixel_stride, row_stride, row_words;
};

// pop[p * ldo + j] = sum over the K = 3 * row_words window words k of popcount(a(p, k) ^ w[k * kBlock + j]), j < kBlock.
void bgemm(Isa isa, const Windows& a, int64_t P, const uint64_t* w, int32_t* pop, int64_t ldo);

// The float epilogue of one 16-channel block, applied inside the AVX-512 popcount kernel so that
// the sums never go through memory: out[i * ldo + j] = prelu(alpha[j] * (full - 2 * pop(i, j) -
// corr[i][j]) + add[i * lda + j]) for j < nch (add may be null; corr[i] is the pixel's border
// correction row for these channels, or null inside the image). Multiply, then add, then the
// PReLU select: no FMA, as the unfused epilogue and LibTorch's conv + add compute it.
struct BlockEpilogue {
  int32_t full = 0;
  const int32_t* const* corr = nullptr;  // [P]
  const float *alpha = nullptr, *slope = nullptr, *add = nullptr;
  int64_t lda = 0;
  float* out = nullptr;
  int64_t ldo = 0;
  int nch = kBlock;
};
#if defined(__x86_64__)
// The fused popcount + epilogue of the two AVX-512 tiers (with and without VPOPCNTDQ).
void bgemm_epilogue_avx512(const Windows& a, int64_t P, const uint64_t* w, const BlockEpilogue& e);
void bgemm_epilogue_avx512bw(const Windows& a, int64_t P, const uint64_t* w, const BlockEpilogue& e);
#endif

// acc[p * lda + o] += sum over k < K of v[p * ldv + k] * wt[k * ldw + o], for p < P, o < O.
void gemm_acc(Isa isa, const float* v, int64_t ldv, int64_t P, int64_t K, const float* wt, int64_t ldw, int64_t O, float* acc,
              int64_t lda);

// out[i * ldo + j] = prelu(alpha[j] * sums[i * lds + j] + add[i * lda + j]) for i < P, j < O (add
// may be null); prelu(v) = v > 0 ? v : slope[j] * v.
void conv_epilogue(Isa isa, const int32_t* sums, int64_t lds, int64_t P, int64_t O, const float* alpha, const float* slope,
                   const float* add, int64_t lda, float* out, int64_t ldo);

// Per-ISA implementations.
void pack_rows_baseline(const float*, int64_t, int64_t, const float*, const float*, uint64_t*, int64_t, int64_t);
void bgemm_baseline(const Windows&, int64_t, const uint64_t*, int32_t*, int64_t);
void gemm_acc_baseline(const float*, int64_t, int64_t, int64_t, const float*, int64_t, int64_t, float*, int64_t);
void conv_epilogue_baseline(const int32_t*, int64_t, int64_t, int64_t, const float*, const float*, const float*, int64_t, float*, int64_t);
#if defined(__x86_64__)
void conv_epilogue_avx2(const int32_t*, int64_t, int64_t, int64_t, const float*, const float*, const float*, int64_t, float*, int64_t);
void conv_epilogue_avx512(const int32_t*, int64_t, int64_t, int64_t, const float*, const float*, const float*, int64_t, float*, int64_t);
void pack_rows_avx2(const float*, int64_t, int64_t, const float*, const float*, uint64_t*, int64_t, int64_t);
void bgemm_avx2(const Windows&, int64_t, const uint64_t*, int32_t*, int64_t);
void gemm_acc_avx2(const float*, int64_t, int64_t, int64_t, const float*, int64_t, int64_t, float*, int64_t);
void pack_rows_avx512(const float*, int64_t, int64_t, const float*, const float*, uint64_t*, int64_t, int64_t);
void bgemm_avx512(const Windows&, int64_t, const uint64_t*, int32_t*, int64_t);
void bgemm_avx512bw(const Windows&, int64_t, const uint64_t*, int32_t*, int64_t);
void gemm_acc_avx512(const float*, int64_t, int64_t, int64_t, const float*, int64_t, int64_t, float*, int64_t);
#endif
#if defined(__aarch64__)
void bgemm_neon(const Windows&, int64_t, const uint64_t*, int32_t*, int64_t);
#endif

// Register blocking for the float parts: kGemmP pixels x kGemmO outputs stay in local arrays that
// GCC keeps in vector registers; the same source is compiled for each ISA (kernels_x86.cpp).
#define BNN_GEMM_ACC_BODY                                                                          \
  constexpr int64_t kP = 4, kO = 32;                                                               \
  for (int64_t o0 = 0; o0 < O; o0 += kO) {                                                         \
    const int64_t on = O - o0 < kO ? O - o0 : kO;                                                  \
    int64_t p = 0;                                                                                 \
    if (on == kO) {                                                                                \
      for (; p + kP <= P; p += kP) {                                                               \
        float a[kP][kO];                                                                           \
        for (int64_t i = 0; i < kP; ++i)                                                           \
          for (int64_t o = 0; o < kO; ++o) a[i][o] = acc[(p + i) * lda + o0 + o];                  \
        const float* v0 = v + p * ldv;                                                             \
        for (int64_t k = 0; k < K; ++k) {                                                          \
          const float* wk = wt + k * ldw + o0;                                                     \
          for (int64_t i = 0; i < kP; ++i) {                                                       \
            const float s = v0[i * ldv + k];                                                       \
            for (int64_t o = 0; o < kO; ++o) a[i][o] += s * wk[o];                                 \
          }                                                                                        \
        }                                                                                          \
        for (int64_t i = 0; i < kP; ++i)                                                           \
          for (int64_t o = 0; o < kO; ++o) acc[(p + i) * lda + o0 + o] = a[i][o];                  \
      }                                                                                            \
    }                                                                                              \
    for (; p < P; ++p) {                                                                           \
      float* ap = acc + p * lda + o0;                                                              \
      const float* vp = v + p * ldv;                                                               \
      for (int64_t k = 0; k < K; ++k) {                                                            \
        const float s = vp[k];                                                                     \
        const float* wk = wt + k * ldw + o0;                                                       \
        for (int64_t o = 0; o < on; ++o) ap[o] += s * wk[o];                                       \
      }                                                                                            \
    }                                                                                              \
  }

// Branch-free so that it vectorises: the select after an unconditional multiply.
#define BNN_EPILOGUE_BODY                                                                          \
  for (int64_t i = 0; i < P; ++i) {                                                                \
    const int32_t* s = sums + i * lds;                                                             \
    float* o = out + i * ldo;                                                                      \
    if (add) {                                                                                     \
      const float* a = add + i * lda;                                                              \
      for (int64_t j = 0; j < O; ++j) {                                                            \
        const float v = alpha[j] * static_cast<float>(s[j]) + a[j], sv = slope[j] * v;             \
        o[j] = v > 0.f ? v : sv;                                                                   \
      }                                                                                            \
    } else {                                                                                       \
      for (int64_t j = 0; j < O; ++j) {                                                            \
        const float v = alpha[j] * static_cast<float>(s[j]), sv = slope[j] * v;                    \
        o[j] = v > 0.f ? v : sv;                                                                   \
      }                                                                                            \
    }                                                                                              \
  }

}  // namespace bnn::infer::detail
