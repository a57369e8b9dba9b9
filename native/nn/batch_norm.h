#pragma once
// The network's BatchNorm: torch::nn::BatchNorm2d (same options, parameters, buffers and names),
// whose training-mode statistics can instead come from the batches of several replicas
// (SyncBatchNorm). nn/ knows nothing of process groups: distributed/ supplies the statistics
// through BatchNormSync and installs it with ResNet18Impl::set_batch_norm_sync.
#include <memory>

#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/pimpl.h>

namespace bnn::nn {

class BatchNormSync {
 public:
  virtual ~BatchNormSync() = default;
  // A training-mode BatchNorm of x with bn's affine parameters, updating bn's running statistics;
  // every replica calls it for the same modules in the same order.
  virtual torch::Tensor forward(torch::nn::BatchNorm2dImpl& bn, const torch::Tensor& x) = 0;
};

class BatchNorm2dImpl : public torch::nn::BatchNorm2dImpl {
 public:
  using torch::nn::BatchNorm2dImpl::BatchNorm2dImpl;
  torch::Tensor forward(const torch::Tensor& x);

  // Null: each replica normalises with its own batch (and in eval mode always).
  std::shared_ptr<BatchNormSync> sync;
};
TORCH_MODULE(BatchNorm2d);

}  // namespace bnn::nn
