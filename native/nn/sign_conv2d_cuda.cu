#include "nn/sign_conv2d_cuda.h"
#include "nn/sign_conv2d_cuda_kernels.cuh"

#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

namespace bnn::nn::cuda {

namespace {

using namespace sign_kernels;

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
