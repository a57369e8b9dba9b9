#include "nn/downsample.h"

#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/pooling.h>

namespace bnn::nn {

torch::nn::Sequential make_downsample(int64_t in_channels, int64_t out_channels, int64_t stride, double bn_momentum) {
  torch::nn::Sequential seq(
      torch::nn::Conv2d(torch::nn::Conv2dOptions(in_channels, out_channels, 1).stride(1).bias(false)),
      torch::nn::BatchNorm2d(torch::nn::BatchNorm2dOptions(out_channels).momentum(bn_momentum)));
  if (stride != 1) {
    seq->push_back(torch::nn::AvgPool2d(
        torch::nn::AvgPool2dOptions(stride).stride(stride).ceil_mode(true).count_include_pad(false)));
  }
  return seq;
}

}  // namespace bnn::nn
