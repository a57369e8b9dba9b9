// One small training step through every fused CUDA kernel (BatchNorm -> sign -> conv, add ->
// PReLU, the 1-bit weight; float32, bfloat16 and float16, a width whose channel counts leave column
// blocks part empty), meant to run under NVIDIA's compute-sanitizer (memcheck, racecheck):
// scripts/gpu-check with SANITIZE=1. Exits non-zero if CUDA is absent or a fused path was not taken
// (a clean report over kernels that never ran would mean nothing).
import { createModel, cudaAvailable, manualSeed, setCudnnOptions, SGD, StepMetrics, Tensor, trainStep } from '../src/index.js';
import { native } from '../src/binding/native.js';

if (!cudaAvailable()) {
  console.error('cuda-sanitize: no CUDA device');
  process.exit(2);
}
// cuDNN's algorithm search would run instrumented too, for nothing.
setCudnnOptions({ benchmark: false });
const before = native().setFusionFlags({});
const precisions = ['float32', 'bfloat16', 'float16'] as const;
for (const precision of precisions) {
  for (const binaryWeights of [false, true]) {
    manualSeed(1);
    using m = createModel({ inChannels: 3, width: 12, numClasses: 5, binaryWeights }).to('cuda');
    using opt = new SGD(m, { lr: 1e-3 });
    using x = Tensor.randn([8, 3, 16, 16], { device: 'cuda' });
    using y = Tensor.fromArray([0, 1, 2, 3, 4, 0, 1, 2], [8], { dtype: 'int64', device: 'cuda' });
    using metrics = new StepMetrics();
    await trainStep(m, opt, x, y, { precision, metrics });
    const t = await metrics.read();
    console.log(`${precision}, ${binaryWeights ? '1-bit' : 'real'} weights: loss ${(t.lossSum / t.count).toFixed(4)}`);
  }
}
const after = native().setFusionFlags({});
const bnSign = after.bnSignNodes - before.bnSignNodes;
const prelu = after.preluNodes - before.preluNodes;
console.log(`fused nodes: ${bnSign} BatchNorm -> sign -> conv, ${prelu} PReLU`);
const expected = precisions.length * 2 * 16;
if (bnSign !== expected || prelu !== expected) {
  console.error(`cuda-sanitize: expected ${expected} fused nodes of each kind`);
  process.exit(1);
}
