#include "nn/basic_block.h"

#include "nn/downsample.h"
#include "nn/prelu.h"
#include "nn/sign_conv2d.h"

namespace bnn::nn {

namespace {

BatchNorm2d make_bn(int64_t channels, double momentum) {
  return BatchNorm2d(torch::nn::BatchNorm2dOptions(channels).momentum(momentum));
}

BinaryConv2d make_conv3x3(int64_t in, int64_t out, int64_t stride, bool binary_weights) {
  return BinaryConv2d(BinaryConv2dOptions(in, out, 3).stride(stride).padding(1).binary_weights(binary_weights));
}

torch::nn::PReLU make_prelu(int64_t channels) {
  return torch::nn::PReLU(torch::nn::PReLUOptions().num_parameters(channels));
}

bool needs_downsample(const BlockOptions& o) { return o.stride() != 1 || o.in_planes() != o.planes(); }

}  // namespace

namespace {

// activation -> conv; with sign activations one fused node that saves bytes, not floats.
torch::Tensor activation_conv(const torch::Tensor& x, BinaryConv2d& conv, bool binary) {
  if (!binary) return conv(torch::relu(x));
  return sign_conv2d(x, conv->effective_weight(), conv->options.stride(), conv->options.padding());
}

}  // namespace

BasicBlockImpl::BasicBlockImpl(BlockOptions options_) : options(std::move(options_)) { reset(); }

void BasicBlockImpl::reset() {
  // Registration order fixes the parameter order, which matches the PyTorch reference.
  bn = register_module("bn", make_bn(options.in_planes(), options.bn_momentum()));
  conv = register_module("conv", make_conv3x3(options.in_planes(), options.planes(), options.stride(), options.binary_weights()));
  prelu = register_module("prelu", make_prelu(options.planes()));
  if (needs_downsample(options)) {
    downsample = register_module(
        "downsample", make_downsample(options.in_planes(), options.planes(), options.stride(), options.bn_momentum()));
  }
}

torch::Tensor BasicBlockImpl::forward(const torch::Tensor& x) {
  const torch::Tensor signed_input = bn(x);
  if (probe) probe->record(name + ".conv", signed_input);
  const torch::Tensor out = activation_conv(signed_input, conv, options.binary_activations());
  return nn::prelu_add(out, downsample ? downsample->forward(x) : x, prelu->weight);
}

ClassicBasicBlockImpl::ClassicBasicBlockImpl(BlockOptions options_) : options(std::move(options_)) { reset(); }

void ClassicBasicBlockImpl::reset() {
  bn1 = register_module("bn1", make_bn(options.in_planes(), options.bn_momentum()));
  conv1 = register_module("conv1", make_conv3x3(options.in_planes(), options.planes(), options.stride(), options.binary_weights()));
  prelu1 = register_module("prelu1", make_prelu(options.planes()));
  bn2 = register_module("bn2", make_bn(options.planes(), options.bn_momentum()));
  conv2 = register_module("conv2", make_conv3x3(options.planes(), options.planes(), 1, options.binary_weights()));
  prelu2 = register_module("prelu2", make_prelu(options.planes()));
  if (needs_downsample(options)) {
    downsample = register_module(
        "downsample", make_downsample(options.in_planes(), options.planes(), options.stride(), options.bn_momentum()));
  }
}

torch::Tensor ClassicBasicBlockImpl::forward(const torch::Tensor& x) {
  const torch::Tensor signed_input1 = bn1(x);
  if (probe) probe->record(name + ".conv1", signed_input1);
  torch::Tensor out = nn::prelu(activation_conv(signed_input1, conv1, options.binary_activations()), prelu1->weight);
  const torch::Tensor signed_input2 = bn2(out);
  if (probe) probe->record(name + ".conv2", signed_input2);
  out = activation_conv(signed_input2, conv2, options.binary_activations());
  return nn::prelu_add(out, downsample ? downsample->forward(x) : x, prelu2->weight);
}

}  // namespace bnn::nn
