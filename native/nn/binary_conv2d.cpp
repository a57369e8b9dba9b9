#include "nn/binary_conv2d.h"

#include <cmath>

#include <torch/nn/init.h>

#include "binarize/binary_weight.h"
#include "nn/sign_conv2d.h"

namespace bnn::nn {

BinaryConv2dImpl::BinaryConv2dImpl(BinaryConv2dOptions options_) : options(std::move(options_)) { reset(); }

void BinaryConv2dImpl::reset() {
  weight = register_parameter(
      "weight", torch::empty({options.out_channels(), options.in_channels(), options.kernel_size(), options.kernel_size()}));
  reset_parameters();
}

void BinaryConv2dImpl::reset_parameters() {
  // torch.nn.Conv2d's default initialisation, so fresh models train like PyTorch's.
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
}

torch::Tensor BinaryConv2dImpl::effective_weight() const {
  return options.binary_weights() ? binarize_weight(weight) : weight;
}

torch::Tensor BinaryConv2dImpl::forward(const torch::Tensor& input) {
  switch (options.input_activation()) {
    case InputActivation::Sign:
      return sign_conv2d(input, effective_weight(), options.stride(), options.padding(), options.sign_gradient());
    case InputActivation::ReLU:
      return torch::conv2d(torch::relu(input), effective_weight(), /*bias=*/{}, options.stride(), options.padding());
    case InputActivation::None:
      break;
  }
  return torch::conv2d(input, effective_weight(), /*bias=*/{}, options.stride(), options.padding());
}

void BinaryConv2dImpl::pretty_print(std::ostream& stream) const {
  stream << "bnn::BinaryConv2d(" << options.in_channels() << ", " << options.out_channels()
         << ", kernel_size=" << options.kernel_size() << ", stride=" << options.stride()
         << ", padding=" << options.padding() << ", binary_weights=" << options.binary_weights();
  if (options.input_activation() != InputActivation::None) {
    stream << ", input=" << (options.input_activation() == InputActivation::Sign ? "sign" : "relu");
    if (options.sign_gradient() == SignGradient::ApproxSign) stream << ", sign_gradient=approx-sign";
  }
  stream << ")";
}

}  // namespace bnn::nn
