#pragma once
// conv2d(sign(x), W) as one autograd node that keeps the straight-through mask and the sign for
// backward (one code byte per input element on the CPU for float32 and on CUDA, two elsewhere)
// instead of the float +-1 tensor a plain sign -> conv2d chain saves for the weight gradient. Same
// forward and gradients, less memory. Under autocast the convolution runs in autocast's dtype (the
// +-1 input is exact there) and the gradients return in the inputs' own dtypes.
#include <torch/types.h>

namespace bnn::nn {

// The gradient the sign passes back (its forward is the same either way: +1 where x >= 0).
//   Ste:        the recipe's clipped straight-through estimator, 1 where |x| < 1, else 0.
//   ApproxSign: Bi-Real Net's (Liu et al. 2018), the derivative of the piecewise polynomial
//               -1 | x^2 + 2x | -x^2 + 2x | 1 (breaks at -1, 0, 1): 2 - 2|x| where |x| < 1, else 0.
enum class SignGradient { Ste, ApproxSign };

torch::Tensor sign_conv2d(const torch::Tensor& x, const torch::Tensor& weight, int64_t stride, int64_t padding,
                          SignGradient gradient = SignGradient::Ste);

}  // namespace bnn::nn
