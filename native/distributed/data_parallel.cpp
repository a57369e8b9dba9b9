#include "distributed/data_parallel.h"

#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/Work.hpp>
#include <torch/torch.h>

#include "core/errors.h"
#include "distributed/sync_batch_norm.h"

namespace bnn::distributed {

namespace {

// The last bucket to start also carries [loss, stop vote] after its gradients, so the step's
// only collective tells every rank the mean loss and whether anyone wants to stop.
constexpr int64_t kTail = 2;
constexpr int64_t kFirstBucketCap = int64_t{1} << 20;  // small, so communication starts early

}  // namespace

DataParallel::DataParallel(std::shared_ptr<ProcessGroup> group, nn::ResNet18 model, DataParallelOptions options)
    : group_(std::move(group)), model_(std::move(model)), options_(options) {
  if (!group_) fail(ErrorKind::InvalidArgument, "data parallelism needs a process group");
  if (options_.bucket_cap_bytes < 1) fail(ErrorKind::InvalidArgument, "the bucket size must be positive");
  params_ = model_->parameters(/*recurse=*/true);
  for (const auto& p : params_) {
    if (!p.requires_grad()) fail(ErrorKind::InvalidArgument, "data parallelism expects every parameter to require gradients");
  }
  if (group_->world_size() == 1) return;  // nothing to share: no hooks, no copies
  if (options_.sync_batch_norm) model_->set_batch_norm_sync(std::make_shared<SyncBatchNorm>(group_));
  arrived_.assign(params_.size(), false);
  hook_handles_.reserve(params_.size());
  for (size_t i = 0; i < params_.size(); ++i) {
    // A hook on a leaf runs once per backward with the parameter's summed gradient.
    hook_handles_.push_back(params_[i].register_hook([this, i](const at::Tensor& grad) { on_gradient(i, grad); }));
  }
}

DataParallel::~DataParallel() {
  // The model outlives this object and may train alone afterwards.
  if (options_.sync_batch_norm) model_->set_batch_norm_sync(nullptr);
  for (size_t i = 0; i < hook_handles_.size(); ++i) {
    try {
      params_[i].remove_hook(hook_handles_[i]);
    } catch (...) {
    }
  }
}

void DataParallel::broadcast_state() {
  torch::NoGradGuard no_grad;
  std::vector<at::Tensor> state = params_;
  for (const auto& b : model_->buffers(/*recurse=*/true)) state.push_back(b);
  if (group_->world_size() == 1) return;
  // Broadcasting into a different network would scramble weights silently: compare shapes first.
  int64_t elements = 0;
  for (const auto& t : state) elements += t.numel();
  const at::Tensor local = at::tensor({int64_t{1}, static_cast<int64_t>(state.size()), elements}, at::kLong);
  at::Tensor sum = local.clone();
  at::Tensor sum_sq = local * local;
  group_->all_reduce_sum({sum, sum_sq});
  const int64_t w = group_->world_size();
  // Equal everywhere iff sum == w * x and sum of squares == w * x^2 for every entry.
  if (!at::equal(sum, local * w) || !at::equal(sum_sq, local * local * w)) {
    fail(ErrorKind::Distributed, "rank " + std::to_string(group_->rank()) + ": the processes built different networks (" +
                                     std::to_string(state.size()) + " tensors, " + std::to_string(elements) +
                                     " elements here); every rank must use the same model configuration");
  }
  group_->broadcast(state, 0);
}

void DataParallel::build_buckets() {
  buckets_.clear();
  bucket_of_.assign(params_.size(), 0);
  slot_of_.assign(params_.size(), 0);
  Bucket current;
  int64_t bytes = 0;
  auto close = [&] {
    if (!current.params.empty()) buckets_.push_back(std::move(current));
    current = Bucket();
    bytes = 0;
  };
  for (size_t k = params_.size(); k-- > 0;) {
    const at::Tensor& p = params_[k];
    if (!current.params.empty()) {
      const at::Tensor& first = params_[current.params.front()];
      const int64_t cap = buckets_.empty() ? std::min(kFirstBucketCap, options_.bucket_cap_bytes) : options_.bucket_cap_bytes;
      if (first.scalar_type() != p.scalar_type() || first.device() != p.device() || bytes + static_cast<int64_t>(p.nbytes()) > cap) close();
    }
    bucket_of_[k] = buckets_.size();
    slot_of_[k] = current.params.size();
    current.params.push_back(k);
    current.offsets.push_back(current.size);
    current.size += p.numel();
    bytes += static_cast<int64_t>(p.nbytes());
  }
  close();
  for (size_t b = 0; b < buckets_.size(); ++b) {
    Bucket& bucket = buckets_[b];
    const at::Tensor& first = params_[bucket.params.front()];
    const int64_t tail = b + 1 == buckets_.size() ? kTail : 0;
    bucket.buffer = at::zeros({bucket.size + tail}, first.options().requires_grad(false));
  }
}

void DataParallel::before_forward() {
  if (options_.broadcast_buffers) broadcast_buffers();
}

void DataParallel::broadcast_buffers() {
  if (group_->world_size() == 1) return;
  std::vector<at::Tensor> buffers = model_->buffers(/*recurse=*/true);
  if (buffers.empty()) return;
  torch::NoGradGuard no_grad;
  group_->broadcast(buffers, 0);
}

void DataParallel::before_backward(double loss, bool stop) {
  if (group_->world_size() == 1) return;
  std::lock_guard<std::mutex> lock(mutex_);
  // Parameters may have moved (to(device), a dtype change) since the buckets were made.
  bool stale = buckets_.empty();
  for (size_t b = 0; b < buckets_.size() && !stale; ++b) {
    const at::Tensor& first = params_[buckets_[b].params.front()];
    stale = buckets_[b].buffer.device() != first.device() || buckets_[b].buffer.scalar_type() != first.scalar_type();
  }
  if (stale) build_buckets();
  for (auto& bucket : buckets_) {
    bucket.pending = bucket.params.size();
    bucket.work.reset();
  }
  std::fill(arrived_.begin(), arrived_.end(), false);
  Bucket& last = buckets_.back();
  // Each rank adds loss / world and its vote / world: the sums are the mean loss and a positive
  // number exactly when someone voted to stop.
  last.buffer.narrow(0, last.size, kTail).copy_(at::tensor({loss, stop ? 1.0 : 0.0}, at::kDouble));
  next_launch_ = 0;
  armed_ = true;
}

void DataParallel::on_gradient(size_t index, const at::Tensor& grad) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!armed_ || !grad.defined()) return;  // a backward outside a training step
  if (arrived_[index]) fail(ErrorKind::Distributed, "a parameter received two gradients in one step; data parallelism expects one backward per step");
  arrived_[index] = true;
  Bucket& bucket = buckets_[bucket_of_[index]];
  const int64_t n = params_[index].numel();
  bucket.buffer.narrow(0, bucket.offsets[slot_of_[index]], n).view(grad.sizes()).copy_(grad);
  if (--bucket.pending == 0) launch_in_order();
}

void DataParallel::launch_in_order() {
  const double scale = 1.0 / static_cast<double>(group_->world_size());
  while (next_launch_ < buckets_.size() && buckets_[next_launch_].pending == 0) {
    Bucket& bucket = buckets_[next_launch_++];
    bucket.buffer.mul_(scale);  // average as DDP does: divide first, then sum
    bucket.work = group_->all_reduce_sum_async(bucket.buffer);
  }
}

train::StepHooks::Agreement DataParallel::after_backward(double loss, bool stop) {
  if (group_->world_size() == 1) return {loss, stop};
  std::lock_guard<std::mutex> lock(mutex_);
  armed_ = false;
  // A parameter that took no part in this step's graph contributes zeros, so that every rank
  // still starts every bucket (in the same order) and the collectives line up.
  for (size_t k = 0; k < params_.size(); ++k) {
    if (arrived_[k]) continue;
    Bucket& bucket = buckets_[bucket_of_[k]];
    bucket.buffer.narrow(0, bucket.offsets[slot_of_[k]], params_[k].numel()).zero_();
  }
  for (auto& bucket : buckets_) bucket.pending = 0;
  launch_in_order();
  for (auto& bucket : buckets_) group_->wait(bucket.work, "the gradient all-reduce");
  torch::NoGradGuard no_grad;
  for (auto& bucket : buckets_) {
    for (size_t s = 0; s < bucket.params.size(); ++s) {
      at::Tensor& p = params_[bucket.params[s]];
      const at::Tensor averaged = bucket.buffer.narrow(0, bucket.offsets[s], p.numel()).view(p.sizes());
      if (p.grad().defined()) {
        p.mutable_grad().copy_(averaged);
      } else {
        p.mutable_grad() = averaged.clone(at::MemoryFormat::Preserve).contiguous(p.suggest_memory_format());
      }
    }
  }
  const at::Tensor tail = buckets_.back().buffer.narrow(0, buckets_.back().size, kTail).to(at::kCPU, at::kDouble);
  return {tail[0].item<double>(), tail[1].item<double>() > 0};
}

}  // namespace bnn::distributed
