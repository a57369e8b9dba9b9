#pragma once
// conv2d(sign(x), W) as one autograd node that keeps the straight-through mask and the sign for
// backward (one code byte per input element on the CPU for float32 and on CUDA, two elsewhere)
// instead of the float +-1 tensor a plain sign -> conv2d chain saves for the weight gradient. Same
// forward and gradients, less memory. Under autocast the convolution runs in autocast's dtype (the
// +-1 input is exact there) and the gradients return in the inputs' own dtypes.
#include <torch/nn/modules/batchnorm.h>
#include <torch/types.h>

namespace bnn::nn {

// The gradient the sign passes back (its forward is the same either way: +1 where x >= 0).
//   Ste:        the recipe's clipped straight-through estimator, 1 where |x| < 1, else 0.
//   ApproxSign: Bi-Real Net's (Liu et al. 2018), the derivative of the piecewise polynomial
//               -1 | x^2 + 2x | -x^2 + 2x | 1 (breaks at -1, 0, 1): 2 - 2|x| where |x| < 1, else 0.
enum class SignGradient { Ste, ApproxSign };

torch::Tensor sign_conv2d(const torch::Tensor& x, const torch::Tensor& weight, int64_t stride, int64_t padding,
                          SignGradient gradient = SignGradient::Ste);

// conv2d(sign(bn(x)), W) with bn in training mode, as one autograd node: the sign's code byte comes
// straight from x and the batch statistics, so BatchNorm's output is never written (nor read back
// by the sign), and backward masks the gradient inside BatchNorm's two passes instead of writing
// the masked copy first. Updates bn's running statistics and num_batches_tracked as bn(x) would;
// same forward and gradients as bn -> sign_conv2d (Ste) up to float rounding. CUDA kernels
// (nn/fused_cuda.h); on the CPU only under FusionFlags::cpu_reference, with ATen ops.
//
// bn_sign_fusable says whether it applies: the fusion flag for x's device, a 4-D channels-last
// floating x with more than one value per channel, and a training-mode, affine BatchNorm with
// running statistics, a fixed momentum and no cross-replica sync (nn::BatchNorm2dImpl::sync).
bool bn_sign_fusable(const torch::Tensor& x, const torch::nn::BatchNorm2dImpl& bn, bool synced);
torch::Tensor bn_sign_conv2d(const torch::Tensor& x, torch::nn::BatchNorm2dImpl& bn, const torch::Tensor& weight, int64_t stride,
                             int64_t padding);

}  // namespace bnn::nn
