#pragma once
// CUDA's execution model on one CPU thread, so that the kernel headers (native/**/*_cuda_kernels.cuh)
// run their very bodies where no GPU is: a grid of blocks, each block's threads as fibers
// (ucontext) that switch only at __syncthreads() and at exit, __shared__ arrays shared by the
// fibers of the block being run, blockIdx / threadIdx / blockDim / gridDim as globals the
// scheduler sets before resuming a fiber.
//
// What it checks beyond the values the kernels write:
// - the launch configuration, as a GPU would refuse it (threads per block, grid limits);
// - __syncthreads() reached by some threads of a block after others have left the kernel (undefined
//   on a GPU): an error here;
// - races on shared memory: each launch runs under a schedule (the order the block's fibers run
//   between barriers, and the order of the blocks), so a test runs every kernel under several
//   schedules (forward, reverse, shuffled). A read of another thread's shared write without a
//   barrier between them gives a different result under one of them.
// - reads of shared memory no thread of the block has written: arrays declared with BNN_SHARED
//   (as the kernel headers do) start each block filled with 0xFF bytes (NaN as float), as a GPU
//   gives them no defined contents; a plain __shared__ array (the self-tests') is only static.
// What it cannot check: warp-level behaviour (the kernels use none), barriers at different call
// sites taken by different threads (all barriers look alike here), the GPU's floating-point
// contraction (nvcc fuses a * b + c into an FMA; build this with -ffp-contract=off and compare
// with references that round each operation), and timing.
#include <ucontext.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define CUDA_EMU_ASAN 1
#endif

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

namespace cuda_emu {

enum class Schedule { Forward, Reverse, Shuffled };

inline const char* name(Schedule s) {
  return s == Schedule::Forward ? "forward" : s == Schedule::Reverse ? "reverse" : "shuffled";
}

// The state the kernels read through the macros below.
inline dim3 thread_idx, block_idx, block_dim, grid_dim;

namespace detail {

struct Launch {
  Schedule schedule = Schedule::Forward;
  std::mt19937 rng{1};
  ucontext_t scheduler{};
  std::vector<ucontext_t> fibers;
  std::vector<char*> stacks;
  std::vector<uint8_t> done;
  std::function<void()> body;
  unsigned current = 0;
  // AddressSanitizer's view of the scheduler's stack, learnt when a fiber is entered.
  void* scheduler_fake_stack = nullptr;
  const void* scheduler_stack = nullptr;
  size_t scheduler_stack_bytes = 0;
};

inline Launch*& active() {
  static Launch* launch = nullptr;
  return launch;
}

constexpr size_t kStackBytes = 256 * 1024;

// The shared arrays the block being run has declared (see shared_memory).
inline std::vector<void*>& shared_seen() {
  static std::vector<void*> seen;
  return seen;
}

// Fiber stacks, kept from launch to launch (a launch of 1024 threads would otherwise map 256 MiB).
inline char* stack(unsigned i) {
  static std::vector<std::unique_ptr<char[]>> pool;
  while (pool.size() <= i) pool.emplace_back(new char[kStackBytes]);
  return pool[i].get();
}

// Fiber switches, announced to AddressSanitizer so it follows the stack change.
inline void switch_to_fiber(Launch& l, unsigned i) {
#ifdef CUDA_EMU_ASAN
  __sanitizer_start_switch_fiber(&l.scheduler_fake_stack, l.stacks[i], kStackBytes);
#endif
  if (swapcontext(&l.scheduler, &l.fibers[i]) != 0) throw std::runtime_error("cuda_emu: swapcontext failed");
#ifdef CUDA_EMU_ASAN
  __sanitizer_finish_switch_fiber(l.scheduler_fake_stack, nullptr, nullptr);
#endif
}

inline void switch_to_scheduler(Launch& l, bool exiting) {
#ifdef CUDA_EMU_ASAN
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(exiting ? nullptr : &fake, l.scheduler_stack, l.scheduler_stack_bytes);
#endif
  if (swapcontext(&l.fibers[l.current], &l.scheduler) != 0) std::abort();  // cannot throw across the fiber's base
#ifdef CUDA_EMU_ASAN
  __sanitizer_finish_switch_fiber(fake, &l.scheduler_stack, &l.scheduler_stack_bytes);
#endif
}

inline void fiber_main() {
  Launch& l = *active();
#ifdef CUDA_EMU_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &l.scheduler_stack, &l.scheduler_stack_bytes);
#endif
  l.body();
  l.done[l.current] = 1;
  switch_to_scheduler(l, true);
}

}  // namespace detail

// BNN_SHARED's emulation (native/core/cuda_shared.cuh): every thread of a block passes its
// declaration; the first to pass it in a block fills the array with 0xFF bytes (NaN as float), so
// that a read no thread of the block has written sees garbage, not what the previous block left.
inline void shared_memory(void* array, size_t bytes) {
  std::vector<void*>& seen = detail::shared_seen();
  if (std::find(seen.begin(), seen.end(), array) != seen.end()) return;
  seen.push_back(array);
  std::memset(array, 0xFF, bytes);
}

// __syncthreads(): back to the scheduler, which resumes this fiber once every thread of the block
// has arrived.
inline void syncthreads() {
  detail::Launch* l = detail::active();
  if (!l) throw std::logic_error("cuda_emu: __syncthreads() outside a kernel launch");
  detail::switch_to_scheduler(*l, false);
}

// The limits every CUDA GPU since compute capability 3.0 enforces: a launch past them fails with
// "invalid configuration argument".
inline void check_config(dim3 grid, dim3 block) {
  const uint64_t threads = static_cast<uint64_t>(block.x) * block.y * block.z;
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || block.x == 0 || block.y == 0 || block.z == 0 || threads > 1024 ||
      block.x > 1024 || block.y > 1024 || block.z > 64 || grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535) {
    throw std::runtime_error("cuda_emu: invalid launch configuration: grid (" + std::to_string(grid.x) + ", " + std::to_string(grid.y) +
                             ", " + std::to_string(grid.z) + "), block (" + std::to_string(block.x) + ", " + std::to_string(block.y) +
                             ", " + std::to_string(block.z) + ")");
  }
}

// kernel<<<grid, block>>>(args...), run to completion under `schedule`.
template <typename... Params, typename... Args>
void launch(Schedule schedule, dim3 grid, dim3 block, void (*kernel)(Params...), Args... args) {
  check_config(grid, block);
  if (detail::active()) throw std::logic_error("cuda_emu: a launch inside a launch");
  const unsigned threads = block.x * block.y * block.z;
  detail::Launch l;
  l.schedule = schedule;
  l.fibers.resize(threads);
  l.done.resize(threads);
  for (unsigned i = 0; i < threads; ++i) l.stacks.push_back(detail::stack(i));
  l.body = [&] { kernel(static_cast<Params>(args)...); };
  detail::active() = &l;
  struct Reset {
    ~Reset() { detail::active() = nullptr; }
  } reset;
  block_dim = block;
  grid_dim = grid;

  std::vector<dim3> blocks;
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) blocks.emplace_back(x, y, z);
  if (schedule == Schedule::Reverse) std::reverse(blocks.begin(), blocks.end());
  if (schedule == Schedule::Shuffled) std::shuffle(blocks.begin(), blocks.end(), l.rng);

  std::vector<unsigned> order(threads);
  for (const dim3& b : blocks) {
    block_idx = b;
    detail::shared_seen().clear();
    for (unsigned i = 0; i < threads; ++i) {
#ifdef CUDA_EMU_ASAN
      // Frames a fiber abandoned (a launch that threw) leave their red zones poisoned.
      __asan_unpoison_memory_region(l.stacks[i], detail::kStackBytes);
#endif
      getcontext(&l.fibers[i]);
      l.fibers[i].uc_stack.ss_sp = l.stacks[i];
      l.fibers[i].uc_stack.ss_size = detail::kStackBytes;
      l.fibers[i].uc_link = nullptr;
      makecontext(&l.fibers[i], detail::fiber_main, 0);
      l.done[i] = 0;
    }
    // Rounds: every live fiber runs to its next barrier or to its end.
    for (;;) {
      std::iota(order.begin(), order.end(), 0u);
      if (schedule == Schedule::Reverse) std::reverse(order.begin(), order.end());
      if (schedule == Schedule::Shuffled) std::shuffle(order.begin(), order.end(), l.rng);
      for (unsigned i : order) {
        if (l.done[i]) continue;
        l.current = i;
        thread_idx = dim3(i % block.x, (i / block.x) % block.y, i / (block.x * block.y));
        detail::switch_to_fiber(l, i);
      }
      const auto finished = static_cast<unsigned>(std::count(l.done.begin(), l.done.end(), 1));
      if (finished == threads) break;
      if (finished != 0) {
        throw std::runtime_error("cuda_emu: in block (" + std::to_string(b.x) + ", " + std::to_string(b.y) + ", " + std::to_string(b.z) +
                                 ") " + std::to_string(threads - finished) + " threads wait at __syncthreads() while " +
                                 std::to_string(finished) + " have left the kernel (undefined behaviour on a GPU)");
      }
    }
  }
}

}  // namespace cuda_emu

#define __global__
#define __device__
#define __host__
#define __shared__ static
#define BNN_SHARED(type, name, dims) \
  static type name dims;             \
  ::cuda_emu::shared_memory(name, sizeof(name))
#define __syncthreads() ::cuda_emu::syncthreads()
#define threadIdx (::cuda_emu::thread_idx)
#define blockIdx (::cuda_emu::block_idx)
#define blockDim (::cuda_emu::block_dim)
#define gridDim (::cuda_emu::grid_dim)
