#pragma once
#include <torch/types.h>

namespace bnn::train {

// Mean cross-entropy over a batch, with optional label smoothing. Checks shapes, dtypes and the
// label range first, so a bad label is a clear error instead of a device-side assert on CUDA.
torch::Tensor cross_entropy(const torch::Tensor& logits, const torch::Tensor& labels, double label_smoothing = 0.0);

// Hinton et al.'s soft-target term, T^2 * KL(softmax(teacher / T) || softmax(student / T)) summed
// over classes and averaged over the batch: PyTorch's
// F.kl_div(F.log_softmax(s / T, 1), F.softmax(t / T, 1), reduction='batchmean') * T * T.
// The T^2 keeps its gradient on the scale of the cross-entropy's whatever T is. The teacher's
// logits are taken as constants (detached). No checks: distillation_loss and the training step check.
torch::Tensor soft_target_kl(const torch::Tensor& student, const torch::Tensor& teacher, double temperature);

// Knowledge distillation: (1 - weight) * cross_entropy(student, labels, label_smoothing)
//                        + weight * soft_target_kl(student, teacher, temperature).
// Checks everything cross_entropy checks, that teacher has the student's shape, temperature > 0
// and weight in [0, 1].
torch::Tensor distillation_loss(const torch::Tensor& student, const torch::Tensor& teacher, const torch::Tensor& labels,
                                double temperature, double weight, double label_smoothing = 0.0);

// The checks of distillation_loss's own arguments (temperature, weight), shared with the step.
void check_distillation(double temperature, double weight);

}  // namespace bnn::train
