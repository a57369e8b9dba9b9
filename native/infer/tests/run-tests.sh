#!/bin/sh
# Builds native/infer with plain g++ (no LibTorch, no cmake) and runs its exactness tests on every
# instruction set this CPU supports.   native/infer/tests/run-tests.sh [--quick]
# CXX overrides the compiler; EXTRA_FLAGS adds flags (e.g. sanitizers); RUNNER prefixes the run.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
native=$(cd "$here/../.." && pwd)
CXX=${CXX:-g++}
out=$(mktemp -d "${TMPDIR:-/tmp}/bnn-infer-test-build.XXXXXX")
trap 'rm -rf "$out"' EXIT
flags="-std=c++17 -O2 -Wall -Wextra -Wno-unused-parameter -I$native ${EXTRA_FLAGS:-}"
# Two compilers at a time (build machines are shared).
n=0
for src in "$native"/infer/*.cpp "$here/test_infer.cpp"; do
  $CXX $flags -c "$src" -o "$out/$(basename "$src" .cpp).o" &
  n=$((n + 1))
  [ $((n % 2)) -eq 0 ] && wait
done
wait
$CXX $flags "$out"/*.o -o "$out/test_infer" -pthread
# The environment cap first (quick), then every ISA forced one by one.
BNN_CPU_ISA=baseline ${RUNNER:-} "$out/test_infer" --cap-check > /dev/null || {
  BNN_CPU_ISA=baseline ${RUNNER:-} "$out/test_infer" --cap-check; exit 1; }
# On an AVX-512 CPU the avx512bw cap picks the tier without VPOPCNTDQ (and on one without
# VPOPCNTDQ, the avx512 cap can only give avx512bw).
if [ -z "${RUNNER:-}" ] && grep -qw avx512bw /proc/cpuinfo 2>/dev/null && grep -qw avx512dq /proc/cpuinfo; then
  BNN_CPU_ISA=avx512bw "$out/test_infer" --cap-check || exit 1
  grep -qw avx512_vpopcntdq /proc/cpuinfo || BNN_CPU_ISA=avx512 "$out/test_infer" --cap-check avx512bw || exit 1
fi
${RUNNER:-} "$out/test_infer" "$@"
