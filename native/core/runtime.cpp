#include "core/runtime.h"

#include <mutex>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/utils.h>

#include "core/device.h"
#include "core/errors.h"

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
