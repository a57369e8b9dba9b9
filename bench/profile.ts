// Profiles training steps with LibTorch's profiler (the BNN_PROFILE_TRACE hook in
// native/train/step.cpp) and writes one chrome trace per profiled step; summarise with
// `python3 bench/trace-summary.py <trace>`.
// Usage: node --import tsx bench/profile.ts <width> <stage> <out-prefix> [profiled steps=3]
import { Adam, createModel, manualSeed, setNumThreads, Tensor, trainStep } from '../src/index.js';

const width = Number(process.argv[2] ?? 16);
const stage = Number(process.argv[3] ?? 1);
const prefix = process.argv[4] ?? `/tmp/bnn-w${width}-s${stage}`;
const profiled = Number(process.argv[5] ?? 3);
setNumThreads(Number(process.env.BENCH_THREADS ?? 2));
manualSeed(0);
const model = createModel({ numClasses: 10, inChannels: 1, width, binaryWeights: stage === 2 });
const adam = new Adam(model, { lr: 1e-3, weightDecay: stage === 1 ? 1e-5 : 0 });
const x = Tensor.randn([128, 1, 28, 28]);
const y = Tensor.fromArray(Array.from({ length: 128 }, (_, i) => i % 10), [128], { dtype: 'int64' });
model.train();
for (let i = 0; i < 3; i++) await trainStep(model, adam, x, y);
for (let i = 0; i < profiled; i++) {
  process.env.BNN_PROFILE_TRACE = `${prefix}.${i}.trace`;
  const t = performance.now();
  await trainStep(model, adam, x, y);
  console.log(`${prefix}.${i}.trace: ${(performance.now() - t).toFixed(0)} ms (with profiling)`);
}
delete process.env.BNN_PROFILE_TRACE;
