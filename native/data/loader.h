#pragma once
// Turns a dataset into batches: the epoch's order (seeded shuffle), then per batch the gathered,
// augmented, normalised float32 images [B, C, H, W] and int64 labels [B] on the requested device.
//
// A streamed (image) dataset's samples are decoded and transformed by a pool of decoder threads
// into one uint8 NHWC batch, which crosses to the device as bytes (pinned memory and an
// asynchronous copy on CUDA) and is normalised there, so the host-to-device traffic is a quarter
// of the float batch's and the float work runs where the model does.
//
// A Loader is immutable after construction; epochs are produced by EpochStream (epoch_stream.h).
// Everything random is a pure function of (seed, epoch, sample), so epoch e looks the same in a
// fresh process, on any thread, and when resumed at batch k.
#include <cstdint>
#include <memory>
#include <vector>

#include <ATen/Tensor.h>
#include <c10/core/Device.h>

#include "data/augment.h"
#include "data/dataset.h"
#include "data/worker_pool.h"

namespace bnn::data {

struct LoaderOptions {
  int64_t batch_size = 128;
  bool shuffle = true;
  bool drop_last = false;
  uint64_t seed = 0;
  bool normalize = true;
  std::vector<double> mean;  // empty: the dataset's own
  std::vector<double> std;
  AugmentOptions augment;
  c10::Device device = c10::Device(c10::kCPU);
  int64_t prefetch = 3;  // batches prepared ahead of the consumer
  int64_t workers = 0;   // decoder threads of a streamed dataset; 0: one per core
  // Data parallelism, as torch.utils.data.DistributedSampler: every process computes the same
  // epoch order and takes positions shard_rank, shard_rank + shard_count, ... of it. With
  // shard_pad the order is first extended by its own beginning to a multiple of shard_count, so
  // every shard has the same length (training: every rank runs the same number of steps);
  // without it every sample is seen exactly once (evaluation).
  int64_t shard_rank = 0;
  int64_t shard_count = 1;
  bool shard_pad = true;
};

struct Batch {
  at::Tensor images;  // float32 [B, C, H, W]
  at::Tensor labels;  // int64 [B]
  int64_t index = 0;  // position of the batch in its epoch
};

class Loader {
 public:
  // Validates the options against the dataset (InvalidArgument on a bad value).
  Loader(std::shared_ptr<const Dataset> dataset, LoaderOptions options);

  const LoaderOptions& options() const { return options_; }
  const Dataset& dataset() const { return *dataset_; }
  int64_t batches_per_epoch() const;

  // Samples this loader's shard visits per epoch.
  int64_t shard_size() const;

  // Sample indices in the order epoch `epoch` visits them (identity without shuffle), this
  // shard's part only.
  std::vector<int64_t> epoch_order(int64_t epoch) const;

  // Builds batch `index` of epoch `epoch`, whose order is `order`. Thread-safe (const).
  Batch make_batch(int64_t epoch, const std::vector<int64_t>& order, int64_t index) const;

  void check_epoch(int64_t epoch, int64_t first_batch) const;

 private:
  // A [count, sample_shape...] tensor, the first rows of a [batch_size, ...] one.
  at::Tensor batch_buffer(c10::IntArrayRef sample_shape, int64_t count, const at::TensorOptions& options) const;
  Batch make_streamed_batch(int64_t epoch, const std::vector<int64_t>& order, int64_t start, int64_t count, int64_t index) const;

  std::shared_ptr<const Dataset> dataset_;
  LoaderOptions options_;
  std::vector<float> table_;  // pixel byte -> float, per channel (augment.h)
  // Streamed datasets only: the decoder threads, and x * scale + shift per channel ([1, C, 1, 1]
  // on the batch device), the normalisation made once instead of per batch.
  std::shared_ptr<WorkerPool> decoders_;
  at::Tensor scale_;
  at::Tensor shift_;
};

}  // namespace bnn::data
