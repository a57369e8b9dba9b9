#pragma once
// One pass over an epoch, produced ahead of the consumer on a background thread.
//
// The producer builds batches into a bounded queue (LoaderOptions::prefetch deep) while the
// consumer trains on the previous one; when the queue is full it waits, so memory stays bounded
// however slow the consumer is. close() (or the destructor) stops the producer and joins it: after
// it returns, no thread touches the loader or the dataset on this stream's behalf.
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "data/loader.h"

namespace bnn::data {

class EpochStream {
 public:
  // Starts producing batches first_batch, first_batch + 1, ... of `epoch` at once.
  EpochStream(std::shared_ptr<const Loader> loader, int64_t epoch, int64_t first_batch);
  ~EpochStream();
  EpochStream(const EpochStream&) = delete;
  EpochStream& operator=(const EpochStream&) = delete;

  // The next batch, waiting for the producer if needed; nullopt once the epoch is over or the
  // stream was closed. Rethrows an error the producer hit, after the batches built before it.
  std::optional<Batch> next();

  // Stops the producer, drops queued batches and joins the thread. Safe to call more than once
  // and from any thread but the producer; a next() waiting meanwhile returns nullopt.
  void close();

 private:
  void produce();

  std::shared_ptr<const Loader> loader_;
  const int64_t epoch_;
  const int64_t first_batch_;

  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Batch> queue_;
  std::exception_ptr error_;
  bool finished_ = false;  // the producer has pushed its last batch (or failed)
  bool stopping_ = false;  // close() was called

  std::mutex join_mutex_;
  std::thread thread_;
};

}  // namespace bnn::data
