#include "data/worker_pool.h"

#include <algorithm>

namespace bnn::data {

WorkerPool::WorkerPool(int threads) {
  const int n = std::max(1, threads);
  workers_.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) workers_.emplace_back([this] { work(); });
}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

int default_worker_count() { return std::max(1u, std::thread::hardware_concurrency()); }

// Takes indices until none are left; every index taken is counted as finished, even when skipped
// after an error, so the caller's wait always ends.
void WorkerPool::drain() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (next_ < end_) {
    const int64_t i = next_++;
    const bool skip = error_ != nullptr;
    const auto* fn = fn_;
    lock.unlock();
    if (!skip) {
      try {
        (*fn)(i);
      } catch (...) {
        std::lock_guard<std::mutex> relock(mutex_);
        if (!error_) error_ = std::current_exception();
      }
    }
    lock.lock();
    if (++finished_ == end_) done_.notify_all();
  }
}

void WorkerPool::work() {
  uint64_t seen = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stopping_ || generation_ != seen; });
      if (stopping_) return;
      seen = generation_;
    }
    drain();
  }
}

void WorkerPool::parallel_for(int64_t n, const std::function<void(int64_t)>& fn) {
  if (n <= 0) return;
  std::lock_guard<std::mutex> call(call_mutex_);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    fn_ = &fn;
    next_ = 0;
    end_ = n;
    finished_ = 0;
    error_ = nullptr;
    ++generation_;
  }
  wake_.notify_all();
  drain();
  std::exception_ptr error;
  {
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return finished_ == end_; });
    fn_ = nullptr;
    error = error_;
    error_ = nullptr;
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace bnn::data
