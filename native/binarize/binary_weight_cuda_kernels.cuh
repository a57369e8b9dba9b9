#pragma once
// The kernels of binarize/binary_weight_cuda.cu and their launch geometry, apart from its host
// code, so that test/native/cuda-emu.cpp (CUDA's execution model emulated on CPU threads) runs
// these very bodies where no GPU is. Included by that .cu file and by that test only.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "core/cuda_shared.cuh"

namespace bnn::cuda::weight_kernels {

constexpr int kThreads = 256;

namespace {  // internal linkage, as the kernels had inside their .cu file

// One block per output channel: the mean of |W| over its row (a float tree sum: rows are at most a
// few thousand weights), then the signed scale and the mask.
__global__ void binarize_rows_kernel(const float* __restrict__ w, float* __restrict__ out, uint8_t* __restrict__ keep,
                                     float* __restrict__ alpha, int64_t n) {
  BNN_SHARED(float, partial, [kThreads]);
  const int64_t base = static_cast<int64_t>(blockIdx.x) * n;
  float sum = 0.f;
  for (int64_t i = threadIdx.x; i < n; i += kThreads) sum += fabsf(w[base + i]);
  partial[threadIdx.x] = sum;
  __syncthreads();
  for (unsigned stride = kThreads / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  const float a = partial[0] / static_cast<float>(n);
  if (threadIdx.x == 0) alpha[blockIdx.x] = a;
  for (int64_t i = threadIdx.x; i < n; i += kThreads) {
    const float v = w[base + i];
    out[base + i] = v != v ? v : (v >= 0.f ? a : -a);
    keep[base + i] = static_cast<uint8_t>((v <= 1.f) & (v >= -1.f));
  }
}

__global__ void grad_rows_kernel(const float* __restrict__ g, const uint8_t* __restrict__ keep, const float* __restrict__ alpha,
                                 float* __restrict__ out, int64_t n) {
  const int64_t base = static_cast<int64_t>(blockIdx.x) * n;
  const float a = alpha[blockIdx.x];
  for (int64_t i = threadIdx.x; i < n; i += kThreads) out[base + i] = keep[base + i] ? g[base + i] * a : 0.f;
}

}  // namespace

}  // namespace bnn::cuda::weight_kernels
