#pragma once
// 1-bit weights for stage 2: W_b = sign(W) * alpha, alpha = mean |W| per output channel.
//
// sign maps 0 to +1 (as the activation does). alpha is detached: it scales the forward pass but is
// not differentiated. The latent weight's gradient passes straight through where |W| <= 1 and is 0
// elsewhere, so grad_W = alpha * 1{|W| <= 1} * grad_{W_b}: the chain rule through the scale.
//
// float32 weights with contiguous output channels take one fused pass (a CPU kernel, or on CUDA
// binary_weight_cuda.h unless FusionFlags::cuda is off); others the generic ATen ops.
#include <ATen/Tensor.h>
#include <torch/autograd.h>

namespace bnn {

class BinaryWeight : public torch::autograd::Function<BinaryWeight> {
 public:
  // Returns sign(W) * alpha in one pass; saves a 1-byte mask and alpha for backward.
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& weight);
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grad_outputs);
};

// Per-output-channel scale, shape [out, 1, 1, ...], computed without autograd.
at::Tensor binary_weight_scale(const at::Tensor& weight);

// Differentiable W_b for a conv weight [out, in, kh, kw] (any rank >= 2).
at::Tensor binarize_weight(const at::Tensor& weight);

}  // namespace bnn
