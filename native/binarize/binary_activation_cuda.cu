// CUDA kernels for the binary activation, registered under the same operators as the CPU ones.
// Compiled only when the found LibTorch has CUDA and nvcc is present (see CMakeLists.txt).
#include <ATen/Dispatch.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "binarize/binary_activation.h"
#include "binarize/binary_activation_cuda_kernels.cuh"

namespace bnn {
namespace {

using namespace activation_kernels;

std::tuple<at::Tensor, at::Tensor> forward_cuda(const at::Tensor& input) {
  detail::check_activation_input(input);
  const at::Tensor x = input.is_non_overlapping_and_dense() ? input : input.contiguous();
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor out = at::empty_like(x);
  at::Tensor mask = at::empty_like(x, x.options().dtype(at::kByte));
  const int64_t n = x.numel();
  if (n == 0) return {out, mask};
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "binary_activation_forward_cuda", [&] {
    forward_kernel<scalar_t><<<blocks_for(n), kThreads, 0, stream>>>(
        x.const_data_ptr<scalar_t>(), out.mutable_data_ptr<scalar_t>(), mask.mutable_data_ptr<uint8_t>(), n);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {out, mask};
}

at::Tensor backward_cuda(const at::Tensor& grad_output, const at::Tensor& mask) {
  detail::check_activation_grad(grad_output, mask);
  const c10::cuda::CUDAGuard guard(mask.device());
  const at::Tensor g = (grad_output.strides() == mask.strides() && grad_output.is_non_overlapping_and_dense())
                           ? grad_output
                           : at::empty_like(mask, grad_output.options()).copy_(grad_output);
  at::Tensor grad_input = at::empty_like(g);
  const int64_t n = g.numel();
  if (n == 0) return grad_input;
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, g.scalar_type(), "binary_activation_backward_cuda", [&] {
    backward_kernel<scalar_t><<<blocks_for(n), kThreads, 0, stream>>>(
        g.const_data_ptr<scalar_t>(), mask.const_data_ptr<uint8_t>(), grad_input.mutable_data_ptr<scalar_t>(), n);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return grad_input;
}

}  // namespace

TORCH_LIBRARY_IMPL(bnn, CUDA, m) {
  m.impl("binary_activation_forward", &forward_cuda);
  m.impl("binary_activation_backward", &backward_cuda);
}

}  // namespace bnn
