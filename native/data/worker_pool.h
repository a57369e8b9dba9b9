#pragma once
// A fixed set of threads that runs one parallel loop at a time: the image pipeline's decoders.
//
// LibTorch's intra-op pool is not used for decoding: it is the training step's, and a batch being
// decoded on it would wait behind (and then stall) the convolutions of the step it should overlap.
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace bnn::data {

class WorkerPool {
 public:
  // `threads` >= 1 workers; the calling thread helps too, so `threads` = cores keeps them busy.
  explicit WorkerPool(int threads);
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  int threads() const { return static_cast<int>(workers_.size()); }

  // Calls fn(i) for every i in [0, n) on the workers and the caller, and returns when all are
  // done. The first exception thrown by any call is rethrown here (the remaining indices are
  // skipped). Calls from several threads run one after another.
  void parallel_for(int64_t n, const std::function<void(int64_t)>& fn);

 private:
  void work();
  void drain();

  std::mutex call_mutex_;  // one loop at a time
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  const std::function<void(int64_t)>* fn_ = nullptr;
  int64_t next_ = 0;
  int64_t end_ = 0;
  int64_t finished_ = 0;
  uint64_t generation_ = 0;
  std::exception_ptr error_;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

// The default decoder count: the machine's cores.
int default_worker_count();

}  // namespace bnn::data
