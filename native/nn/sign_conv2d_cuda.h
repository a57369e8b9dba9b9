#pragma once
// CUDA kernels of sign_conv2d (CUDA builds only): the sign and its straight-through mask written
// as one code byte per element by the pass that makes the +-1 input (bit 0: -1 < x < 1 keeps the
// gradient, bit 1: x >= 0), the +-1 input rebuilt from it for the weight gradient, and the masked
// input gradient. The CPU path in sign_conv2d.cpp uses the same encoding.
#include <utility>

#include <torch/types.h>

namespace bnn::nn::cuda {

// x: a dense CUDA tensor (any memory format). Signs come out in `dtype` (the convolution's compute
// dtype, bfloat16 under autocast) with x's layout; NaN stays NaN.
std::pair<torch::Tensor, torch::Tensor> sign_code(const torch::Tensor& x, c10::ScalarType dtype);
torch::Tensor signs_from_code(const torch::Tensor& code, c10::ScalarType dtype);
// grad with the code's layout (copied into it otherwise); zero where the code's bit 0 is clear.
torch::Tensor masked_grad(const torch::Tensor& grad, const torch::Tensor& code);

}  // namespace bnn::nn::cuda
