#include "data/epoch_stream.h"

namespace bnn::data {

EpochStream::EpochStream(std::shared_ptr<const Loader> loader, int64_t epoch, int64_t first_batch)
    : loader_(std::move(loader)), epoch_(epoch), first_batch_(first_batch) {
  loader_->check_epoch(epoch_, first_batch_);
  thread_ = std::thread([this] { produce(); });
}

EpochStream::~EpochStream() { close(); }

void EpochStream::produce() {
  try {
    const std::vector<int64_t> order = loader_->epoch_order(epoch_);
    const int64_t end = loader_->batches_per_epoch();
    const auto depth = static_cast<size_t>(loader_->options().prefetch);
    for (int64_t b = first_batch_; b < end; ++b) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock, [&] { return stopping_ || queue_.size() < depth; });
        if (stopping_) return;
      }
      Batch batch = loader_->make_batch(epoch_, order, b);  // the work, outside the lock
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) return;
      queue_.push_back(std::move(batch));
      changed_.notify_all();
    }
  } catch (...) {
    std::lock_guard<std::mutex> lock(mutex_);
    error_ = std::current_exception();
  }
  std::lock_guard<std::mutex> lock(mutex_);
  finished_ = true;
  changed_.notify_all();
}

std::optional<Batch> EpochStream::next() {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [&] { return stopping_ || finished_ || !queue_.empty(); });
  if (!queue_.empty()) {
    Batch batch = std::move(queue_.front());
    queue_.pop_front();
    changed_.notify_all();  // room for the producer
    return batch;
  }
  if (error_ && !stopping_) std::rethrow_exception(error_);
  return std::nullopt;
}

void EpochStream::close() {
  std::deque<Batch> dropped;  // freed outside the lock
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    dropped.swap(queue_);
    changed_.notify_all();
  }
  std::lock_guard<std::mutex> join_lock(join_mutex_);
  if (thread_.joinable()) thread_.join();
}

}  // namespace bnn::data
