#pragma once
// The kernels of binarize/binary_activation_cuda.cu and their launch geometry, apart from its host
// code, so that test/native/cuda-emu.cpp (CUDA's execution model emulated on CPU threads) runs
// these very bodies where no GPU is. Included by that .cu file and by that test only.
#include <algorithm>
#include <cstdint>

namespace bnn::activation_kernels {

constexpr int kThreads = 256;

inline int blocks_for(int64_t n) {
  const int64_t max_blocks = 65535LL * 8;
  return static_cast<int>(std::min<int64_t>((n + kThreads - 1) / kThreads, max_blocks));
}

template <typename scalar_t>
__global__ void forward_kernel(const scalar_t* __restrict__ src, scalar_t* __restrict__ dst,
                               uint8_t* __restrict__ keep, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const float v = static_cast<float>(src[i]);
    dst[i] = static_cast<scalar_t>(v >= 0.f ? 1.f : (v < 0.f ? -1.f : v));
    keep[i] = static_cast<uint8_t>((v > -1.f) & (v < 1.f));
  }
}

template <typename scalar_t>
__global__ void backward_kernel(const scalar_t* __restrict__ src, const uint8_t* __restrict__ keep,
                                scalar_t* __restrict__ dst, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    dst[i] = keep[i] ? src[i] : static_cast<scalar_t>(0.f);
  }
}

}  // namespace bnn::activation_kernels
