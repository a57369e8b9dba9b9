#!/bin/sh
# Cross-builds the infer tests for aarch64 (Debian's g++-aarch64-linux-gnu) and runs them under
# qemu-user: the NEON kernels and the portable ones, each checked against the references.
#   native/infer/tests/run-arm.sh [--quick]
# Needs the Debian packages g++-aarch64-linux-gnu and qemu-user.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
for tool in aarch64-linux-gnu-g++ qemu-aarch64; do
  command -v "$tool" > /dev/null || { echo "infer arm tests: $tool not found (apt-get install g++-aarch64-linux-gnu qemu-user)" >&2; exit 1; }
done
CXX=aarch64-linux-gnu-g++ RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu" exec "$here/run-tests.sh" "$@"
