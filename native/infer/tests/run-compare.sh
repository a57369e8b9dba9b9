#!/bin/sh
# The packed engine against LibTorch's float model on real data: exports FLOAT_MODEL (a bnn-torch
# final.safetensors) with build/Release/bnn_infer.node, runs torch_reference.py (PyTorch ops, the
# same network) on the first N Fashion-MNIST test images (or random input for other shapes) and
# compares (compare_torch.mjs says what passes).
#   native/infer/tests/run-compare.sh FLOAT_MODEL [N | random N C H W]
# Needs python3 with torch and safetensors, and the addon built (npm run build:native).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
model=$1
shift
out=$(mktemp -d "${TMPDIR:-/tmp}/bnn-infer-compare.XXXXXX")
trap 'rm -rf "$out"' EXIT
addon="$here/../../../build/Release/bnn_infer.node"
node -e "require(process.argv[1]).exportPacked(process.argv[2], process.argv[3], {}).then((r) => console.log('exported: float ' + r.floatBytes + ' B, packed ' + r.packedBytes + ' B'))" \
  "$addon" "$model" "$out/packed.safetensors"
if [ "${1:-}" = random ]; then
  shift
  python3 "$here/torch_reference.py" "$model" "$out/ref" --random "$@"
else
  python3 "$here/torch_reference.py" "$model" "$out/ref" --fashion "${1:-10000}"
fi
node "$here/compare_torch.mjs" "$out/packed.safetensors" "$out/ref" 2
