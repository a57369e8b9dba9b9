// One small training step through every fused CUDA kernel (BatchNorm -> sign -> conv, add ->
// PReLU, the 1-bit weight; float32 and bfloat16, a width whose channel counts leave column blocks
// part empty), meant to run under NVIDIA's compute-sanitizer (memcheck, racecheck): scripts/gpu-check
// with SANITIZE=1. Prints the fused nodes it ran; exits non-zero if CUDA is absent.
import { createModel, cudaAvailable, manualSeed, SGD, Tensor, trainStep } from '../src/index.js';
import { native } from '../src/binding/native.js';

if (!cudaAvailable()) {
  console.error('cuda-sanitize: no CUDA device');
  process.exit(2);
}
const before = native().setFusionFlags({});
for (const precision of ['float32', 'bfloat16'] as const) {
  for (const binaryWeights of [false, true]) {
    manualSeed(1);
    using m = createModel({ inChannels: 3, width: 12, numClasses: 5, binaryWeights }).to('cuda');
    using opt = new SGD(m, { lr: 1e-3 });
    using x = Tensor.randn([8, 3, 16, 16], { device: 'cuda' });
    using y = Tensor.fromArray([0, 1, 2, 3, 4, 0, 1, 2], [8], { dtype: 'int64', device: 'cuda' });
    const r = await trainStep(m, opt, x, y, { precision });
    console.log(`${precision}, ${binaryWeights ? '1-bit' : 'real'} weights: loss ${r.loss.toFixed(4)}`);
  }
}
const after = native().setFusionFlags({});
console.log(`fused nodes: ${after.bnSignNodes - before.bnSignNodes} BatchNorm -> sign -> conv, ${after.preluNodes - before.preluNodes} PReLU`);
