#pragma once
// Process-wide LibTorch settings and facts, in one place so every layer reports the same thing.
#include <cstdint>
#include <string>

namespace bnn {

struct RuntimeInfo {
  std::string torch_version;  // the LibTorch the addon was compiled against
  bool cuda_kernels;          // bnn's own CUDA kernels were compiled in
  bool cuda_available;        // a CUDA device is usable now
  int cuda_device_count;
  int num_threads;            // intra-op threads LibTorch uses for CPU work
};

RuntimeInfo runtime_info();
void set_num_threads(int n);
void manual_seed(uint64_t seed);

// Called at the start of every worker-thread task: OpenMP's thread count is per calling thread,
// so a libuv worker would otherwise use its own default instead of the configured count.
void init_worker_thread();

}  // namespace bnn
