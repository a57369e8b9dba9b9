#pragma once
// SyncBatchNorm, as torch.nn.SyncBatchNorm computes it: in training mode every BatchNorm
// normalises with the mean and variance of the global batch (all replicas' batches together), and
// its backward uses the global sums of the output gradient, so N replicas of batch B train as one
// process with batch N x B would, BatchNorm included. Running statistics are updated with the
// global statistics (the variance unbiased with the global count), identically on every replica.
//
// Forward all-reduces per channel [sum, sum of squares, count] (in double, so the variance
// E[x^2] - E[x]^2 does not cancel away in float); backward all-reduces [sum of dy, sum of
// dy * xhat]. The affine parameters' gradients stay local: the data-parallel gradient average
// makes them the global batch's.
#include <memory>

#include "distributed/process_group.h"
#include "nn/batch_norm.h"

namespace bnn::distributed {

class SyncBatchNorm : public nn::BatchNormSync {
 public:
  explicit SyncBatchNorm(std::shared_ptr<ProcessGroup> group);
  torch::Tensor forward(torch::nn::BatchNorm2dImpl& bn, const torch::Tensor& x) override;

 private:
  std::shared_ptr<ProcessGroup> group_;
};

}  // namespace bnn::distributed
