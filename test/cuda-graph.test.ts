// The captured training step (trainStep's cudaGraph): refused clearly wherever it cannot run, and
// on CUDA the same training as ordinary sync-free steps (weights, BatchNorm statistics, the
// device-side metrics), with the warm-up, capture and replays counted, a new graph for a new
// setting, and no host synchronisation in a replay.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  Adam,
  createModel,
  cudaAvailable,
  manualSeed,
  scope,
  setAllowTF32,
  setCudaSyncDebugMode,
  setCudnnOptions,
  StepMetrics,
  Tensor,
  Trainer,
  trainStep,
  trainTwoStage,
  InMemoryBatches,
  type Model,
} from '../src/index.js';
import { native } from '../src/binding/native.js';

const noCuda = !cudaAvailable() && 'CUDA not available';

test('cudaGraph is refused clearly on the CPU: by trainStep, the Trainer and the two-stage run', async () => {
  manualSeed(1);
  using m = createModel({ inChannels: 1, width: 4, numClasses: 3 });
  using opt = new Adam(m, { lr: 1e-3 });
  using x = Tensor.randn([4, 1, 8, 8]);
  using y = Tensor.fromArray([0, 1, 2, 0], [4], { dtype: 'int64' });
  using metrics = new StepMetrics();
  const stage = { epochs: 1, lr: 1e-3, weightDecay: 0, milestones: [], gammas: [] };
  const source = () => new InMemoryBatches(new Float32Array(4 * 64), [0, 1, 2, 0], [1, 8, 8], 3, { batchSize: 4 });
  const refused = (re: RegExp) => (e: Error & { code?: string }) => e.code === 'BNN_INVALID_ARGUMENT' && re.test(e.message);
  await assert.rejects(trainStep(m, opt, x, y, { metrics, cudaGraph: true }), refused(/cudaGraph needs a CUDA device; this model is on cpu/));
  await assert.rejects(trainStep(m, opt, x, y, { cudaGraph: 1 as unknown as boolean }), (e: Error) => e instanceof TypeError && /cudaGraph must be a boolean/.test(e.message));
  assert.throws(
    () => new Trainer({ model: m, stage: 1, options: stage, train: source(), cudaGraph: true }),
    /cudaGraph needs a CUDA model \(this one is on cpu\)/,
  );
  await assert.rejects(
    trainTwoStage({ model: { inChannels: 1, width: 4, numClasses: 3 }, stage1: stage, stage2: stage, train: source(), cudaGraph: true }),
    /cudaGraph needs a CUDA device \(this run is on cpu\)/,
  );
  // Nothing was captured or counted.
  assert.deepEqual(native().stepGraphCounts(), { captures: 0, replays: 0, warmups: 0 });
});

/** Parameters and buffers, on the host. */
function state(m: Model): Map<string, Float32Array> {
  return scope(() => new Map([...m.stateDict()].map(([k, t]) => [k, t.to('cpu', 'float32').toFloat32Array()])));
}

function maxDiff(a: Map<string, Float32Array>, b: Map<string, Float32Array>): number {
  let d = 0;
  for (const [k, v] of a) v.forEach((x, i) => (d = Math.max(d, Math.abs(x - b.get(k)![i]!))));
  return d;
}

test('CUDA: captured steps train as ordinary ones (float32, bfloat16, float16): warm-up, capture, replays, a new graph per setting, no host sync in a replay', { skip: noCuda }, async () => {
  setAllowTF32(false);
  // Deterministic cuDNN: the ordinary and the captured steps then run the same algorithms, and a
  // last-bit difference (which a sign or Adam's near-zero update can blow up) cannot creep in.
  setCudnnOptions({ deterministic: true });
  try {
    for (const precision of ['float32', 'bfloat16', 'float16'] as const) {
      const batch = (seed: number, n = 16) => {
        manualSeed(seed);
        return { x: Tensor.randn([n, 3, 16, 16], { device: 'cuda' }), y: Tensor.fromArray(Array.from({ length: n }, (_, i) => (i * 7 + seed) % 5), [n], { dtype: 'int64', device: 'cuda' }) };
      };
      const data = Array.from({ length: 8 }, (_, i) => batch(100 + i));
      const run = async (cudaGraph: boolean) => {
        manualSeed(3);
        const m = createModel({ inChannels: 3, width: 8, numClasses: 5 }).to('cuda');
        using opt = new Adam(m, { lr: 2e-3, weightDecay: 1e-5 });
        using metrics = new StepMetrics();
        const before = native().stepGraphCounts();
        for (const b of data) await trainStep(m, opt, b.x, b.y, { precision, metrics, cudaGraph });
        const totals = await metrics.read();
        const after = native().stepGraphCounts();
        const counts = { captures: after.captures - before.captures, replays: after.replays - before.replays, warmups: after.warmups - before.warmups };
        const s = state(m);
        m.dispose();
        return { totals, counts, s };
      };
      const plain = await run(false);
      const graphed = await run(true);
      assert.deepEqual(plain.counts, { captures: 0, replays: 0, warmups: 0 });
      // Three ordinary steps, one capture (whose replay is the fourth step), then four replays.
      assert.deepEqual(graphed.counts, { captures: 1, replays: 5, warmups: 3 }, precision);
      const tol = 1e-5;
      assert.ok(maxDiff(graphed.s, plain.s) <= tol, `${precision}: weights and buffers ${maxDiff(graphed.s, plain.s)} apart`);
      assert.equal(graphed.totals.steps, 8);
      assert.equal(graphed.totals.count, 8 * 16);
      assert.equal(graphed.totals.correct, plain.totals.correct, precision);
      assert.ok(Math.abs(graphed.totals.lossSum - plain.totals.lossSum) <= tol * 10 * Math.abs(plain.totals.lossSum), `${precision}: loss sums`);
      assert.equal(graphed.totals.firstNonFinite, -1);
      data.forEach((b) => (b.x.dispose(), b.y.dispose()));
    }

    // Settings: a new learning rate or batch size is another graph (warm-up and capture again); the
    // old one is kept and replayed when its setting returns; loading optimizer state clears them.
    manualSeed(4);
    using m = createModel({ inChannels: 3, width: 8, numClasses: 5 }).to('cuda');
    using opt = new Adam(m, { lr: 1e-3 });
    using metrics = new StepMetrics();
    using x = Tensor.randn([16, 3, 16, 16], { device: 'cuda' });
    using y = Tensor.fromArray(Array.from({ length: 16 }, (_, i) => i % 5), [16], { dtype: 'int64', device: 'cuda' });
    using x8 = Tensor.randn([8, 3, 16, 16], { device: 'cuda' });
    using y8 = Tensor.fromArray(Array.from({ length: 8 }, (_, i) => i % 5), [8], { dtype: 'int64', device: 'cuda' });
    const step = (a = x, b = y) => trainStep(m, opt, a, b, { precision: 'bfloat16', metrics, cudaGraph: true });
    const refused = (re: RegExp) => (e: Error & { code?: string }) => e.code === 'BNN_INVALID_ARGUMENT' && re.test(e.message);
    await assert.rejects(trainStep(m, opt, x, y, { cudaGraph: true }), refused(/cudaGraph needs device-side step metrics/));
    await assert.rejects(trainStep(m, opt, x, y, { metrics, cudaGraph: true, mixup: { alpha: 0.2, seed: 1 } }), refused(/not available with mixup/));
    using yCpu = y.to('cpu');
    await assert.rejects(trainStep(m, opt, x, yCpu, { metrics, cudaGraph: true }), refused(/needs the labels on the model's device/));
    const delta = async (work: () => Promise<void>) => {
      const before = native().stepGraphCounts();
      await work();
      const after = native().stepGraphCounts();
      return { captures: after.captures - before.captures, replays: after.replays - before.replays, warmups: after.warmups - before.warmups };
    };
    assert.deepEqual(await delta(async () => { for (let i = 0; i < 5; i++) await step(); }), { captures: 1, replays: 2, warmups: 3 });
    assert.deepEqual(await delta(async () => { for (let i = 0; i < 5; i++) await step(x8, y8); }), { captures: 1, replays: 2, warmups: 3 }, 'a shorter batch');
    assert.deepEqual(await delta(async () => { await step(); }), { captures: 0, replays: 1, warmups: 0 }, 'the full batch again: its graph was kept');
    opt.lr = 5e-4;
    assert.deepEqual(await delta(async () => { for (let i = 0; i < 4; i++) await step(); }), { captures: 1, replays: 1, warmups: 3 }, 'a new learning rate');
    // Reads and resets between replays keep the metrics' tensors (the graph writes them in place).
    const t = await metrics.read();
    metrics.reset();
    assert.equal(t.steps, 15);
    await step();
    assert.equal((await metrics.read()).steps, 1);
    // A replay never waits for the GPU.
    setCudaSyncDebugMode('error');
    try {
      assert.deepEqual(await delta(async () => { await step(); await step(); }), { captures: 0, replays: 2, warmups: 0 });
    } finally {
      setCudaSyncDebugMode('off');
    }
    scope(() => opt.loadStateDict(opt.stateDict()));
    assert.deepEqual(await delta(async () => { await step(); }), { captures: 0, replays: 0, warmups: 1 }, 'loading optimizer state cleared the graphs');
  } finally {
    setAllowTF32(true);
    setCudnnOptions({ deterministic: false, benchmark: true });
  }
});
