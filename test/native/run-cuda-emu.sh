#!/bin/sh
# Builds test/native/cuda-emu.cpp (the CUDA kernels' bodies on an emulation of CUDA's execution
# model, checked against ATen) with g++ against the CPU LibTorch that scripts/libtorch.mjs finds,
# and runs it.   test/native/run-cuda-emu.sh [suite]
# No GPU and no nvcc are needed. SANITIZE=0 builds without AddressSanitizer / UBSan (on by
# default: an out-of-bounds index in a kernel is a heap or static-array overflow here).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
CXX=${CXX:-g++}
root=$(cd "$repo" && node scripts/libtorch.mjs --no-fetch | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).root))')
out=$(mktemp -d "${TMPDIR:-/tmp}/bnn-cuda-emu.XXXXXX")
trap 'rm -rf "$out"' EXIT
sanitize=""
if [ "${SANITIZE:-1}" != 0 ]; then
  if echo 'int main() { return 0; }' | $CXX -x c++ -fsanitize=address,undefined - -o "$out/probe" 2> /dev/null; then
    sanitize="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
  else
    echo "run-cuda-emu: $CXX cannot link AddressSanitizer / UBSan here: building without them" >&2
  fi
fi
# -ffp-contract=off: every float operation rounds, as the ATen references do (see cuda-emu.h).
$CXX -std=c++17 -O1 -g1 -ffp-contract=off -Wall -Wno-unused-parameter $sanitize -D_GLIBCXX_USE_CXX11_ABI=1 \
  -I "$repo/native" -I "$here" -isystem "$root/include" -isystem "$root/include/torch/csrc/api/include" \
  "$here/cuda-emu.cpp" -o "$out/cuda-emu" -L "$root/lib" -Wl,-rpath,"$root/lib" -Wl,--no-as-needed -ltorch_cpu -lc10
# LibTorch is not built with ASan: its own allocations and threads are not checked, only ours; its
# one-time allocations are not leaks of this test.
# In the background and waited for, so that a SIGTERM (a test's timeout) stops it and cleans up.
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0} OMP_NUM_THREADS=1 "$out/cuda-emu" "$@" &
pid=$!
trap 'kill $pid 2> /dev/null; rm -rf "$out"; exit 143' INT TERM
wait $pid
