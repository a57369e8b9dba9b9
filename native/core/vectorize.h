#pragma once
// Hot elementwise loops are compiled three times, for AVX-512 (F, BW, VL, DQ), AVX2 + FMA and the
// baseline, and one is picked at run time, so the build needs no -march flag and runs anywhere.
// The pick is the best the CPU has, capped by the environment variable BNN_CPU_ISA
// (avx512 | avx2 | baseline): one AVX-512 machine can then measure and test the paths an
// AVX2-only or an older CPU takes. (GCC's target_clones, used before, resolves at load time and
// cannot be steered that way.)
//
//   BNN_KERNEL(void, scale, (const float* __restrict__ x, float a, float* __restrict__ y, int64_t n), (x, a, y, n), {
//     for (int64_t i = 0; i < n; ++i) y[i] = a * x[i];
//   })
//
// defines scale_avx512, scale_avx2, scale_baseline and `scale` itself, which calls the chosen one.
#include <cstdint>

namespace bnn {

enum class CpuIsa : int { Baseline = 0, Avx2 = 1, Avx512 = 2 };

// The instruction set the kernels use in this process (decided once, on first use).
CpuIsa cpu_isa();
// The best the CPU supports, ignoring BNN_CPU_ISA.
CpuIsa cpu_isa_supported();
const char* cpu_isa_name(CpuIsa isa);

}  // namespace bnn

// no-trapping-math: without it GCC may not evaluate a floating-point multiply the source guards
// with a condition (`x > 0 ? x : a * x`), so such loops vectorised only where AVX-512's masked
// instructions stand in, and ran scalar on AVX2 and SSE (the PReLU kernels: 13x slower). It
// changes no value; this code reads no floating-point exception flags.
#define BNN_KERNEL_ATTRS optimize("no-trapping-math")
#define BNN_KERNEL(ret, name, params, args, ...)                                                            \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma"), BNN_KERNEL_ATTRS)) ret name##_avx512 params __VA_ARGS__ \
  __attribute__((target("avx2,fma"), BNN_KERNEL_ATTRS)) ret name##_avx2 params __VA_ARGS__                  \
  __attribute__((BNN_KERNEL_ATTRS)) ret name##_baseline params __VA_ARGS__                                  \
  inline ret name params {                                                                                    \
    switch (::bnn::cpu_isa()) {                                                                               \
      case ::bnn::CpuIsa::Avx512:                                                                             \
        return name##_avx512 args;                                                                            \
      case ::bnn::CpuIsa::Avx2:                                                                               \
        return name##_avx2 args;                                                                              \
      default:                                                                                                \
        return name##_baseline args;                                                                          \
    }                                                                                                         \
  }
