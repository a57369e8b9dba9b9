#include "core/vectorize.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace bnn {

CpuIsa cpu_isa_supported() {
  static const CpuIsa best = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512dq")) {
      return CpuIsa::Avx512;
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return CpuIsa::Avx2;
    return CpuIsa::Baseline;
  }();
  return best;
}

CpuIsa cpu_isa() {
  static const CpuIsa chosen = [] {
    CpuIsa isa = cpu_isa_supported();
    // A cap, never a raise: asking for more than the CPU has would crash on the first kernel.
    if (const char* want = std::getenv("BNN_CPU_ISA")) {
      CpuIsa cap = isa;
      if (std::strcmp(want, "avx2") == 0) cap = CpuIsa::Avx2;
      else if (std::strcmp(want, "baseline") == 0) cap = CpuIsa::Baseline;
      // avx512bw is the inference engine's AVX-512 tier without VPOPCNTDQ; these kernels need no
      // popcount, so it is their avx512.
      else if (std::strcmp(want, "avx512") != 0 && std::strcmp(want, "avx512bw") != 0 && want[0] != '\0') {
        std::fprintf(stderr, "bnn-torch: BNN_CPU_ISA=%s is not one of avx512, avx512bw, avx2, baseline; ignored\n", want);
      }
      if (static_cast<int>(cap) < static_cast<int>(isa)) isa = cap;
    }
    return isa;
  }();
  return chosen;
}

const char* cpu_isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::Avx512:
      return "avx512";
    case CpuIsa::Avx2:
      return "avx2";
    default:
      return "baseline";
  }
}

}  // namespace bnn
