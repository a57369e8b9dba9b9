#include "train/loss.h"

#include <torch/nn/functional/loss.h>

#include "core/errors.h"

namespace bnn::train {

torch::Tensor cross_entropy(const torch::Tensor& logits, const torch::Tensor& labels, double label_smoothing) {
  if (logits.dim() != 2) fail(ErrorKind::InvalidArgument, "cross_entropy: logits must be [N, classes], got " + c10::str(logits.sizes()));
  if (!at::isFloatingType(logits.scalar_type())) fail(ErrorKind::InvalidType, "cross_entropy: logits must be floating point");
  if (labels.dim() != 1 || labels.size(0) != logits.size(0)) {
    fail(ErrorKind::InvalidArgument, "cross_entropy: labels must be [N] with N = " + std::to_string(logits.size(0)) +
                                         ", got " + c10::str(labels.sizes()));
  }
  if (labels.scalar_type() != at::kLong) {
    fail(ErrorKind::InvalidType, std::string("cross_entropy: labels must be int64, got ") + c10::toString(labels.scalar_type()));
  }
  if (!(label_smoothing >= 0.0 && label_smoothing < 1.0)) {
    fail(ErrorKind::InvalidArgument, "cross_entropy: labelSmoothing must be in [0, 1), got " + std::to_string(label_smoothing));
  }
  if (labels.numel() > 0) {
    const auto [lo, hi] = at::aminmax(labels);
    const int64_t min = lo.item<int64_t>(), max = hi.item<int64_t>();
    if (min < 0 || max >= logits.size(1)) {
      fail(ErrorKind::InvalidArgument, "cross_entropy: labels must be in [0, " + std::to_string(logits.size(1) - 1) +
                                           "], found " + std::to_string(min < 0 ? min : max));
    }
  }
  return torch::nn::functional::cross_entropy(
      logits, labels.to(logits.device()), torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(label_smoothing));
}

}  // namespace bnn::train
