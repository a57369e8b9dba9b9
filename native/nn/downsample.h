#pragma once
// The shortcut of a block that changes shape. Every kind keeps the same child names, so that
// weights move to and from PyTorch unchanged: `0` the 1x1 conv, `1` its BatchNorm, `2` the pool.
//   avgpool (the recipe's): full-precision 1x1 conv (stride 1) -> BatchNorm -> 2x2 average pool
//            (stride 2). The pool uses ceil mode and ignores padding so an odd map (7x7) gives the
//            same 4x4 as the block's strided 3x3 conv.
//   strided (ResNet's, He et al. 2016): full-precision 1x1 conv with the block's stride -> BatchNorm.
//   binary:  the shortcut binarised too: sign -> 1x1 BinaryConv2d (1-bit weights in stage 2) ->
//            BatchNorm -> 2x2 average pool. Without binary activations ReLU replaces the sign, as
//            in the blocks.
#include <torch/nn/modules/container/sequential.h>

#include "nn/sign_conv2d.h"

namespace bnn::nn {

enum class DownsampleKind { AvgPool, Strided, Binary };

torch::nn::Sequential make_downsample(int64_t in_channels, int64_t out_channels, int64_t stride, double bn_momentum,
                                      DownsampleKind kind = DownsampleKind::AvgPool, bool binary_activations = true,
                                      bool binary_weights = false, SignGradient sign_gradient = SignGradient::Ste);

}  // namespace bnn::nn
