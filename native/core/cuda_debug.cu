// The parts of core/runtime that need CUDA's own headers, compiled only in CUDA builds:
// - CUDA's synchronisation debug mode (torch.cuda.set_sync_debug_mode): with it set, every
//   operation that makes the host wait for the GPU warns or throws, which is how the tests prove
//   the training step never waits;
// - the caching allocator's counters (torch.cuda.max_memory_allocated and friends).
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>

#include "core/runtime.h"

namespace bnn::detail {

void set_cuda_sync_debug_mode(int mode) {
  c10::cuda::warning_state().set_sync_debug_mode(static_cast<c10::cuda::SyncDebugMode>(mode));
}

CudaMemoryStats cuda_memory_stats(int device) {
  namespace alloc = c10::cuda::CUDACachingAllocator;
  const auto stats = alloc::getDeviceStats(static_cast<c10::DeviceIndex>(device));
  constexpr auto all = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
  CudaMemoryStats out;
  out.allocated = stats.allocated_bytes[all].current;
  out.peak_allocated = stats.allocated_bytes[all].peak;
  out.reserved = stats.reserved_bytes[all].current;
  out.peak_reserved = stats.reserved_bytes[all].peak;
  return out;
}

void reset_cuda_peak_memory(int device) {
  c10::cuda::CUDACachingAllocator::resetPeakStats(static_cast<c10::DeviceIndex>(device));
}

}  // namespace bnn::detail
