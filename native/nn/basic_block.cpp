#include "nn/basic_block.h"

#include <string>

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

torch::nn::Sequential make_block_downsample(const BlockOptions& o) {
  return make_downsample(o.in_planes(), o.planes(), o.stride(), o.bn_momentum(), o.downsample(), o.binary_activations(),
                         o.binary_weights(), o.sign_gradient());
}

// activation -> conv; with sign activations one fused node that saves bytes, not floats (ApproxSign
// keeps the float input: its gradient needs |x|).
torch::Tensor activation_conv(const torch::Tensor& x, BinaryConv2d& conv, bool binary, SignGradient gradient) {
  if (!binary) return conv(torch::relu(x));
  return sign_conv2d(x, conv->effective_weight(), conv->options.stride(), conv->options.padding(), gradient);
}

// RSign's shift before the sign (a plain sign without thresholds: no extra node).
torch::Tensor shift(const torch::Tensor& x, const torch::Tensor& threshold) {
  return threshold.defined() ? x - threshold.view({1, -1, 1, 1}) : x;
}

// One conv with what feeds it: BN -> [RSign shift] -> activation -> conv in the recipe's order,
// [shift] -> activation -> conv in Bi-Real's (whose BN follows the conv, at the caller). The recipe's
// BN -> sign -> conv is one fused node (nn::bn_sign_conv2d) where it applies and nothing needs BN's
// output itself (a probe records it, RSign shifts it, ApproxSign keeps it).
torch::Tensor norm_activation_conv(const torch::Tensor& x, bool bi_real, BatchNorm2d& bn, const torch::Tensor& threshold,
                                   BinaryConv2d& conv, bool binary, SignGradient gradient, ActivationProbe* probe,
                                   const std::string& block_name, const char* conv_name) {
  if (!bi_real && binary && gradient == SignGradient::Ste && !threshold.defined() && !probe &&
      bn_sign_fusable(x, *bn, bn->sync != nullptr)) {
    return bn_sign_conv2d(x, *bn, conv->effective_weight(), conv->options.stride(), conv->options.padding());
  }
  const torch::Tensor signed_input = shift(bi_real ? x : bn(x), threshold);
  if (probe) probe->record(block_name + conv_name, signed_input);
  return activation_conv(signed_input, conv, binary, gradient);
}

// The shortcut; a binary one's sign sees the block's input itself (nn/downsample.h), recorded
// after the block's own signs, in the order they run.
torch::Tensor shortcut(const torch::Tensor& x, torch::nn::Sequential& downsample, const BlockOptions& o, ActivationProbe* probe,
                       const std::string& name) {
  if (!downsample) return x;
  if (probe && o.downsample() == DownsampleKind::Binary && o.binary_activations()) probe->record(name + ".downsample.0", x);
  return downsample->forward(x);
}

// The block's activation on its own (a classic block's first conv) ...
torch::Tensor activate(const torch::Tensor& x, BlockActivation a, const torch::nn::PReLU& prelu, RPReLU rprelu) {
  switch (a) {
    case BlockActivation::PReLU: return nn::prelu(x, prelu->weight);
    case BlockActivation::ReLU: return torch::relu(x);
    case BlockActivation::RPReLU: return rprelu->forward(x);
    case BlockActivation::None: break;
  }
  return x;
}

// ... and after the residual add, where PReLU is one fused pass with the sum.
torch::Tensor add_activate(const torch::Tensor& out, const torch::Tensor& shortcut, BlockActivation a, const torch::nn::PReLU& prelu,
                           RPReLU rprelu) {
  switch (a) {
    case BlockActivation::PReLU: return nn::prelu_add(out, shortcut, prelu->weight);
    case BlockActivation::ReLU: return torch::relu(out + shortcut);
    case BlockActivation::RPReLU: return rprelu->forward(out + shortcut);
    case BlockActivation::None: break;
  }
  return out + shortcut;
}

}  // namespace

BasicBlockImpl::BasicBlockImpl(BlockOptions options_) : options(std::move(options_)) { reset(); }

void BasicBlockImpl::reset() {
  // Registration order fixes the parameter order, which matches the PyTorch reference.
  const auto& o = options;
  if (o.order() == BlockOrder::BnSignConv) {
    bn = register_module("bn", make_bn(o.in_planes(), o.bn_momentum()));
    conv = register_module("conv", make_conv3x3(o.in_planes(), o.planes(), o.stride(), o.binary_weights()));
  } else {
    conv = register_module("conv", make_conv3x3(o.in_planes(), o.planes(), o.stride(), o.binary_weights()));
    bn = register_module("bn", make_bn(o.planes(), o.bn_momentum()));
  }
  if (o.activation() == BlockActivation::PReLU) prelu = register_module("prelu", make_prelu(o.planes()));
  if (o.activation() == BlockActivation::RPReLU) rprelu = register_module("prelu", RPReLU(o.planes()));
  if (needs_downsample(o)) downsample = register_module("downsample", make_block_downsample(o));
  // The sign's input has in_planes channels in either order (BN(x) in the recipe's, x in Bi-Real's).
  if (o.learnable_thresholds()) sign_threshold = register_parameter("sign_threshold", torch::zeros({o.in_planes()}));
}

torch::Tensor BasicBlockImpl::forward(const torch::Tensor& x) {
  const bool bi_real = options.order() == BlockOrder::SignConvBn;
  torch::Tensor out = norm_activation_conv(x, bi_real, bn, sign_threshold, conv, options.binary_activations(), options.sign_gradient(),
                                           probe, name, ".conv");
  if (bi_real) out = bn(out);
  return add_activate(out, shortcut(x, downsample, options, probe, name), options.activation(), prelu, rprelu);
}

ClassicBasicBlockImpl::ClassicBasicBlockImpl(BlockOptions options_) : options(std::move(options_)) { reset(); }

void ClassicBasicBlockImpl::reset() {
  const auto& o = options;
  const bool recipe = o.order() == BlockOrder::BnSignConv;
  const bool with_prelu = o.activation() == BlockActivation::PReLU;
  const bool with_rprelu = o.activation() == BlockActivation::RPReLU;
  if (recipe) bn1 = register_module("bn1", make_bn(o.in_planes(), o.bn_momentum()));
  conv1 = register_module("conv1", make_conv3x3(o.in_planes(), o.planes(), o.stride(), o.binary_weights()));
  if (!recipe) bn1 = register_module("bn1", make_bn(o.planes(), o.bn_momentum()));
  if (with_prelu) prelu1 = register_module("prelu1", make_prelu(o.planes()));
  if (with_rprelu) rprelu1 = register_module("prelu1", RPReLU(o.planes()));
  if (recipe) bn2 = register_module("bn2", make_bn(o.planes(), o.bn_momentum()));
  conv2 = register_module("conv2", make_conv3x3(o.planes(), o.planes(), 1, o.binary_weights()));
  if (!recipe) bn2 = register_module("bn2", make_bn(o.planes(), o.bn_momentum()));
  if (with_prelu) prelu2 = register_module("prelu2", make_prelu(o.planes()));
  if (with_rprelu) rprelu2 = register_module("prelu2", RPReLU(o.planes()));
  if (needs_downsample(o)) downsample = register_module("downsample", make_block_downsample(o));
  if (o.learnable_thresholds()) {
    sign_threshold1 = register_parameter("sign_threshold1", torch::zeros({o.in_planes()}));
    sign_threshold2 = register_parameter("sign_threshold2", torch::zeros({o.planes()}));
  }
}

torch::Tensor ClassicBasicBlockImpl::forward(const torch::Tensor& x) {
  const bool bi_real = options.order() == BlockOrder::SignConvBn;
  const bool binary = options.binary_activations();
  // Each conv's sign input: its BN's output in the recipe's order, the conv's own input in Bi-Real's.
  const SignGradient gradient = options.sign_gradient();
  torch::Tensor out = norm_activation_conv(x, bi_real, bn1, sign_threshold1, conv1, binary, gradient, probe, name, ".conv1");
  if (bi_real) out = bn1(out);
  out = activate(out, options.activation(), prelu1, rprelu1);
  out = norm_activation_conv(out, bi_real, bn2, sign_threshold2, conv2, binary, gradient, probe, name, ".conv2");
  if (bi_real) out = bn2(out);
  return add_activate(out, shortcut(x, downsample, options, probe, name), options.activation(), prelu2, rprelu2);
}

}  // namespace bnn::nn
