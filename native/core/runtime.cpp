#include "core/runtime.h"

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <string>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/utils.h>

#include "core/device.h"
#include "core/errors.h"
#include "core/vectorize.h"

namespace bnn {

RuntimeInfo runtime_info() {
  RuntimeInfo info;
  info.torch_version = BNN_TORCH_VERSION;
#ifdef BNN_WITH_CUDA
  info.cuda_kernels = true;
#else
  info.cuda_kernels = false;
#endif
  info.cuda_available = cuda_available();
  info.cuda_device_count = info.cuda_available ? cuda_device_count() : 0;
  info.num_threads = at::get_num_threads();
  info.cpu_isa = cpu_isa_name(cpu_isa());
  info.cpu_isa_supported = cpu_isa_name(cpu_isa_supported());
  return info;
}

void set_num_threads(int n) {
  if (n < 1 || n > 1024) fail(ErrorKind::InvalidArgument, "threads must be between 1 and 1024, got " + std::to_string(n));
  at::set_num_threads(n);
}

void manual_seed(uint64_t seed) { torch::manual_seed(seed); }

void set_allow_tf32(bool on) {
  at::globalContext().setAllowTF32CuDNN(on);
  at::globalContext().setAllowTF32CuBLAS(on);
}

void set_cudnn_benchmark(bool on) { at::globalContext().setBenchmarkCuDNN(on); }

void set_deterministic(bool on) {
  at::globalContext().setDeterministicCuDNN(on);
  if (on) at::globalContext().setBenchmarkCuDNN(false);
}

bool cudnn_benchmark() { return at::globalContext().benchmarkCuDNN(); }
bool deterministic() { return at::globalContext().deterministicCuDNN(); }

namespace {
// BNN_CUDA_FUSION=0 in the environment starts the process with the fused CUDA kernels off, for a
// whole run that cannot call setFusionOptions (bnn train, a benchmark): the escape hatch should a
// kernel misbehave on some GPU. Any other value, or none, leaves them on.
bool fusion_from_environment() {
  const char* v = std::getenv("BNN_CUDA_FUSION");
  return v == nullptr || std::string(v) != "0";
}
std::atomic<bool> g_fused_cuda{fusion_from_environment()};
std::atomic<bool> g_fused_cpu_reference{false};
std::atomic<uint64_t> g_fused_bn_sign{0};
std::atomic<uint64_t> g_fused_prelu{0};
}  // namespace

FusionCounts fusion_counts() { return {g_fused_bn_sign.load(), g_fused_prelu.load()}; }
void count_fused_bn_sign() { g_fused_bn_sign.fetch_add(1, std::memory_order_relaxed); }
void count_fused_prelu() { g_fused_prelu.fetch_add(1, std::memory_order_relaxed); }

FusionFlags fusion_flags() { return {g_fused_cuda.load(std::memory_order_relaxed), g_fused_cpu_reference.load(std::memory_order_relaxed)}; }

void set_fusion_flags(const FusionFlags& flags) {
  g_fused_cuda.store(flags.cuda, std::memory_order_relaxed);
  g_fused_cpu_reference.store(flags.cpu_reference, std::memory_order_relaxed);
}

namespace {

// True when `device` is a visible CUDA device whose allocator has started (no stats otherwise).
bool check_cuda_device(int device) {
  if (!cuda_available()) return false;
  if (device < 0 || device >= cuda_device_count()) {
    fail(ErrorKind::InvalidArgument, "CUDA device " + std::to_string(device) + " does not exist (" +
                                         std::to_string(cuda_device_count()) + " visible)");
  }
  return true;
}

}  // namespace

CudaMemoryStats cuda_memory_stats(int device) {
#ifdef BNN_WITH_CUDA
  if (check_cuda_device(device)) return detail::cuda_memory_stats(device);
#else
  (void)check_cuda_device(device);
#endif
  return {};
}

void reset_cuda_peak_memory(int device) {
#ifdef BNN_WITH_CUDA
  if (check_cuda_device(device)) detail::reset_cuda_peak_memory(device);
#else
  (void)check_cuda_device(device);
#endif
}

void set_cuda_sync_debug_mode(int mode) {
  if (mode < 0 || mode > 2) fail(ErrorKind::InvalidArgument, "sync debug mode must be 0 (off), 1 (warn) or 2 (error)");
#ifdef BNN_WITH_CUDA
  detail::set_cuda_sync_debug_mode(mode);
#else
  fail(ErrorKind::CudaUnavailable, "CUDA's sync debug mode needs a CUDA build of bnn-torch");
#endif
}

at::Tensor cpu_rng_state() {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void set_cpu_rng_state(const at::Tensor& state) {
  if (!state.defined() || state.scalar_type() != at::kByte || state.dim() != 1) {
    fail(ErrorKind::InvalidArgument, "an RNG state must be a 1-D uint8 tensor");
  }
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state.cpu());
}

void init_worker_thread() { at::init_num_threads(); }

}  // namespace bnn
