#include "train/mixup.h"

#include <cmath>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "core/errors.h"
#include "train/loss.h"

namespace bnn::train {

Mixup draw_mixup(double alpha, int64_t n, uint64_t seed) {
  if (!(alpha > 0.0) || !std::isfinite(alpha)) fail(ErrorKind::InvalidArgument, "mixup: alpha must be a positive number, got " + std::to_string(alpha));
  if (n < 1) fail(ErrorKind::InvalidArgument, "mixup: the batch must hold at least one sample, got " + std::to_string(n));
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const torch::Tensor concentration = torch::full({2}, alpha, torch::TensorOptions().dtype(torch::kDouble));
  Mixup m;
  {
    // Draws on a private generator; no graph, whatever mode the caller is in.
    torch::NoGradGuard no_grad;
    m.lambda = at::_sample_dirichlet(concentration, gen)[0].item<double>();
    m.index = torch::randperm(n, gen, torch::TensorOptions().dtype(torch::kLong));
  }
  return m;
}

void check_mixup(const Mixup& mixup, int64_t n) {
  if (!(mixup.lambda >= 0.0 && mixup.lambda <= 1.0)) {
    fail(ErrorKind::InvalidArgument, "mixup: lambda must be in [0, 1], got " + std::to_string(mixup.lambda));
  }
  const torch::Tensor& index = mixup.index;
  if (!index.defined() || index.dim() != 1 || index.size(0) != n) {
    fail(ErrorKind::InvalidArgument, "mixup: index must be [N] with N = " + std::to_string(n) + " (the batch size), got " +
                                         (index.defined() ? c10::str(index.sizes()) : std::string("undefined")));
  }
  if (index.scalar_type() != at::kLong) fail(ErrorKind::InvalidType, std::string("mixup: index must be int64, got ") + c10::toString(index.scalar_type()));
  if (n > 0) {
    const auto [lo, hi] = at::aminmax(index);
    const int64_t min = lo.item<int64_t>(), max = hi.item<int64_t>();
    if (min < 0 || max >= n) fail(ErrorKind::InvalidArgument, "mixup: index must be in [0, " + std::to_string(n - 1) + "], found " + std::to_string(min < 0 ? min : max));
  }
}

torch::Tensor mix_images(const torch::Tensor& images, const Mixup& mixup) {
  const torch::Tensor partner = images.index_select(0, mixup.index.to(images.device()));
  // Written as the paper (and PyTorch reference code) writes it, so that float rounding agrees.
  return images * mixup.lambda + partner * (1.0 - mixup.lambda);
}

torch::Tensor mixup_cross_entropy(const torch::Tensor& logits, const torch::Tensor& labels, const Mixup& mixup, double label_smoothing) {
  const torch::Tensor a = cross_entropy(logits, labels, label_smoothing);  // checks the labels first
  check_mixup(mixup, labels.size(0));
  const torch::Tensor b = cross_entropy(logits, labels.index_select(0, mixup.index.to(labels.device())), label_smoothing);
  return a * mixup.lambda + b * (1.0 - mixup.lambda);
}

torch::Tensor mixup_dominant_labels(const torch::Tensor& labels, const Mixup& mixup) {
  if (mixup.lambda >= 0.5) return labels;
  return labels.index_select(0, mixup.index.to(labels.device()));
}

}  // namespace bnn::train
