#include "nn/fused_cuda.h"
#include "nn/fused_cuda_kernels.cuh"

#include <algorithm>

#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros_like.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

namespace bnn::nn::cuda {

namespace {

using namespace fused_kernels;

void check_rows(const torch::Tensor& t, const char* what) {
  TORCH_CHECK(t.is_cuda() && t.dim() == 4 && t.is_contiguous(at::MemoryFormat::ChannelsLast), "fused CUDA kernels: ", what,
              " must be a channels-last 4-D CUDA tensor, got ", t.sizes(), " with strides ", t.strides());
}

void check_channels(const torch::Tensor& t, int64_t C, const char* what) {
  TORCH_CHECK(t.is_cuda() && t.dim() == 1 && t.size(0) == C && t.scalar_type() == at::kFloat && t.is_contiguous(),
              "fused CUDA kernels: ", what, " must be a contiguous float32 CUDA vector of ", C, " channels");
}

// BatchNorm -> sign's backward inputs: x, and the gradient of the signs and their code in its shape.
void check_grad_code(const torch::Tensor& grad, const torch::Tensor& code, const torch::Tensor& x) {
  check_rows(x, "BatchNorm's input");
  check_rows(grad, "the gradient");
  check_rows(code, "the code");
  TORCH_CHECK(grad.sizes() == x.sizes() && code.sizes() == x.sizes() && code.scalar_type() == at::kByte,
              "fused CUDA kernels: the gradient and code must match BatchNorm's input");
}

// The three dtypes the callers admit (float32, and bfloat16 / float16 under autocast), so no
// double instantiations are compiled.
#define BNN_DISPATCH_FLOATS(TYPE, NAME, ...)                                                                 \
  AT_DISPATCH_SWITCH(TYPE, NAME, AT_DISPATCH_CASE(at::kFloat, __VA_ARGS__) AT_DISPATCH_CASE(at::kHalf, __VA_ARGS__) \
                         AT_DISPATCH_CASE(at::kBFloat16, __VA_ARGS__))

// Per-block partial sums [row_blocks, C] -> [C], in a fixed order.
torch::Tensor finish(const torch::Tensor& partial, int64_t row_blocks, int64_t C) { return partial.view({row_blocks, C}).sum(0); }

}  // namespace

std::pair<torch::Tensor, torch::Tensor> prelu_forward(const torch::Tensor& u, const torch::Tensor& v, const torch::Tensor& slopes) {
  check_rows(u, "the input");
  const bool add = v.defined();
  if (add) {
    check_rows(v, "the residual");
    TORCH_CHECK(v.sizes() == u.sizes() && v.scalar_type() == u.scalar_type() && v.device() == u.device(),
                "fused CUDA kernels: the residual must match the input's shape, dtype and device");
  }
  const int64_t C = u.size(1);
  check_channels(slopes, C, "the slopes");
  const c10::cuda::CUDAGuard guard(u.device());
  torch::Tensor y = at::empty_like(u);
  torch::Tensor s = add ? at::empty_like(u) : u;
  if (u.numel() == 0) return {y, s};
  const int64_t rows = u.numel() / C;
  const Launch l = launch_for(rows, C);
  auto stream = c10::cuda::getCurrentCUDAStream();
  BNN_DISPATCH_FLOATS(u.scalar_type(), "prelu_forward", [&] {
    if (add) {
      prelu_forward_kernel<scalar_t, true><<<l.grid, l.block, 0, stream>>>(
          u.const_data_ptr<scalar_t>(), v.const_data_ptr<scalar_t>(), slopes.const_data_ptr<float>(), y.mutable_data_ptr<scalar_t>(),
          s.mutable_data_ptr<scalar_t>(), rows, C);
    } else {
      prelu_forward_kernel<scalar_t, false><<<l.grid, l.block, 0, stream>>>(
          u.const_data_ptr<scalar_t>(), nullptr, slopes.const_data_ptr<float>(), y.mutable_data_ptr<scalar_t>(), nullptr, rows, C);
    }
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {y, s};
}

std::pair<torch::Tensor, torch::Tensor> prelu_backward(const torch::Tensor& grad, const torch::Tensor& s, const torch::Tensor& slopes) {
  check_rows(s, "the saved pre-activation");
  check_rows(grad, "the gradient");
  TORCH_CHECK(grad.sizes() == s.sizes() && grad.scalar_type() == s.scalar_type(),
              "fused CUDA kernels: the gradient must match the pre-activation's shape and dtype");
  const int64_t C = s.size(1);
  check_channels(slopes, C, "the slopes");
  const c10::cuda::CUDAGuard guard(s.device());
  torch::Tensor dx = at::empty_like(s);
  if (s.numel() == 0) return {dx, at::zeros_like(slopes)};
  const int64_t rows = s.numel() / C;
  const Launch l = launch_for(rows, C);
  torch::Tensor partial = at::empty({l.row_blocks * C}, slopes.options());
  auto stream = c10::cuda::getCurrentCUDAStream();
  BNN_DISPATCH_FLOATS(s.scalar_type(), "prelu_backward", [&] {
    prelu_backward_kernel<scalar_t><<<l.grid, l.block, 0, stream>>>(grad.const_data_ptr<scalar_t>(), s.const_data_ptr<scalar_t>(),
                                                                     slopes.const_data_ptr<float>(), dx.mutable_data_ptr<scalar_t>(),
                                                                     partial.mutable_data_ptr<float>(), rows, C);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {dx, finish(partial, l.row_blocks, C)};
}

std::pair<torch::Tensor, torch::Tensor> bn_sign_forward(const torch::Tensor& x, const torch::Tensor& mean, const torch::Tensor& scale,
                                                        const torch::Tensor& bias, c10::ScalarType dtype) {
  check_rows(x, "BatchNorm's input");
  const int64_t C = x.size(1);
  check_channels(mean, C, "the mean");
  check_channels(scale, C, "the scale");
  check_channels(bias, C, "the bias");
  const c10::cuda::CUDAGuard guard(x.device());
  torch::Tensor signs = at::empty_like(x, x.options().dtype(dtype));
  torch::Tensor code = at::empty_like(x, x.options().dtype(at::kByte));
  if (x.numel() == 0) return {signs, code};
  const int64_t rows = x.numel() / C;
  const Launch l = launch_for(rows, C);
  auto stream = c10::cuda::getCurrentCUDAStream();
  BNN_DISPATCH_FLOATS(x.scalar_type(), "bn_sign_forward_in", [&] {
    using in_t = scalar_t;
    BNN_DISPATCH_FLOATS(dtype, "bn_sign_forward_out", [&] {
      bn_sign_forward_kernel<in_t, scalar_t><<<l.grid, l.block, 0, stream>>>(
          x.const_data_ptr<in_t>(), mean.const_data_ptr<float>(), scale.const_data_ptr<float>(), bias.const_data_ptr<float>(),
          signs.mutable_data_ptr<scalar_t>(), code.mutable_data_ptr<uint8_t>(), rows, C);
    });
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {signs, code};
}

std::pair<torch::Tensor, torch::Tensor> bn_sign_grad_sums(const torch::Tensor& grad, const torch::Tensor& code, const torch::Tensor& x,
                                                          const torch::Tensor& mean) {
  check_grad_code(grad, code, x);
  const int64_t C = x.size(1);
  check_channels(mean, C, "the mean");
  const c10::cuda::CUDAGuard guard(x.device());
  if (x.numel() == 0) return {at::zeros_like(mean), at::zeros_like(mean)};
  const int64_t rows = x.numel() / C;
  const Launch l = launch_for(rows, C);
  torch::Tensor partial = at::empty({2, l.row_blocks * C}, mean.options());
  auto stream = c10::cuda::getCurrentCUDAStream();
  BNN_DISPATCH_FLOATS(grad.scalar_type(), "bn_sign_grad_sums_g", [&] {
    using grad_t = scalar_t;
    BNN_DISPATCH_FLOATS(x.scalar_type(), "bn_sign_grad_sums_x", [&] {
      float* p = partial.mutable_data_ptr<float>();
      bn_sign_grad_sums_kernel<grad_t, scalar_t><<<l.grid, l.block, 0, stream>>>(
          grad.const_data_ptr<grad_t>(), code.const_data_ptr<uint8_t>(), x.const_data_ptr<scalar_t>(), mean.const_data_ptr<float>(), p,
          p + l.row_blocks * C, rows, C);
    });
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {finish(partial[0], l.row_blocks, C), finish(partial[1], l.row_blocks, C)};
}

torch::Tensor bn_sign_grad_input(const torch::Tensor& grad, const torch::Tensor& code, const torch::Tensor& x, const torch::Tensor& mean,
                                 const torch::Tensor& scale, const torch::Tensor& mean_dy, const torch::Tensor& coef) {
  check_grad_code(grad, code, x);
  const int64_t C = x.size(1);
  check_channels(mean, C, "the mean");
  check_channels(scale, C, "the scale");
  check_channels(mean_dy, C, "the mean gradient");
  check_channels(coef, C, "the coefficient");
  const c10::cuda::CUDAGuard guard(x.device());
  torch::Tensor dx = at::empty_like(x);
  if (x.numel() == 0) return dx;
  const int64_t rows = x.numel() / C;
  const Launch l = launch_for(rows, C);
  auto stream = c10::cuda::getCurrentCUDAStream();
  BNN_DISPATCH_FLOATS(grad.scalar_type(), "bn_sign_grad_input_g", [&] {
    using grad_t = scalar_t;
    BNN_DISPATCH_FLOATS(x.scalar_type(), "bn_sign_grad_input_x", [&] {
      bn_sign_grad_input_kernel<grad_t, scalar_t><<<l.grid, l.block, 0, stream>>>(
          grad.const_data_ptr<grad_t>(), code.const_data_ptr<uint8_t>(), x.const_data_ptr<scalar_t>(), mean.const_data_ptr<float>(),
          scale.const_data_ptr<float>(), mean_dy.const_data_ptr<float>(), coef.const_data_ptr<float>(), dx.mutable_data_ptr<scalar_t>(),
          rows, C);
    });
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return dx;
}

}  // namespace bnn::nn::cuda
