#include "nn/sign_conv2d.h"

#include <torch/autograd.h>
#include <torch/torch.h>

#include "binarize/binary_activation.h"

namespace bnn::nn {

namespace {

class SignConv2dFunction : public torch::autograd::Function<SignConv2dFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& weight,
                               int64_t stride, int64_t padding) {
    auto [signs, mask] = binary_activation_forward(x);
    torch::Tensor y = torch::conv2d(signs, weight, /*bias=*/{}, stride, padding);
    ctx->save_for_backward({x.ge(0), mask, weight});
    ctx->saved_data["stride"] = stride;
    ctx->saved_data["padding"] = padding;
    return y;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& positive = saved[0];
    const torch::Tensor& mask = saved[1];
    const torch::Tensor& weight = saved[2];
    const int64_t stride = ctx->saved_data["stride"].toInt();
    const int64_t padding = ctx->saved_data["padding"].toInt();
    // The +-1 input rebuilt exactly from its sign bit.
    const torch::Tensor signs = torch::where(positive, torch::ones({}, weight.options()), -torch::ones({}, weight.options()));
    auto [grad_signs, grad_weight, unused] = at::convolution_backward(
        grads[0], signs, weight, std::nullopt, {stride, stride}, {padding, padding}, {1, 1}, false, {0, 0}, 1,
        {ctx->needs_input_grad(0), ctx->needs_input_grad(1), false});
    torch::Tensor grad_x = grad_signs.defined() ? binary_activation_backward(grad_signs, mask) : torch::Tensor();
    return {grad_x, grad_weight, torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor sign_conv2d(const torch::Tensor& x, const torch::Tensor& weight, int64_t stride, int64_t padding) {
  return SignConv2dFunction::apply(x, weight, stride, padding);
}

}  // namespace bnn::nn
