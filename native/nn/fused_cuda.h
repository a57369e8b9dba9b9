#pragma once
// Fused CUDA kernels for the block's memory-bound chains (CUDA builds only): PReLU with the residual
// add, and training-mode BatchNorm followed by the sign. Eager ATen runs each link of these chains
// as its own kernel over the whole activation map (and PReLU's slope gradient through a full-size
// temporary), which is where torch.compile's lead over eager comes from.
//
// Every activation tensor here is a dense channels-last 4-D CUDA tensor, so it is `rows` rows of C
// contiguous channels; a thread keeps one channel's parameters in registers and walks rows.
// Per-channel vectors are float32; sums accumulate in float32 per thread, then per block, then over
// blocks with at::sum, in a fixed order for a given shape (deterministic, unlike atomics).
#include <utility>

#include <torch/types.h>

namespace bnn::nn::cuda {

// y = prelu(s, slopes) with s = u + v (or s = u when v is undefined), both in u's dtype; returns
// {y, s}: s is what backward needs (the sign of the pre-activation and its value for the slopes).
std::pair<torch::Tensor, torch::Tensor> prelu_forward(const torch::Tensor& u, const torch::Tensor& v, const torch::Tensor& slopes);
// {grad of s, grad of the slopes (float32)} in one pass over grad and s: no full-size temporary.
std::pair<torch::Tensor, torch::Tensor> prelu_backward(const torch::Tensor& grad, const torch::Tensor& s, const torch::Tensor& slopes);

// The +-1 of sign((x - mean) * scale + bias) in `dtype`, and its code byte (sign_conv2d_cuda.h's
// encoding: bit 0 the straight-through mask |v| < 1, bit 1 v >= 0), without writing BatchNorm's
// output: scale = invstd * weight.
std::pair<torch::Tensor, torch::Tensor> bn_sign_forward(const torch::Tensor& x, const torch::Tensor& mean, const torch::Tensor& scale,
                                                        const torch::Tensor& bias, c10::ScalarType dtype);
// BatchNorm backward's two per-channel sums over dy = grad masked by the code: {sum dy, sum dy * (x - mean)}.
std::pair<torch::Tensor, torch::Tensor> bn_sign_grad_sums(const torch::Tensor& grad, const torch::Tensor& code, const torch::Tensor& x,
                                                          const torch::Tensor& mean);
// BatchNorm's input gradient, in x's dtype: (dy - mean_dy - (x - mean) * coef) * scale, with
// scale = invstd * weight and coef = invstd^2 * mean(dy * (x - mean)).
torch::Tensor bn_sign_grad_input(const torch::Tensor& grad, const torch::Tensor& code, const torch::Tensor& x, const torch::Tensor& mean,
                                 const torch::Tensor& scale, const torch::Tensor& mean_dy, const torch::Tensor& coef);

}  // namespace bnn::nn::cuda
