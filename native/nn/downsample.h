#pragma once
// The recipe's full-precision shortcut for a block that changes shape: 1x1 conv (stride 1) ->
// BatchNorm -> 2x2 average pool (stride 2). The pool uses ceil mode and ignores padding so an odd
// map (7x7) gives the same 4x4 as the block's strided 3x3 conv.
#include <torch/nn/modules/container/sequential.h>

namespace bnn::nn {

torch::nn::Sequential make_downsample(int64_t in_channels, int64_t out_channels, int64_t stride, double bn_momentum);

}  // namespace bnn::nn
