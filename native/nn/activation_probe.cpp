#include "nn/activation_probe.h"

#include <ATen/ATen.h>

namespace bnn::nn {

void ActivationProbe::record(const std::string& layer, const torch::Tensor& x) {
  const at::Tensor v = x.detach();
  ActivationStats s;
  s.layer = layer;
  s.values = v.numel();
  s.channels = v.dim() >= 2 ? v.size(1) : 1;
  if (s.values == 0) {
    results_.push_back(std::move(s));
    return;
  }
  const at::Tensor positive = v.ge(0);
  // One host read of three counts: the probe runs once an epoch, but on CUDA each .item() would
  // be a separate synchronisation.
  const int64_t per_channel = s.values / s.channels;
  const at::Tensor by_channel = v.dim() == 4 ? positive.sum({0, 2, 3}) : positive.reshape({-1, s.channels}).sum(0);
  const at::Tensor counts = at::stack({positive.sum(), v.abs().ge(1).sum(),
                                       (by_channel.eq(0) | by_channel.eq(per_channel)).sum()})
                                .to(at::kCPU);
  const int64_t* c = counts.const_data_ptr<int64_t>();
  s.positive = c[0];
  s.saturated = c[1];
  s.constant_channels = c[2];
  results_.push_back(std::move(s));
}

}  // namespace bnn::nn
