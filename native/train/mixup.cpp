#include "train/mixup.h"

#include <cmath>

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "core/errors.h"
#include "train/loss.h"

namespace bnn::train {

namespace {

// Below this alpha, Beta(alpha, alpha) is drawn in log space. ATen's Dirichlet normalises two
// Gamma(alpha) draws, and for small alpha both underflow (P(G < DBL_MIN) is about e^(-708 alpha)):
// it then returns exactly 0.5, the most mixing of all, where the distribution puts almost all its
// mass near 0 and 1 (at alpha = 1e-3 a quarter of its draws are 0.5). From 0.05 up both underflow
// with probability below 1e-30, and the draw stays PyTorch's, bit for bit.
constexpr double kLogSpaceBelow = 0.05;

// Gamma(a) = Gamma(a + 1) * U^(1/a) (Marsaglia and Tsang's boost), kept as a logarithm:
// log G = log Gamma(a + 1) + log(U) / a, and lambda = G1 / (G1 + G2) = 1 / (1 + exp(log G2 - log G1)).
double beta_in_log_space(double alpha, at::Generator& gen) {
  const auto f64 = torch::TensorOptions().dtype(torch::kDouble);
  const torch::Tensor big = at::_standard_gamma(torch::full({2}, alpha + 1.0, f64), gen);
  // 1 - U lies in (0, 1]: its logarithm is finite.
  const torch::Tensor log_u = torch::log1p(-torch::rand({2}, gen, f64));
  const torch::Tensor log_g = torch::log(big) + log_u / alpha;
  const double d = (log_g[1] - log_g[0]).item<double>();
  // Below alpha ~ 1e-307 both logarithms reach -inf; the larger log(U) is then the larger Gamma.
  if (std::isnan(d)) return log_u[0].item<double>() >= log_u[1].item<double>() ? 1.0 : 0.0;
  return 1.0 / (1.0 + std::exp(d));  // d = +inf gives 0, -inf gives 1
}

}  // namespace

Mixup draw_mixup(double alpha, int64_t n, uint64_t seed) {
  if (!(alpha > 0.0) || !std::isfinite(alpha)) fail(ErrorKind::InvalidArgument, "mixup: alpha must be a positive number, got " + std::to_string(alpha));
  if (n < 1) fail(ErrorKind::InvalidArgument, "mixup: the batch must hold at least one sample, got " + std::to_string(n));
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const torch::Tensor concentration = torch::full({2}, alpha, torch::TensorOptions().dtype(torch::kDouble));
  Mixup m;
  {
    // Draws on a private generator; no graph, whatever mode the caller is in.
    torch::NoGradGuard no_grad;
    m.lambda = alpha >= kLogSpaceBelow ? at::_sample_dirichlet(concentration, gen)[0].item<double>() : beta_in_log_space(alpha, gen);
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
