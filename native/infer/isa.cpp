#include "infer/isa.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/errors.h"

namespace bnn::infer {

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Avx512: return "avx512";
    case Isa::Avx512Bw: return "avx512bw";
    case Isa::Avx2: return "avx2";
    case Isa::Neon: return "neon";
    case Isa::Baseline: return "baseline";
    default: return "auto";
  }
}

Isa parse_isa(const std::string& name) {
  if (name.empty() || name == "auto") return Isa::Auto;
  if (name == "avx512") return Isa::Avx512;
  if (name == "avx512bw") return Isa::Avx512Bw;
  if (name == "avx2") return Isa::Avx2;
  if (name == "baseline") return Isa::Baseline;
  if (name == "neon") return Isa::Neon;
  fail(ErrorKind::InvalidArgument, "isa must be one of avx512, avx512bw, avx2, neon, baseline, got '" + name + "'");
}

bool isa_supported(Isa isa) {
  switch (isa) {
    case Isa::Baseline: return true;
#if defined(__x86_64__)
    case Isa::Avx2: {
      static const bool ok = [] {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt");
      }();
      return ok;
    }
    case Isa::Avx512Bw: {
      // libgcc's feature bits already account for the OS saving the AVX-512 state (XCR0).
      static const bool ok = [] {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt");
      }();
      return ok;
    }
    case Isa::Avx512:
      return isa_supported(Isa::Avx512Bw) && __builtin_cpu_supports("avx512vpopcntdq");
#endif
#if defined(__aarch64__)
    case Isa::Neon: return true;  // Advanced SIMD is mandatory on AArch64
#endif
    default: return false;
  }
}

std::vector<Isa> supported_isas() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::Avx512, Isa::Avx512Bw, Isa::Avx2, Isa::Neon, Isa::Baseline}) {
    if (isa_supported(isa)) out.push_back(isa);
  }
  return out;
}

Isa best_isa() {
  static const Isa chosen = [] {
    const std::vector<Isa> all = supported_isas();
    Isa isa = all.front();
    if (const char* want = std::getenv("BNN_CPU_ISA"); want && want[0] != '\0') {
      // A cap, never a raise: the best supported ISA no better than the one asked for.
      Isa cap = Isa::Auto;
      if (!std::strcmp(want, "avx512")) cap = Isa::Avx512;
      else if (!std::strcmp(want, "avx512bw")) cap = Isa::Avx512Bw;
      else if (!std::strcmp(want, "avx2")) cap = Isa::Avx2;
      else if (!std::strcmp(want, "neon")) cap = Isa::Neon;
      else if (!std::strcmp(want, "baseline")) cap = Isa::Baseline;
      if (cap == Isa::Auto) {
        std::fprintf(stderr, "bnn-torch: BNN_CPU_ISA=%s is not one of avx512, avx512bw, avx2, neon, baseline; ignored\n", want);
      } else {
        // Order of capability: baseline < avx2 < avx512bw < avx512 on x86; baseline < neon on ARM.
        // A cap from the other architecture (avx2 on ARM, neon on x86) leaves the SIMD choice unchanged.
        auto rank = [](Isa i) {
          switch (i) {
            case Isa::Baseline: return 0;
            case Isa::Avx2:
            case Isa::Neon: return 1;
            case Isa::Avx512Bw: return 2;
            default: return 3;
          }
        };
        const bool same_arch = cap == Isa::Baseline || (cap == Isa::Neon) == (isa == Isa::Neon);
        if (same_arch) {
          for (Isa i : all) {
            if (rank(i) <= rank(cap)) { isa = i; break; }
          }
        }
      }
    }
    return isa;
  }();
  return chosen;
}

Isa resolve_isa(Isa requested) {
  if (requested == Isa::Auto) return best_isa();
  if (!isa_supported(requested)) {
    fail(ErrorKind::InvalidArgument, std::string("isa '") + isa_name(requested) + "' is not supported by this CPU");
  }
  return requested;
}

}  // namespace bnn::infer
