#pragma once
// Mixup (Zhang et al. 2018, "mixup: Beyond Empirical Risk Minimization"): a training step sees the
// convex combination lambda * x + (1 - lambda) * x[index] of its batch and a permutation of it, and
// learns lambda * CE(logits, y) + (1 - lambda) * CE(logits, y[index]).
#include <cstdint>

#include <torch/types.h>

namespace bnn::train {

// One batch's mixing. Inactive (the step is the plain one) while `index` is undefined.
struct Mixup {
  double lambda = 1.0;
  torch::Tensor index;  // int64 [N]: the partner of each sample (a permutation of 0..N-1)
  bool active() const { return index.defined(); }
};

// lambda ~ Beta(alpha, alpha) and a uniform random permutation of n, both from a CPU generator
// seeded with `seed` alone: the same seed gives the same draw on every machine and device, so a
// run that derives the seed from its position (run seed, stage, epoch, step) resumes exactly
// without saving any generator state. Beta is PyTorch's own sampler (torch.distributions.Beta
// draws through _sample_dirichlet), so a draw can be checked against PyTorch's from the same seed;
// below alpha = 0.05, where that sampler underflows to 0.5, lambda is drawn in log space instead.
Mixup draw_mixup(double alpha, int64_t n, uint64_t seed);

// Checks a mixing against a batch of n samples: lambda in [0, 1], index int64 [n] within [0, n).
void check_mixup(const Mixup& mixup, int64_t n);

// lambda * images + (1 - lambda) * images[index], on the images' device (differentiable).
torch::Tensor mix_images(const torch::Tensor& images, const Mixup& mixup);

// lambda * CE(logits, labels) + (1 - lambda) * CE(logits, labels[index]), each term with the same
// label smoothing as cross_entropy (so lambda = 1 is exactly cross_entropy).
torch::Tensor mixup_cross_entropy(const torch::Tensor& logits, const torch::Tensor& labels, const Mixup& mixup,
                                  double label_smoothing = 0.0);

// The label a mixed sample is scored against for training accuracy: the one with the larger
// weight (labels where lambda >= 0.5, else labels[index]).
torch::Tensor mixup_dominant_labels(const torch::Tensor& labels, const Mixup& mixup);

}  // namespace bnn::train
