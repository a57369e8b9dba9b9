#include "train/loss.h"

#include <cmath>

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

torch::Tensor soft_target_kl(const torch::Tensor& student, const torch::Tensor& teacher, double temperature) {
  const torch::Tensor log_p_student = torch::log_softmax(student / temperature, 1);
  // The teacher's log-probabilities from log_softmax, not log(softmax): a class whose probability
  // underflows to 0 then adds 0 * finite = 0, as kl_div's xlogy does, instead of 0 * -inf = NaN.
  const torch::Tensor t = teacher.detach().to(student.scalar_type()) / temperature;
  const torch::Tensor log_p_teacher = torch::log_softmax(t, 1);
  const torch::Tensor kl = (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum() / static_cast<double>(student.size(0));
  return kl * (temperature * temperature);
}

void check_distillation(double temperature, double weight) {
  if (!(std::isfinite(temperature) && temperature > 0.0)) {
    fail(ErrorKind::InvalidArgument, "distillation: temperature must be a finite number > 0, got " + std::to_string(temperature));
  }
  if (!(weight >= 0.0 && weight <= 1.0)) {
    fail(ErrorKind::InvalidArgument, "distillation: weight must be in [0, 1], got " + std::to_string(weight));
  }
}

torch::Tensor distillation_loss(const torch::Tensor& student, const torch::Tensor& teacher, const torch::Tensor& labels,
                                double temperature, double weight, double label_smoothing) {
  check_distillation(temperature, weight);
  if (!teacher.defined() || teacher.sizes() != student.sizes()) {
    fail(ErrorKind::InvalidArgument, "distillation: teacher logits must have the student's shape " + c10::str(student.sizes()) + ", got " +
                                         (teacher.defined() ? c10::str(teacher.sizes()) : std::string("undefined")));
  }
  if (!at::isFloatingType(teacher.scalar_type())) fail(ErrorKind::InvalidType, "distillation: teacher logits must be floating point");
  if (teacher.device() != student.device()) {
    fail(ErrorKind::InvalidArgument, "distillation: teacher logits are on " + teacher.device().str() + ", the student's on " + student.device().str());
  }
  const torch::Tensor ce = cross_entropy(student, labels, label_smoothing);
  return ce * (1.0 - weight) + soft_target_kl(student, teacher, temperature) * weight;
}

}  // namespace bnn::train
