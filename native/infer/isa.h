#pragma once
// Instruction sets the inference kernels are compiled for, chosen at run time.
//
// x86-64: avx512 (F, BW, VL, DQ + VPOPCNTDQ: a 512-bit popcount; Ice Lake, Zen 4 and later),
// avx512bw (F, BW, VL, DQ without VPOPCNTDQ: Skylake-SP, Cascade Lake; the nibble-table popcount at
// 512 bits), avx2 (nibble-table popcount with pshufb), baseline (portable C++,
// __builtin_popcountll). aarch64: neon (vcnt), baseline.
// Every kernel is compiled with a GCC target attribute, never a global -march flag, so one binary
// runs on any CPU of its architecture. The environment variable BNN_CPU_ISA (avx512 | avx512bw |
// avx2 | baseline, as in native/core/vectorize.h; neon on ARM) caps the automatic choice, so one machine
// can test every lower path; a caller may also ask for one explicitly (an error if the CPU lacks it).
#include <string>
#include <vector>

namespace bnn::infer {

enum class Isa : int { Auto = -1, Baseline = 0, Avx2 = 1, Avx512 = 2, Neon = 3, Avx512Bw = 4 };

const char* isa_name(Isa isa);
// "avx512" | "avx512bw" | "avx2" | "baseline" | "neon" | "" / "auto" -> Auto. Throws InvalidArgument otherwise.
Isa parse_isa(const std::string& name);
// Whether this CPU (and OS) can run the kernels of `isa`.
bool isa_supported(Isa isa);
// Everything this CPU supports, best first.
std::vector<Isa> supported_isas();
// The best this CPU supports, capped by BNN_CPU_ISA (read once).
Isa best_isa();
// Auto -> best_isa(); an explicit request must be supported (InvalidArgument otherwise).
Isa resolve_isa(Isa requested);

}  // namespace bnn::infer
