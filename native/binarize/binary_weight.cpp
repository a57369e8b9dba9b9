#include "binarize/binary_weight.h"

#include <ATen/ATen.h>

#include "core/errors.h"

namespace bnn {

at::Tensor binary_weight_scale(const at::Tensor& weight) {
  at::NoGradGuard no_grad;
  std::vector<int64_t> reduce_dims;
  for (int64_t d = 1; d < weight.dim(); ++d) reduce_dims.push_back(d);
  return weight.abs().mean(reduce_dims, /*keepdim=*/true);
}

at::Tensor BinaryWeight::forward(torch::autograd::AutogradContext* ctx, const at::Tensor& weight) {
  const at::Tensor alpha = binary_weight_scale(weight);
  // where(W >= 0, alpha, -alpha): sign and scale in one elementwise pass over the weight.
  at::Tensor out = at::where(weight >= 0, alpha, -alpha);
  // NaN weights stay NaN so a diverged run is visible.
  out = at::where(weight.isnan(), weight, out);
  const at::Tensor mask = weight.abs().le(1);
  ctx->save_for_backward({mask, alpha});
  return out;
}

torch::autograd::tensor_list BinaryWeight::backward(torch::autograd::AutogradContext* ctx,
                                                    torch::autograd::tensor_list grad_outputs) {
  const auto saved = ctx->get_saved_variables();
  const at::Tensor& mask = saved[0];
  const at::Tensor& alpha = saved[1];
  return {at::where(mask, grad_outputs[0] * alpha, at::zeros({}, grad_outputs[0].options()))};
}

at::Tensor binarize_weight(const at::Tensor& weight) {
  if (weight.dim() < 2) fail(ErrorKind::InvalidArgument, "binarize_weight expects a weight of rank >= 2");
  if (!at::isFloatingType(weight.scalar_type())) fail(ErrorKind::InvalidType, "binarize_weight expects floating-point weights");
  return BinaryWeight::apply(weight);
}

}  // namespace bnn
