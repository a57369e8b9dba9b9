#include "nn/sign_conv2d_cuda.h"

#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

namespace bnn::nn::cuda {

namespace {

constexpr int kThreads = 256;
constexpr uint8_t kKeep = 1;
constexpr uint8_t kPositive = 2;

int blocks_for(int64_t n) { return static_cast<int>(std::min<int64_t>((n + kThreads - 1) / kThreads, 65535LL * 8)); }

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

}  // namespace

std::pair<torch::Tensor, torch::Tensor> sign_code(const torch::Tensor& x, c10::ScalarType dtype) {
  TORCH_CHECK(x.is_cuda() && x.is_non_overlapping_and_dense(), "sign_code: a dense CUDA tensor is needed");
  const c10::cuda::CUDAGuard guard(x.device());
  torch::Tensor signs = at::empty_like(x, x.options().dtype(dtype));
  torch::Tensor code = at::empty_like(x, x.options().dtype(at::kByte));
  const int64_t n = x.numel();
  if (n == 0) return {signs, code};
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "sign_code_in", [&] {
    using in_t = scalar_t;
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "sign_code_out", [&] {
      sign_code_kernel<in_t, scalar_t><<<blocks_for(n), kThreads, 0, stream>>>(x.const_data_ptr<in_t>(), signs.mutable_data_ptr<scalar_t>(),
                                                                               code.mutable_data_ptr<uint8_t>(), n);
    });
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {signs, code};
}

torch::Tensor signs_from_code(const torch::Tensor& code, c10::ScalarType dtype) {
  const c10::cuda::CUDAGuard guard(code.device());
  torch::Tensor signs = at::empty_like(code, code.options().dtype(dtype));
  const int64_t n = code.numel();
  if (n == 0) return signs;
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "signs_from_code", [&] {
    signs_kernel<scalar_t><<<blocks_for(n), kThreads, 0, stream>>>(code.const_data_ptr<uint8_t>(), signs.mutable_data_ptr<scalar_t>(), n);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return signs;
}

torch::Tensor masked_grad(const torch::Tensor& grad, const torch::Tensor& code) {
  const c10::cuda::CUDAGuard guard(code.device());
  const torch::Tensor g = grad.strides() == code.strides() && grad.is_non_overlapping_and_dense()
                              ? grad
                              : at::empty_like(code, grad.options()).copy_(grad);
  torch::Tensor out = at::empty_like(g);
  const int64_t n = g.numel();
  if (n == 0) return out;
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, g.scalar_type(), "masked_grad", [&] {
    masked_grad_kernel<scalar_t><<<blocks_for(n), kThreads, 0, stream>>>(g.const_data_ptr<scalar_t>(), code.const_data_ptr<uint8_t>(),
                                                                          out.mutable_data_ptr<scalar_t>(), n);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace bnn::nn::cuda
