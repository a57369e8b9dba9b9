// One small training step through every fused CUDA kernel (BatchNorm -> sign -> conv, add ->
// PReLU, the 1-bit weight; float32, bfloat16 and float16, a width whose channel counts leave column
// blocks part empty), meant to run under NVIDIA's compute-sanitizer (memcheck, racecheck):
// scripts/gpu-check with SANITIZE=1. Exits non-zero if CUDA is absent or a fused path was not taken
// (a clean report over kernels that never ran would mean nothing).
//
// --compare: the smoke test scripts/gpu-check runs first, without the sanitizer. Each case takes
// two steps fused and two unfused from the same weights and batch (lr 0.1, so the second loss
// carries the first step's gradients), and the losses must agree (float32 1e-3 relative,
// bfloat16 and float16 3e-2). float16's loss scaler may skip an update (the first scale, 2^16,
// often overflows); a loss is compared only while both paths skipped the same updates, and a
// different skip is reported on its own line, not as a mismatch. Exits 1 on a mismatch, or dies
// with the kernel that failed.
import { createModel, cudaAvailable, manualSeed, setCudnnOptions, setFusionOptions, SGD, StepMetrics, Tensor, trainStep } from '../src/index.js';
import { native } from '../src/binding/native.js';

if (!cudaAvailable()) {
  console.error('cuda-sanitize: no CUDA device');
  process.exit(2);
}
const compare = process.argv.includes('--compare');
// cuDNN's algorithm search would run instrumented too, for nothing.
setCudnnOptions({ benchmark: false });
const precisions = ['float32', 'bfloat16', 'float16'] as const;
type Precision = (typeof precisions)[number];

/** The mean loss of each step, and the updates skipped so far after each, from fresh weights (seed 1) on one batch. */
async function losses(precision: Precision, binaryWeights: boolean, steps: number): Promise<{ loss: number[]; skipped: number[] }> {
  manualSeed(1);
  using m = createModel({ inChannels: 3, width: 12, numClasses: 5, binaryWeights }).to('cuda');
  using opt = new SGD(m, { lr: compare ? 0.1 : 1e-3 });
  using x = Tensor.randn([8, 3, 16, 16], { device: 'cuda' });
  using y = Tensor.fromArray([0, 1, 2, 3, 4, 0, 1, 2], [8], { dtype: 'int64', device: 'cuda' });
  using metrics = new StepMetrics();
  const loss: number[] = [];
  const skipped: number[] = [];
  let skips = 0;
  for (let i = 0; i < steps; i++) {
    await trainStep(m, opt, x, y, { precision, metrics });
    const t = await metrics.read();
    metrics.reset();
    loss.push(t.lossSum / t.count);
    skips += t.skipped;
    skipped.push(skips);
  }
  return { loss, skipped };
}

setFusionOptions({ cuda: true });
const before = native().setFusionFlags({});
let mismatches = 0;
for (const precision of precisions) {
  for (const binaryWeights of [false, true]) {
    const what = `${precision}, ${binaryWeights ? '1-bit' : 'real'} weights`;
    const fused = await losses(precision, binaryWeights, compare ? 2 : 1);
    if (!compare) {
      console.log(`${what}: loss ${fused.loss[0]!.toFixed(4)}`);
      continue;
    }
    setFusionOptions({ cuda: false });
    const plain = await losses(precision, binaryWeights, 2);
    setFusionOptions({ cuda: true });
    const tol = precision === 'float32' ? 1e-3 : 3e-2;
    // Step i's loss follows the updates before it: compared while the skips so far agree.
    const comparable = (i: number) => i === 0 || fused.skipped[i - 1] === plain.skipped[i - 1];
    const ok = fused.loss.every((l, i) => Number.isFinite(l) && (!comparable(i) || Math.abs(l - plain.loss[i]!) <= tol * Math.abs(plain.loss[i]!)));
    if (!ok) mismatches++;
    console.log(`${what}: losses fused ${fused.loss.map((l) => l.toFixed(5)).join(', ')}; unfused ${plain.loss.map((l) => l.toFixed(5)).join(', ')}${ok ? '' : '  MISMATCH'}`);
    if (fused.skipped.at(-1) !== plain.skipped.at(-1)) {
      console.log(`${what}: the loss scaler skipped ${fused.skipped.at(-1)} update(s) fused, ${plain.skipped.at(-1)} unfused (an overflow at the edge; the later loss is not compared)`);
    }
  }
}
const after = native().setFusionFlags({});
const bnSign = after.bnSignNodes - before.bnSignNodes;
const prelu = after.preluNodes - before.preluNodes;
console.log(`fused nodes: ${bnSign} BatchNorm -> sign -> conv, ${prelu} PReLU`);
const expected = precisions.length * 2 * 16 * (compare ? 2 : 1);
if (bnSign !== expected || prelu !== expected) {
  console.error(`cuda-sanitize: expected ${expected} fused nodes of each kind`);
  process.exit(1);
}
if (mismatches > 0) {
  console.error(`cuda-sanitize: ${mismatches} case(s) where the fused kernels' losses left the unfused ones`);
  process.exit(1);
}
