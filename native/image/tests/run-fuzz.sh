#!/bin/sh
# Builds the image core with AddressSanitizer + UBSan and runs the mutation fuzzer.
#   native/image/tests/run-fuzz.sh [CASES] [SEED_FILE...]
# Needs g++ and the Debian packages libturbojpeg0-dev, libjpeg62-turbo-dev, libspng-dev, zlib1g-dev.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
native=$(cd "$here/../.." && pwd)
cases=${1:-5000}
[ $# -gt 0 ] && shift
out=$(mktemp -d "${TMPDIR:-/tmp}/bnn-image-fuzz-build.XXXXXX")
trap 'rm -rf "$out"' EXIT
flags="-std=c++17 -g -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -I$native"
# Two compilers at a time (build machines are shared); a failed compile shows at the link.
n=0
for src in "$native"/image/*.cpp "$here/fuzz_image.cpp"; do
  g++ $flags -c "$src" -o "$out/$(basename "$src" .cpp).o" &
  n=$((n + 1))
  [ $((n % 2)) -eq 0 ] && wait
done
wait
g++ $flags "$out"/*.o -o "$out/fuzz_image" -lturbojpeg -ljpeg -lspng -lz
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  "$out/fuzz_image" "$cases" "$@"
