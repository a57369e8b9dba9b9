#pragma once
// The kernels of nn/sign_conv2d_cuda.cu and their launch geometry, apart from its host code, so
// that test/native/cuda-emu.cpp (CUDA's execution model emulated on CPU threads) runs these very
// bodies where no GPU is. Included by that .cu file and by that test only.
#include <algorithm>
#include <cstdint>

namespace bnn::nn::cuda::sign_kernels {

constexpr int kThreads = 256;
constexpr uint8_t kKeep = 1;
constexpr uint8_t kPositive = 2;

inline int blocks_for(int64_t n) { return static_cast<int>(std::min<int64_t>((n + kThreads - 1) / kThreads, 65535LL * 8)); }

template <typename in_t, typename out_t>
__global__ void sign_code_kernel(const in_t* __restrict__ src, out_t* __restrict__ dst, uint8_t* __restrict__ code, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const float v = static_cast<float>(src[i]);
    const bool positive = v >= 0.f;
    dst[i] = static_cast<out_t>(v != v ? v : (positive ? 1.f : -1.f));
    code[i] = static_cast<uint8_t>(((v > -1.f) & (v < 1.f)) | (positive << 1));
  }
}

template <typename out_t>
__global__ void signs_kernel(const uint8_t* __restrict__ code, out_t* __restrict__ dst, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    dst[i] = static_cast<out_t>((code[i] & kPositive) ? 1.f : -1.f);
  }
}

template <typename t>
__global__ void masked_grad_kernel(const t* __restrict__ g, const uint8_t* __restrict__ code, t* __restrict__ dst, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    // A select, not a multiply: an inf or NaN gradient where the mask cuts it becomes exactly 0.
    dst[i] = (code[i] & kKeep) ? g[i] : static_cast<t>(0.f);
  }
}

}  // namespace bnn::nn::cuda::sign_kernels
