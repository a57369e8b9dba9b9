#include "binarize/approx_sign.h"

#include <ATen/ATen.h>

#include "binarize/binary_activation.h"
#include "core/errors.h"

namespace bnn {

at::Tensor approx_sign_signs(const at::Tensor& x) {
  detail::check_activation_input(x);
  const at::Tensor one = at::ones({}, x.options());
  return at::where(x.isnan(), x, at::where(x >= 0, one, -one));
}

at::Tensor approx_sign_backward(const at::Tensor& grad_output, const at::Tensor& x) {
  if (!grad_output.defined() || !x.defined()) fail(ErrorKind::InvalidArgument, "approx_sign backward: gradient or input is undefined");
  if (grad_output.sizes() != x.sizes()) {
    fail(ErrorKind::InvalidArgument, "approx_sign backward: gradient shape " + c10::str(grad_output.sizes()) +
                                         " differs from the input shape " + c10::str(x.sizes()));
  }
  const at::Tensor ax = x.abs();
  // where, not a multiply by 0: a cut inf or NaN gradient stays exactly 0, as the STE's bit mask.
  return at::where(ax < 1, grad_output * (2 - 2 * ax), at::zeros({}, grad_output.options()));
}

at::Tensor ApproxSign::forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x) {
  ctx->save_for_backward({x});
  return approx_sign_signs(x);
}

torch::autograd::tensor_list ApproxSign::backward(torch::autograd::AutogradContext* ctx, torch::autograd::tensor_list grad_outputs) {
  const auto saved = ctx->get_saved_variables();
  return {approx_sign_backward(grad_outputs[0], saved[0])};
}

at::Tensor approx_sign(const at::Tensor& x) {
  detail::check_activation_input(x);
  return ApproxSign::apply(x);
}

}  // namespace bnn
