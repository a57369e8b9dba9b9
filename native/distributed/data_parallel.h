#pragma once
// Data parallelism as PyTorch's DistributedDataParallel does it by default: every process holds a
// full replica; rank 0's parameters and buffers are broadcast at the start; BatchNorm normalises
// with each replica's own batch statistics, and rank 0's running statistics are broadcast before
// every forward (broadcast_buffers=True), or, with sync_batch_norm, BatchNorm normalises with the
// global batch's statistics (SyncBatchNorm, distributed/sync_batch_norm.h); gradients are averaged across processes between
// backward and the optimizer update, so every replica applies the same update.
//
// Gradients travel in buckets of about bucket_cap_bytes, filled in reverse parameter order (the
// order backward produces them). A hook on each parameter copies its gradient into its bucket as
// soon as autograd has computed it, and a full bucket's all-reduce starts at once, so
// communication overlaps the rest of backward. Buckets start in the same order on every rank,
// which collectives require.
#include <memory>
#include <mutex>
#include <vector>

#include <ATen/Tensor.h>
#include <c10/util/intrusive_ptr.h>

#include "distributed/process_group.h"
#include "nn/resnet.h"
#include "train/step.h"

namespace bnn::distributed {

struct DataParallelOptions {
  int64_t bucket_cap_bytes = int64_t{25} << 20;  // DDP's default
  bool broadcast_buffers = true;
  // torch.nn.SyncBatchNorm.convert_sync_batchnorm: training-mode BatchNorm over all ranks' batches.
  bool sync_batch_norm = false;
};

class DataParallel : public train::StepHooks {
 public:
  DataParallel(std::shared_ptr<ProcessGroup> group, nn::ResNet18 model, DataParallelOptions options = {});
  ~DataParallel() override;
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  // Checks that every rank built the same network, then copies rank 0's parameters and buffers
  // to all ranks.
  void broadcast_state();

  // Copies rank 0's buffers (BatchNorm running statistics) to all ranks. Each forward in training
  // mode updates every replica's own statistics, so call this after the last step, before
  // evaluating or saving, for replicas that agree bit for bit.
  void broadcast_buffers();

  const std::shared_ptr<ProcessGroup>& group() const { return group_; }
  // Gradient buckets (made at the first backward; 0 before it and for a single process).
  int64_t bucket_count() const { return static_cast<int64_t>(buckets_.size()); }

  void before_forward() override;
  void before_backward(double loss, bool stop) override;
  Agreement after_backward(double loss, bool stop) override;

 private:
  struct Bucket {
    std::vector<size_t> params;   // indices into params_
    std::vector<int64_t> offsets;  // of each parameter's gradient in buffer
    int64_t size = 0;              // gradient elements (buffer may hold a tail after them)
    at::Tensor buffer;
    size_t pending = 0;  // parameters whose gradient has not arrived this step
    c10::intrusive_ptr<c10d::Work> work;
  };

  void build_buckets();
  void on_gradient(size_t index, const at::Tensor& grad);
  void launch_in_order();  // caller holds mutex_

  std::shared_ptr<ProcessGroup> group_;
  nn::ResNet18 model_;
  DataParallelOptions options_;
  std::vector<at::Tensor> params_;
  std::vector<unsigned> hook_handles_;
  std::vector<size_t> bucket_of_;      // per parameter
  std::vector<size_t> slot_of_;        // per parameter: its position within its bucket
  std::vector<bool> arrived_;          // per parameter, this step
  std::vector<Bucket> buckets_;        // in launch order
  size_t next_launch_ = 0;
  bool armed_ = false;
  std::mutex mutex_;  // autograd may run hooks on its device threads
};

}  // namespace bnn::distributed
