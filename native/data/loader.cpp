#include "data/loader.h"

#include <cmath>

#include <ATen/ATen.h>

#include "core/errors.h"
#include "data/image_source.h"
#include "data/random.h"

namespace bnn::data {

namespace {

constexpr int64_t kMaxEpoch = int64_t{1} << 53;  // epochs arrive from JS as doubles

}  // namespace

Loader::Loader(std::shared_ptr<const Dataset> dataset, LoaderOptions options)
    : dataset_(std::move(dataset)), options_(std::move(options)) {
  if (!dataset_) fail(ErrorKind::InvalidArgument, "a loader needs a dataset");
  const Dataset& d = *dataset_;
  if (options_.batch_size < 1 || options_.batch_size > 0x7fffffff) {
    fail(ErrorKind::InvalidArgument, "batchSize must be at least 1, got " + std::to_string(options_.batch_size));
  }
  if (options_.prefetch < 1 || options_.prefetch > 64) {
    fail(ErrorKind::InvalidArgument, "prefetch must be between 1 and 64 batches, got " + std::to_string(options_.prefetch));
  }
  if (options_.augment.crop_padding < 0 || options_.augment.crop_padding > 1024) {
    fail(ErrorKind::InvalidArgument, "crop padding must be between 0 and 1024 pixels, got " + std::to_string(options_.augment.crop_padding));
  }
  if (options_.mean.empty() && options_.std.empty()) {
    options_.mean = d.mean;
    options_.std = d.std;
  }
  const auto channels = static_cast<size_t>(d.channels());
  if (options_.mean.size() != channels || options_.std.size() != channels) {
    fail(ErrorKind::InvalidArgument, "mean and std need one value per channel (" + std::to_string(channels) + "), got " +
                                         std::to_string(options_.mean.size()) + " and " + std::to_string(options_.std.size()));
  }
  for (size_t c = 0; c < channels; ++c) {
    if (!std::isfinite(options_.mean[c]) || !std::isfinite(options_.std[c]) || !(options_.std[c] > 0)) {
      fail(ErrorKind::InvalidArgument, "mean must be finite and std finite and positive; channel " + std::to_string(c) +
                                           " has mean " + std::to_string(options_.mean[c]) + " and std " + std::to_string(options_.std[c]));
    }
  }
  if (options_.shard_count < 1 || options_.shard_rank < 0 || options_.shard_rank >= options_.shard_count) {
    fail(ErrorKind::InvalidArgument, "shard rank must be in [0, shard count - 1], got rank " + std::to_string(options_.shard_rank) +
                                         " of " + std::to_string(options_.shard_count));
  }
  if (!(options_.augment.rotation >= 0 && options_.augment.rotation <= 180)) {
    fail(ErrorKind::InvalidArgument, "rotation must be between 0 and 180 degrees, got " + std::to_string(options_.augment.rotation));
  }
  if (options_.workers < 0 || options_.workers > 1024) {
    fail(ErrorKind::InvalidArgument, "workers must be between 0 (one per core) and 1024, got " + std::to_string(options_.workers));
  }
  if (d.streamed()) {
    if (options_.augment.crop_padding != 0 || options_.augment.hflip || options_.augment.rotation != 0) {
      fail(ErrorKind::InvalidArgument, "an image dataset is augmented by its own transform (crop, flip, jitter ...): leave the loader's augment off");
    }
    decoders_ = std::make_shared<WorkerPool>(options_.workers > 0 ? static_cast<int>(options_.workers) : default_worker_count());
  }
  if (options_.shard_pad && options_.shard_count > d.size()) {
    fail(ErrorKind::InvalidArgument, "cannot split " + std::to_string(d.size()) + " samples into " + std::to_string(options_.shard_count) + " shards");
  }
  table_ = pixel_table(options_.mean, options_.std, options_.normalize);
  if (d.streamed()) {
    // (v / 255 - mean) / std as one multiply-add per element: v * 1 / (255 std) - mean / std.
    std::vector<float> scale(channels), shift(channels);
    for (size_t k = 0; k < channels; ++k) {
      const double sd = options_.normalize ? options_.std[k] : 1.0;
      const double mu = options_.normalize ? options_.mean[k] : 0.0;
      scale[k] = static_cast<float>(1.0 / (255.0 * sd));
      shift[k] = static_cast<float>(-mu / sd);
    }
    const auto c = static_cast<int64_t>(channels);
    const auto params = at::TensorOptions().dtype(at::kFloat);
    scale_ = at::tensor(scale, params).view({1, c, 1, 1}).to(options_.device);
    shift_ = at::tensor(shift, params).view({1, c, 1, 1}).to(options_.device);
  }
}

int64_t Loader::shard_size() const {
  const int64_t n = dataset_->size();
  const int64_t k = options_.shard_count;
  if (options_.shard_pad) return (n + k - 1) / k;
  return (n - options_.shard_rank + k - 1) / k;
}

int64_t Loader::batches_per_epoch() const {
  const int64_t n = shard_size();
  const int64_t b = options_.batch_size;
  return options_.drop_last ? n / b : (n + b - 1) / b;
}

void Loader::check_epoch(int64_t epoch, int64_t first_batch) const {
  if (epoch < 0 || epoch > kMaxEpoch) fail(ErrorKind::InvalidArgument, "epoch must be a non-negative integer, got " + std::to_string(epoch));
  if (first_batch < 0 || first_batch > batches_per_epoch()) {
    fail(ErrorKind::InvalidArgument, "startBatch must be between 0 and " + std::to_string(batches_per_epoch()) +
                                         " (batches per epoch), got " + std::to_string(first_batch));
  }
}

std::vector<int64_t> Loader::epoch_order(int64_t epoch) const {
  check_epoch(epoch, 0);
  const int64_t n = dataset_->size();
  std::vector<int64_t> order;
  if (options_.shuffle) {
    order = seeded_permutation(n, hash_words({options_.seed, static_cast<uint64_t>(Stream::Shuffle), static_cast<uint64_t>(epoch)}));
  } else {
    order.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;
  }
  const int64_t k = options_.shard_count;
  if (k == 1) return order;
  std::vector<int64_t> shard;
  shard.reserve(static_cast<size_t>(shard_size()));
  const int64_t total = options_.shard_pad ? shard_size() * k : n;
  for (int64_t i = options_.shard_rank; i < total; i += k) shard.push_back(order[static_cast<size_t>(i % n)]);
  return shard;
}

at::Tensor Loader::batch_buffer(c10::IntArrayRef sample_shape, int64_t count, const at::TensorOptions& options) const {
  // A short last batch is cut from a full-size buffer: a buffer of its own size would be a size
  // the caching allocator has not seen, so every epoch's end would allocate afresh (measured: RSS
  // +15% at the end of a 50,000-image epoch whose last batch held 80 images).
  std::vector<int64_t> shape{options_.batch_size};
  shape.insert(shape.end(), sample_shape.begin(), sample_shape.end());
  return at::empty(shape, options).narrow(0, 0, count);
}

Batch Loader::make_batch(int64_t epoch, const std::vector<int64_t>& order, int64_t index) const {
  const Dataset& d = *dataset_;
  const int64_t start = index * options_.batch_size;
  const int64_t count = std::min<int64_t>(options_.batch_size, static_cast<int64_t>(order.size()) - start);
  if (index < 0 || count < 1) fail(ErrorKind::InvalidArgument, "batch " + std::to_string(index) + " is past the end of the epoch");
  if (d.streamed()) return make_streamed_batch(epoch, order, start, count, index);
  const int64_t c = d.channels(), h = d.height(), w = d.width();
  const int64_t sample_pixels = c * h * w;

  // Pinned host memory lets the copy to the GPU run asynchronously (non_blocking below).
  const bool to_cuda = options_.device.is_cuda();
  const auto host = at::TensorOptions().pinned_memory(to_cuda);
  at::Tensor images = batch_buffer({c, h, w}, count, host.dtype(at::kFloat));
  at::Tensor labels = batch_buffer({}, count, host.dtype(at::kLong));
  float* out = images.data_ptr<float>();
  int64_t* out_labels = labels.data_ptr<int64_t>();
  const uint8_t* pixels = d.images.const_data_ptr<uint8_t>();
  const int64_t* source_labels = d.labels.const_data_ptr<int64_t>();

  for (int64_t i = 0; i < count; ++i) {
    const int64_t sample = order[static_cast<size_t>(start + i)];
    const SampleAugment a = draw_augment(options_.augment, options_.seed, epoch, sample);
    render_sample(pixels + sample * sample_pixels, c, h, w, a, table_.data(), out + i * sample_pixels);
    out_labels[i] = source_labels[sample];
  }
  if (to_cuda) {
    // Queued on the device's current (default) stream, which the consumer's work also uses, so
    // no extra synchronisation is needed; the caching host allocator keeps the pinned buffer
    // alive until the copy has finished.
    images = images.to(options_.device, /*non_blocking=*/true);
    labels = labels.to(options_.device, /*non_blocking=*/true);
  }
  return {std::move(images), std::move(labels), index};
}

Batch Loader::make_streamed_batch(int64_t epoch, const std::vector<int64_t>& order, int64_t start, int64_t count, int64_t index) const {
  const Dataset& d = *dataset_;
  const int64_t c = d.channels(), h = d.height(), w = d.width();
  const bool to_cuda = options_.device.is_cuda();
  const auto host = at::TensorOptions().pinned_memory(to_cuda);
  at::Tensor pixels = batch_buffer({h, w, c}, count, host.dtype(at::kByte));
  at::Tensor labels = batch_buffer({}, count, host.dtype(at::kLong));
  uint8_t* out = pixels.data_ptr<uint8_t>();
  int64_t* out_labels = labels.data_ptr<int64_t>();
  const int64_t* source_labels = d.labels.const_data_ptr<int64_t>();
  decoders_->parallel_for(count, [&](int64_t i) {
    const int64_t sample = order[static_cast<size_t>(start + i)];
    // With skipBad a corrupt file is replaced by another sample, whose label must come along.
    const int64_t rendered = d.source->render(sample, options_.seed, epoch, out + i * h * w * c);
    out_labels[i] = source_labels[rendered];
  });
  if (to_cuda) {
    pixels = pixels.to(options_.device, /*non_blocking=*/true);
    labels = labels.to(options_.device, /*non_blocking=*/true);
  }
  // One pass turns the bytes into floats in NCHW order, a second normalises in place, on the
  // batch's device.
  at::Tensor images = batch_buffer({c, h, w}, count, at::TensorOptions().dtype(at::kFloat).device(options_.device));
  images.copy_(pixels.permute({0, 3, 1, 2}));
  images.mul_(scale_).add_(shift_);
  return {std::move(images), std::move(labels), index};
}

}  // namespace bnn::data
