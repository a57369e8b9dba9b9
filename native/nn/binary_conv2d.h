#pragma once
// A convolution over latent float weights that can switch to 1-bit weights (the recipe's stage 2)
// on a live model: the latent weights are kept and trained either way.
#include <torch/nn/cloneable.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include "nn/sign_conv2d.h"

namespace bnn::nn {

// What the convolution applies to its input first. The blocks binarise their own input in their
// forward (None here); the binary shortcut (downsample 'binary') is one Sequential child, so its
// conv does the sign itself.
enum class InputActivation { None, Sign, ReLU };

struct BinaryConv2dOptions {
  BinaryConv2dOptions(int64_t in_channels, int64_t out_channels, int64_t kernel_size)
      : in_channels_(in_channels), out_channels_(out_channels), kernel_size_(kernel_size) {}
  TORCH_ARG(int64_t, in_channels);
  TORCH_ARG(int64_t, out_channels);
  TORCH_ARG(int64_t, kernel_size);
  TORCH_ARG(int64_t, stride) = 1;
  TORCH_ARG(int64_t, padding) = 0;
  TORCH_ARG(bool, binary_weights) = false;
  TORCH_ARG(InputActivation, input_activation) = InputActivation::None;
  TORCH_ARG(SignGradient, sign_gradient) = SignGradient::Ste;  // with InputActivation::Sign
};

class BinaryConv2dImpl : public torch::nn::Cloneable<BinaryConv2dImpl> {
 public:
  explicit BinaryConv2dImpl(BinaryConv2dOptions options);
  void reset() override;
  void reset_parameters();
  torch::Tensor forward(const torch::Tensor& input);
  void pretty_print(std::ostream& stream) const override;

  void set_binary_weights(bool on) { options.binary_weights(on); }
  bool binary_weights() const { return options.binary_weights(); }
  // The weight the convolution uses now: latent (stage 1) or sign * alpha (stage 2).
  torch::Tensor effective_weight() const;

  BinaryConv2dOptions options;
  torch::Tensor weight;  // latent float weights, named "weight" as in torch.nn.Conv2d
};
TORCH_MODULE(BinaryConv2d);

}  // namespace bnn::nn
