#pragma once
// The recipe's network: ResNet-18 with binary blocks, the double skip, full-precision
// downsampling, a full-precision stem and classifier. Child names follow torchvision's ResNet
// (conv1, bn1, layer1..layer4, fc) so weights move to and from PyTorch unchanged.
#include <memory>
#include <string>
#include <vector>

#include <torch/nn/cloneable.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include "nn/activation_probe.h"
#include "nn/batch_norm.h"

namespace bnn::nn {

struct ResNetConfig {
  int64_t num_classes = 10;
  int64_t in_channels = 3;
  int64_t width = 64;                  // base channels (64 in ResNet-18)
  std::string stem = "small";          // "small": 3x3 stride 1; "imagenet": 7x7 stride 2 + max-pool
  bool double_skip = true;             // two single-conv blocks per ResNet basic block
  bool binary_activations = true;
  bool binary_weights = false;
  double bn_momentum = 0.1;            // PyTorch convention
  // The tricks ablation's switches (the defaults are the recipe; names as in the TypeScript API):
  std::string block_order = "bn-sign-conv";   // or "sign-conv-bn" (Bi-Real Net)
  std::string block_activation = "prelu";     // after the residual add: "prelu", "relu", "none" or "rprelu" (ReActNet)
  std::string downsample = "avgpool";         // shortcut of shape-changing blocks: "avgpool", "strided" or "binary"
  // Alternative binarisers (issue 16; additions, not the recipe's):
  std::string sign_gradient = "ste";          // "ste" (clipped straight-through) or "approx-sign" (Bi-Real Net)
  bool learnable_thresholds = false;          // ReActNet's RSign: sign(x - threshold[c]) before each block conv

  // Throws bnn::Error naming the first invalid field.
  void validate() const;
};

class ResNet18Impl : public torch::nn::Cloneable<ResNet18Impl> {
 public:
  explicit ResNet18Impl(ResNetConfig config);
  void reset() override;
  // Checks the input's rank, channels, dtype and device before running, so mistakes are clear
  // errors rather than convolution failures deep inside.
  torch::Tensor forward(const torch::Tensor& x);

  void set_binary_weights(bool on);
  // NHWC activations and conv weights (on by default): oneDNN's convolutions, BatchNorm and the
  // fused kernels run ~25% faster in it on the CPU. Numerics and parameter names are unchanged.
  void set_channels_last(bool on);
  bool channels_last() const { return channels_last_; }
  bool binary_weights() const { return config.binary_weights; }
  // SyncBatchNorm: every BatchNorm takes its training-mode statistics from `sync` (null: from its
  // own batch, as before).
  void set_batch_norm_sync(const std::shared_ptr<BatchNormSync>& sync);
  void check_input(const torch::Tensor& x) const;
  // Statistics of every sign activation's input on one batch, in module order (empty with ReLU
  // activations). BatchNorm normalises with the batch's own statistics, as the signs see them in
  // training; the running statistics, the train/eval mode and SyncBatchNorm are left as they were,
  // and no gradient is recorded.
  std::vector<ActivationStats> activation_statistics(const torch::Tensor& x);

  ResNetConfig config;
  torch::nn::Conv2d conv1{nullptr};
  BatchNorm2d bn1{nullptr};
  torch::nn::Sequential layer1{nullptr}, layer2{nullptr}, layer3{nullptr}, layer4{nullptr};
  torch::nn::Linear fc{nullptr};

 private:
  bool channels_last_ = false;
};
TORCH_MODULE(ResNet18);

}  // namespace bnn::nn
