#pragma once
// The kernels of nn/fused_cuda.cu and their launch geometry, apart from its host code, so that
// test/native/cuda-emu.cpp (CUDA's execution model emulated on CPU threads) runs these very bodies
// where no GPU is. Included by that .cu file and by that test only.
#include <algorithm>
#include <cstdint>

#include "core/cuda_shared.cuh"

namespace bnn::nn::cuda::fused_kernels {

// A block is kCols channels by kRows rows; each thread walks about kRowsPerThread rows (more when
// the grid's row dimension would pass CUDA's 65535). The grid depends only on the shape, so the
// order of every float sum, and with it the result, is the same on every run.
constexpr int kCols = 32;
constexpr int kRows = 8;
constexpr int64_t kRowsPerThread = 16;
constexpr uint8_t kKeep = 1;

struct Launch {
  dim3 grid;
  dim3 block;
  int64_t row_blocks;
};

inline Launch launch_for(int64_t rows, int64_t C) {
  const int64_t col_blocks = (C + kCols - 1) / kCols;
  const int64_t row_blocks = std::clamp<int64_t>((rows + kRows * kRowsPerThread - 1) / (kRows * kRowsPerThread), 1, 65535);
  return {dim3(static_cast<unsigned>(col_blocks), static_cast<unsigned>(row_blocks)), dim3(kCols, kRows), row_blocks};
}

// The block's kRows partial sums of one channel, added in a fixed order; the result is valid in
// the threads of row 0. Every thread of the block must call it (it synchronises).
__device__ inline float block_rows_sum(float v, float (*shared)[kCols + 1]) {
  shared[threadIdx.y][threadIdx.x] = v;
  __syncthreads();
  float total = 0.f;
  if (threadIdx.y == 0) {
    for (int r = 0; r < kRows; ++r) total += shared[r][threadIdx.x];
  }
  __syncthreads();
  return total;
}

#define BNN_ROWS_LOOP(r) \
  for (int64_t r = static_cast<int64_t>(blockIdx.y) * kRows + threadIdx.y; r < rows; r += static_cast<int64_t>(gridDim.y) * kRows)

template <typename T, bool kAdd>
__global__ void prelu_forward_kernel(const T* __restrict__ u, const T* __restrict__ v, const float* __restrict__ slopes,
                                     T* __restrict__ y, T* __restrict__ s, int64_t rows, int64_t C) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kCols + threadIdx.x;
  if (c >= C) return;
  const float a = slopes[c];
  BNN_ROWS_LOOP(r) {
    const int64_t i = r * C + c;
    // The sum rounded to T first, as aten::add then aten::prelu would see it, so backward (which
    // reads the stored s) and forward agree about its sign.
    const T st = kAdd ? static_cast<T>(static_cast<float>(u[i]) + static_cast<float>(v[i])) : u[i];
    const float sf = static_cast<float>(st);
    y[i] = static_cast<T>(sf > 0.f ? sf : a * sf);
    if (kAdd) s[i] = st;
  }
}

template <typename T>
__global__ void prelu_backward_kernel(const T* __restrict__ g, const T* __restrict__ s, const float* __restrict__ slopes,
                                      T* __restrict__ dx, float* __restrict__ partial, int64_t rows, int64_t C) {
  BNN_SHARED(float, shared, [kRows][kCols + 1]);
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kCols + threadIdx.x;
  const bool valid = c < C;
  float acc = 0.f;
  if (valid) {
    const float a = slopes[c];
    BNN_ROWS_LOOP(r) {
      const int64_t i = r * C + c;
      const float gi = static_cast<float>(g[i]);
      const float si = static_cast<float>(s[i]);
      const bool positive = si > 0.f;  // PReLU takes the slope at 0, as torch.prelu
      dx[i] = static_cast<T>(positive ? gi : a * gi);
      acc += positive ? 0.f : gi * si;
    }
  }
  const float total = block_rows_sum(acc, shared);
  if (valid && threadIdx.y == 0) partial[static_cast<int64_t>(blockIdx.y) * C + c] = total;
}

template <typename in_t, typename out_t>
__global__ void bn_sign_forward_kernel(const in_t* __restrict__ x, const float* __restrict__ mean, const float* __restrict__ scale,
                                       const float* __restrict__ bias, out_t* __restrict__ signs, uint8_t* __restrict__ code,
                                       int64_t rows, int64_t C) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kCols + threadIdx.x;
  if (c >= C) return;
  const float m = mean[c], k = scale[c], b = bias[c];
  BNN_ROWS_LOOP(r) {
    const int64_t i = r * C + c;
    const float v = (static_cast<float>(x[i]) - m) * k + b;
    const bool positive = v >= 0.f;
    signs[i] = static_cast<out_t>(v != v ? v : (positive ? 1.f : -1.f));  // NaN stays NaN, as sign_code
    code[i] = static_cast<uint8_t>(((v > -1.f) & (v < 1.f)) | (positive << 1));
  }
}

template <typename grad_t, typename in_t>
__global__ void bn_sign_grad_sums_kernel(const grad_t* __restrict__ g, const uint8_t* __restrict__ code, const in_t* __restrict__ x,
                                         const float* __restrict__ mean, float* __restrict__ partial_dy,
                                         float* __restrict__ partial_dy_xmu, int64_t rows, int64_t C) {
  BNN_SHARED(float, shared, [kRows][kCols + 1]);
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kCols + threadIdx.x;
  const bool valid = c < C;
  float sum_dy = 0.f, sum_dy_xmu = 0.f;
  if (valid) {
    const float m = mean[c];
    BNN_ROWS_LOOP(r) {
      const int64_t i = r * C + c;
      // A select, not a multiply: an inf or NaN gradient the mask cuts becomes exactly 0.
      const float dy = (code[i] & kKeep) ? static_cast<float>(g[i]) : 0.f;
      sum_dy += dy;
      sum_dy_xmu += dy * (static_cast<float>(x[i]) - m);
    }
  }
  const float total_dy = block_rows_sum(sum_dy, shared);
  const float total_dy_xmu = block_rows_sum(sum_dy_xmu, shared);
  if (valid && threadIdx.y == 0) {
    partial_dy[static_cast<int64_t>(blockIdx.y) * C + c] = total_dy;
    partial_dy_xmu[static_cast<int64_t>(blockIdx.y) * C + c] = total_dy_xmu;
  }
}

template <typename grad_t, typename in_t>
__global__ void bn_sign_grad_input_kernel(const grad_t* __restrict__ g, const uint8_t* __restrict__ code, const in_t* __restrict__ x,
                                          const float* __restrict__ mean, const float* __restrict__ scale,
                                          const float* __restrict__ mean_dy, const float* __restrict__ coef,
                                          in_t* __restrict__ dx, int64_t rows, int64_t C) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kCols + threadIdx.x;
  if (c >= C) return;
  const float m = mean[c], k = scale[c], mdy = mean_dy[c], q = coef[c];
  BNN_ROWS_LOOP(r) {
    const int64_t i = r * C + c;
    const float dy = (code[i] & kKeep) ? static_cast<float>(g[i]) : 0.f;
    dx[i] = static_cast<in_t>((dy - mdy - (static_cast<float>(x[i]) - m) * q) * k);
  }
}

#undef BNN_ROWS_LOOP

}  // namespace bnn::nn::cuda::fused_kernels
