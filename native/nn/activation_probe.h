#pragma once
// Statistics of the tensors fed to the sign activations, for the diagnostics BNN researchers
// watch: how many values sit outside the straight-through window (|x| >= 1, where the clipped
// gradient is cut), how the signs balance, and how many channels output one sign everywhere.
// A block records into the probe only while one is attached (ResNet18Impl::activation_statistics
// attaches it for a single forward), so training pays nothing for it.
#include <cstdint>
#include <string>
#include <vector>

#include <torch/types.h>

namespace bnn::nn {

struct ActivationStats {
  std::string layer;              // the binary conv the sign feeds (`layer1.0.conv`, `layer2.0.downsample.0`)
  int64_t values = 0;             // elements signed
  int64_t saturated = 0;          // |x| >= 1
  int64_t positive = 0;           // x >= 0, which the sign maps to +1
  int64_t channels = 0;
  int64_t constant_channels = 0;  // channels whose sign is the same at every position of the batch
};

class ActivationProbe {
 public:
  // x: the sign's input, [N, C, H, W].
  void record(const std::string& layer, const torch::Tensor& x);
  const std::vector<ActivationStats>& results() const { return results_; }

 private:
  std::vector<ActivationStats> results_;
};

}  // namespace bnn::nn
