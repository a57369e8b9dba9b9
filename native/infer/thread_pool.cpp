#include "infer/thread_pool.h"

#include <chrono>
#include <cstdlib>
#include <string>
#include <system_error>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "core/errors.h"

namespace bnn::infer {

namespace {

inline void cpu_relax() {
#if defined(__x86_64__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

}  // namespace

int64_t ThreadPool::spin_microseconds() {
  static const int64_t us = [] {
    const char* env = std::getenv("BNN_INFER_SPIN_US");
    if (!env || !*env) return int64_t{500};
    char* end = nullptr;
    const long long v = std::strtoll(env, &end, 10);
    return (*end == '\0' && v >= 0 && v <= 1000000) ? static_cast<int64_t>(v) : int64_t{500};
  }();
  return us;
}

ThreadPool::ThreadPool(int threads) : ranges_(static_cast<size_t>(threads < 1 ? 1 : threads)), spin_us_(spin_microseconds()) {
  try {
    for (int i = 1; i < threads; ++i) workers_.emplace_back([this, i] { worker(i); });
  } catch (const std::system_error& e) {
    // A thread that cannot start (EAGAIN under a pids limit) must not leave joinable threads
    // behind: destroying them would std::terminate the whole process.
    shutdown();
    fail(ErrorKind::InvalidArgument, "could not start " + std::to_string(threads) + " threads: " + e.what() + " (ask for fewer threads)");
  }
}

void ThreadPool::shutdown() {
  stop_.store(true, std::memory_order_seq_cst);
  {
    std::lock_guard<std::mutex> lock(mutex_);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
}

ThreadPool::~ThreadPool() { shutdown(); }

void ThreadPool::drain(int slot) {
  const int n = static_cast<int>(ranges_.size());
  // Own range first, then the others' in turn.
  for (int k = 0; k < n; ++k) {
    Range& r = ranges_[static_cast<size_t>((slot + k) % n)];
    for (;;) {
      const int64_t i = r.next.fetch_add(1, std::memory_order_relaxed);
      if (i >= r.end) break;
      try {
        (*job_)(i, slot);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex_);
        if (!error_) error_ = std::current_exception();
        for (Range& q : ranges_) q.next.store(q.end, std::memory_order_relaxed);  // stop handing out work
      }
    }
  }
}

// Returns the new generation (or any value once stop_ is set). The sleep handshake is Dekker's:
// the worker announces itself in sleepers_ and then re-reads generation_, the caller bumps
// generation_ and then reads sleepers_, both sequentially consistent, so at least one of them
// sees the other and no wake-up is lost.
uint64_t ThreadPool::wait_for_job(uint64_t seen) {
  if (spin_us_ > 0) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(spin_us_);
    for (int i = 0;; ++i) {
      const uint64_t g = generation_.load(std::memory_order_acquire);
      if (g != seen || stop_.load(std::memory_order_relaxed)) return g;
      cpu_relax();
      if ((i & 63) == 63 && std::chrono::steady_clock::now() > until) break;
    }
  }
  std::unique_lock<std::mutex> lock(mutex_);
  sleepers_.fetch_add(1, std::memory_order_seq_cst);
  wake_.wait(lock, [&] { return generation_.load(std::memory_order_seq_cst) != seen || stop_.load(std::memory_order_seq_cst); });
  sleepers_.fetch_sub(1, std::memory_order_relaxed);
  return generation_.load(std::memory_order_acquire);
}

void ThreadPool::worker(int slot) {
  uint64_t seen = 0;
  for (;;) {
    const uint64_t g = wait_for_job(seen);
    if (stop_.load(std::memory_order_acquire)) return;
    seen = g;
    drain(slot);
    busy_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::parallel_for(int64_t count, const std::function<void(int64_t, int)>& fn) {
  if (count <= 0) return;
  if (workers_.empty() || count == 1) {
    for (int64_t i = 0; i < count; ++i) fn(i, 0);
    return;
  }
  job_ = &fn;
  const int64_t n = static_cast<int64_t>(ranges_.size());
  for (int64_t t = 0; t < n; ++t) {
    ranges_[static_cast<size_t>(t)].next.store(count * t / n, std::memory_order_relaxed);
    ranges_[static_cast<size_t>(t)].end = count * (t + 1) / n;
  }
  error_ = nullptr;
  busy_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_seq_cst);  // publishes the job (release)
  if (sleepers_.load(std::memory_order_seq_cst) > 0) {
    { std::lock_guard<std::mutex> lock(mutex_); }
    wake_.notify_all();
  }
  drain(0);
  // The workers are running (or about to): wait for them without sleeping, yielding the core
  // after a while in case a worker is waiting for it.
  for (int i = 0; busy_.load(std::memory_order_acquire) != 0; ++i) {
    if (i < 4096) {
      cpu_relax();
    } else {
      std::this_thread::yield();
    }
  }
  job_ = nullptr;
  if (error_) std::rethrow_exception(error_);
}

}  // namespace bnn::infer
