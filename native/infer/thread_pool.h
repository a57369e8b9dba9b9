#pragma once
// A small pool for predict calls: `threads - 1` workers plus the caller. parallel_for splits the
// indices into one contiguous range per thread, so that the same thread handles the same rows of
// an activation map in every layer and call and finds them in its own cache (handing indices out
// from one shared counter interleaved the threads, and every map moved between the cores' caches
// each time: the memory-bound parts of a layer ran slower on 2 threads than on 1). A thread that
// finishes its range takes indices from the others' (one atomic cursor per range), so a thread
// that the OS delays does not hold the call back. Every index writes its own outputs, so results
// never depend on which thread ran which index (deterministic for any thread count). The first
// exception thrown by `fn` is rethrown in the caller after all workers have stopped touching the
// job.
//
// Workers spin for a short while after each job before they sleep on the condition variable: a
// forward pass is dozens of parallel_for calls microseconds apart, and waking a sleeping thread
// costs 30-40 us on the virtual machines measured (more than a whole small layer), while a
// spinning one starts within a microsecond. OpenMP runtimes spin the same way (GOMP_SPINCOUNT,
// KMP_BLOCKTIME).
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
  // Not reentrant: one parallel_for at a time per pool (callers that share a pool serialise).
  void parallel_for(int64_t count, const std::function<void(int64_t, int)>& fn);

  // How long an idle worker spins before it sleeps (microseconds); BNN_INFER_SPIN_US overrides
  // it (0: sleep at once, as a pool on an oversubscribed machine may prefer).
  static int64_t spin_microseconds();

 private:
  void worker(int slot);
  void drain(int slot);
  void shutdown();
  uint64_t wait_for_job(uint64_t seen);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  const std::function<void(int64_t, int)>* job_ = nullptr;
  // One cursor per thread's range, each on its own cache line.
  struct alignas(64) Range {
    std::atomic<int64_t> next{0};
    int64_t end = 0;
  };
  std::vector<Range> ranges_;
  std::atomic<int> busy_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> stop_{false};
  std::mutex error_mutex_;
  std::exception_ptr error_;
  int64_t spin_us_ = 0;
};

}  // namespace bnn::infer
