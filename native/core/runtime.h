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
  std::string cpu_isa;        // the instruction set bnn's CPU kernels use (core/vectorize.h)
  std::string cpu_isa_supported;  // the best the CPU has
};

RuntimeInfo runtime_info();
void set_num_threads(int n);
void manual_seed(uint64_t seed);

// TensorFloat-32 in cuDNN convolutions and cuBLAS matmuls on Ampere+ GPUs: faster, ~1e-3 relative
// error. On by default, as in PyTorch; turned off for bit-careful comparisons. No-op on the CPU.
void set_allow_tf32(bool on);

// cuDNN's algorithm search (benchmark mode) and determinism, process-wide. Benchmark mode times
// the candidate algorithms on the first call of each shape and keeps the fastest: the right
// default for training's fixed shapes. Deterministic asks cuDNN for reproducible algorithms only
// and turns benchmark mode off. No-ops without CUDA.
void set_cudnn_benchmark(bool on);
void set_deterministic(bool on);
bool cudnn_benchmark();
bool deterministic();

// bnn-torch's fused kernels for the block's memory-bound chains (nn/fused_cuda.h: BatchNorm then
// sign, residual add then PReLU). `cuda`: used on CUDA tensors (the default); off runs ATen's
// separate ops, for A/B timing or to rule the kernels out. `cpu_reference`: the same fused autograd
// nodes also run on the CPU, with ATen ops standing in for the kernels: a test hook that checks
// their formulas (statistics, masks, gradients) where no GPU is. Process-wide; `cuda` starts off
// when the environment has BNN_CUDA_FUSION=0.
struct FusionFlags {
  bool cuda = true;
  bool cpu_reference = false;
};
FusionFlags fusion_flags();
void set_fusion_flags(const FusionFlags& flags);
// How many fused nodes ran since the process started (forward calls), so tests and benchmarks can
// tell that a fused path was taken rather than silently skipped.
struct FusionCounts {
  uint64_t bn_sign = 0;
  uint64_t prelu = 0;
};
FusionCounts fusion_counts();
void count_fused_bn_sign();
void count_fused_prelu();

// The CUDA caching allocator's counters for one device, in bytes (zeros when CUDA is absent), so
// benchmarks and reports can compare peak memory with PyTorch's torch.cuda.max_memory_allocated.
struct CudaMemoryStats {
  int64_t allocated = 0;       // held by live tensors now
  int64_t peak_allocated = 0;  // the most held at once since the last reset
  int64_t reserved = 0;        // held from the driver by the cache
  int64_t peak_reserved = 0;
};
CudaMemoryStats cuda_memory_stats(int device);
void reset_cuda_peak_memory(int device);

// CUDA's sync debug mode: 0 off, 1 warn, 2 throw on every host-device synchronisation (as
// torch.cuda.set_sync_debug_mode). Tests use it to prove a step never waits; fails without CUDA.
void set_cuda_sync_debug_mode(int mode);
namespace detail {  // core/cuda_debug.cu (CUDA builds)
void set_cuda_sync_debug_mode(int mode);
CudaMemoryStats cuda_memory_stats(int device);
void reset_cuda_peak_memory(int device);
}  // namespace detail

// The CPU generator's full state (a uint8 tensor), for checkpoints that resume bit for bit.
at::Tensor cpu_rng_state();
void set_cpu_rng_state(const at::Tensor& state);

// Called at the start of every worker-thread task: OpenMP's thread count is per calling thread,
// so a libuv worker would otherwise use its own default instead of the configured count.
void init_worker_thread();

}  // namespace bnn
