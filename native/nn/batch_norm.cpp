#include "nn/batch_norm.h"

namespace bnn::nn {

torch::Tensor BatchNorm2dImpl::forward(const torch::Tensor& x) {
  // Running statistics serve eval mode unchanged; only batch statistics are shared.
  if (sync && is_training()) return sync->forward(*this, x);
  return torch::nn::BatchNorm2dImpl::forward(x);
}

}  // namespace bnn::nn
