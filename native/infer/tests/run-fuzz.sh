#!/bin/sh
# Builds native/infer with AddressSanitizer + UBSan and runs the packed-model mutation fuzzer.
#   native/infer/tests/run-fuzz.sh [CASES] [PACKED_SEED_FILE...]
# Needs only g++ (the engine has no dependencies).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
native=$(cd "$here/../.." && pwd)
cases=${1:-3000}
[ $# -gt 0 ] && shift
out=$(mktemp -d "${TMPDIR:-/tmp}/bnn-infer-fuzz-build.XXXXXX")
trap 'rm -rf "$out"' EXIT
flags="-std=c++17 -g -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -I$native"
# Two compilers at a time (build machines are shared); a failed compile shows at the link.
n=0
for src in "$native"/infer/*.cpp "$here/fuzz_packed.cpp"; do
  g++ $flags -c "$src" -o "$out/$(basename "$src" .cpp).o" &
  n=$((n + 1))
  [ $((n % 2)) -eq 0 ] && wait
done
wait
g++ $flags "$out"/*.o -o "$out/fuzz_packed" -pthread
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  "$out/fuzz_packed" "$cases" "$@"
