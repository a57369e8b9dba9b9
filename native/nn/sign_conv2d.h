#pragma once
// conv2d(sign(x), W) as one autograd node that keeps the straight-through mask and the sign for
// backward (one code byte per input element on the CPU for float32 and on CUDA, two elsewhere)
// instead of the float +-1 tensor a plain sign -> conv2d chain saves for the weight gradient. Same
// forward and gradients, less memory. Under autocast the convolution runs in autocast's dtype (the
// +-1 input is exact there) and the gradients return in the inputs' own dtypes.
#include <torch/types.h>

namespace bnn::nn {

torch::Tensor sign_conv2d(const torch::Tensor& x, const torch::Tensor& weight, int64_t stride, int64_t padding);

}  // namespace bnn::nn
