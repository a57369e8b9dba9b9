#pragma once
// Process-wide LibTorch settings and facts, in one place so every layer reports the same thing.
#include <cstdint>
#include <string>

#include <ATen/Tensor.h>

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

// TensorFloat-32 in cuDNN convolutions and cuBLAS matmuls on Ampere+ GPUs: faster, ~1e-3 relative
// error. On by default, as in PyTorch; turned off for bit-careful comparisons. No-op on the CPU.
void set_allow_tf32(bool on);

// The CPU generator's full state (a uint8 tensor), for checkpoints that resume bit for bit.
at::Tensor cpu_rng_state();
void set_cpu_rng_state(const at::Tensor& state);

// Called at the start of every worker-thread task: OpenMP's thread count is per calling thread,
// so a libuv worker would otherwise use its own default instead of the configured count.
void init_worker_thread();

}  // namespace bnn
