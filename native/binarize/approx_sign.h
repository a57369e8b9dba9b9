#pragma once
// Bi-Real Net's ApproxSign (Liu et al. 2018): the recipe's sign forward (+1 where x >= 0, 0 included;
// NaN stays NaN) with the gradient of the piecewise polynomial
//   F(x) = -1 (x < -1),  x^2 + 2x (-1 <= x < 0),  -x^2 + 2x (0 <= x < 1),  1 (x >= 1),
// that is dF/dx = 2 - 2|x| where |x| < 1 and 0 elsewhere (also at |x| = 1, where both sides give 0).
// Against the clipped straight-through estimator (1 where |x| < 1) it weights gradients near 0 more
// and those near the clip less. Backward needs |x|, so the float input is kept (no one-byte mask):
// composed from ATen ops, any device and floating dtype.
#include <ATen/Tensor.h>
#include <torch/autograd.h>

namespace bnn {

// The forward: +1 / -1 in x's dtype, NaN kept.
at::Tensor approx_sign_signs(const at::Tensor& x);
// grad_output * (2 - 2|x|) where |x| < 1, exactly 0 elsewhere (an inf or NaN gradient included).
at::Tensor approx_sign_backward(const at::Tensor& grad_output, const at::Tensor& x);

class ApproxSign : public torch::autograd::Function<ApproxSign> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x);
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::tensor_list grad_outputs);
};

// Differentiable entry point (the blocks use the fused sign -> conv node of nn/sign_conv2d instead).
at::Tensor approx_sign(const at::Tensor& x);

}  // namespace bnn
