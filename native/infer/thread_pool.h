#pragma once
// A small pool for one predict call: `threads - 1` workers plus the caller. parallel_for hands out
// indices from an atomic counter; every index writes its own outputs, so results never depend on
// which thread ran which index (deterministic for any thread count). The first exception thrown
// by `fn` is rethrown in the caller after all workers have stopped touching the job.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace bnn::infer {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }
  // fn(index, slot): slot in [0, size()) identifies the thread (for per-thread scratch).
  void parallel_for(int64_t count, const std::function<void(int64_t, int)>& fn);

 private:
  void worker(int slot);
  void drain(int slot);
  void shutdown();

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_, finished_;
  const std::function<void(int64_t, int)>* job_ = nullptr;
  int64_t count_ = 0;
  std::atomic<int64_t> next_{0};
  int busy_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
};

}  // namespace bnn::infer
