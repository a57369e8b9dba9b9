// The sync-free training step (StepMetrics + the fused Adam), mixed-precision options and their
// checks. The arithmetic runs on the CPU here (ATen has the fused Adam for the CPU too); the CUDA
// test at the end proves, with CUDA's sync debug mode, that the step never waits for the GPU.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import {
  Adam,
  createModel,
  cudaAvailable,
  libtorchInfo,
  manualSeed,
  resolvePrecision,
  scope,
  setCudaSyncDebugMode,
  StepMetrics,
  Tensor,
  Trainer,
  trainStep,
  type Batch,
  type BatchSource,
  type EpochLog,
  type Model,
} from '../src/index.js';
import { mulberry32 } from '../src/data/batches.js';
import { VERSION } from '../src/core/version.js';
import { CHECKPOINT_FORMAT, loadCheckpoint, saveCheckpoint } from '../src/train/checkpoint.js';

const CLASSES = 4;
const SHAPE = [1, 8, 8] as const;
const BATCH = 16;

function batches(count: number, seed: number): { x: Float32Array; y: number[] }[] {
  const rand = mulberry32(seed);
  return Array.from({ length: count }, () => {
    const y = Array.from({ length: BATCH }, (_, i) => i % CLASSES);
    const x = new Float32Array(BATCH * 64).map(() => rand() * 2 - 1);
    y.forEach((c, i) => {
      for (let p = 0; p < 16; p++) x[i * 64 + c * 16 + p]! += 1.5; // each class lights its own rows
    });
    return { x, y };
  });
}

function model(seed = 5): Model {
  manualSeed(seed);
  return createModel({ inChannels: 1, width: 4, numClasses: CLASSES });
}

function weights(m: Model): Float32Array[] {
  return scope(() => [...m.stateDict().values()].map((t) => t.toFloat32Array()));
}

// Parameters only: a NaN batch's forward also updates BatchNorm's running statistics (in the
// synchronous step too, which checks the loss after the forward); the run stops either way and
// its checkpoint on disk stays as it was.
function params(m: Model): Float32Array[] {
  return scope(() => m.parameters().map((t) => t.toFloat32Array()));
}

function maxDiff(a: Float32Array[], b: Float32Array[]): number {
  let d = 0;
  a.forEach((t, i) => t.forEach((v, j) => (d = Math.max(d, Math.abs(v - b[i]![j]!)))));
  return d;
}

async function step(m: Model, opt: Adam, b: { x: Float32Array; y: number[] }, metrics?: StepMetrics) {
  using x = Tensor.fromArray(b.x, [BATCH, ...SHAPE]);
  using y = Tensor.fromArray(b.y, [BATCH], { dtype: 'int64' });
  return trainStep(m, opt, x, y, metrics ? { metrics } : {});
}

test('sync-free steps accumulate the same loss and hits as per-step reads, and update the same way', async () => {
  const data = batches(6, 1);
  using a = model();
  using b = model();
  using optA = new Adam(a, { lr: 1e-2, weightDecay: 1e-5 });
  using optB = new Adam(b, { lr: 1e-2, weightDecay: 1e-5 });
  using metrics = new StepMetrics();
  let lossSum = 0;
  let correct = 0;
  for (const [i, batch] of data.entries()) {
    const r = await step(a, optA, batch);
    lossSum += r.loss * r.count;
    correct += r.correct;
    const q = await step(b, optB, batch, metrics);
    assert.ok(Number.isNaN(q.loss) && q.correct === -1 && q.count === BATCH, 'a sync-free step returns no figures');
    if (i === 0) {
      // Same weights before the first update: the first loss is the same number.
      const first = await metrics.read();
      assert.ok(Math.abs(first.lossSum - r.loss * r.count) <= 1e-5 * Math.abs(r.loss * r.count), `${first.lossSum} vs ${r.loss * r.count}`);
      assert.equal(first.correct, r.correct);
      assert.equal(first.steps, 1);
    }
  }
  const t = await metrics.read();
  assert.equal(t.steps, 6);
  assert.equal(t.count, 6 * BATCH);
  assert.equal(t.firstNonFinite, -1);
  assert.equal(t.firstBadLabel, -1);
  // The fused Adam and LibTorch's differ only in rounding.
  assert.ok(Math.abs(t.lossSum - lossSum) <= 2e-3 * lossSum, `${t.lossSum} vs ${lossSum}`);
  assert.ok(Math.abs(t.correct - correct) <= 2, `${t.correct} vs ${correct}`);
  const d = maxDiff(weights(a), weights(b));
  assert.ok(d < 1e-4, `weights differ by ${d}`);
  metrics.reset();
  assert.deepEqual({ ...(await metrics.read()), lossSum: 0 }, { lossSum: 0, correct: 0, count: 0, steps: 0, firstNonFinite: -1, nonFiniteLoss: 0, firstBadLabel: -1, skipped: 0 });
});

test('a NaN loss raises the device flag: that update and every later one are skipped until the read', async () => {
  const data = batches(5, 2);
  using m = model();
  using opt = new Adam(m, { lr: 1e-2 });
  using metrics = new StepMetrics();
  await step(m, opt, data[0]!, metrics);
  await step(m, opt, data[1]!, metrics);
  const before = params(m);
  const stepsBefore = scope(() => opt.stateDict().get('conv1.weight.step')!.toFloat32Array()[0]);
  assert.equal(stepsBefore, 2);
  await step(m, opt, { x: new Float32Array(BATCH * 64).fill(NaN), y: data[2]!.y }, metrics);
  await step(m, opt, data[3]!, metrics);
  await step(m, opt, data[4]!, metrics);
  const t = await metrics.read();
  assert.equal(t.firstNonFinite, 2);
  assert.ok(Number.isNaN(t.nonFiniteLoss));
  assert.equal(t.steps, 5);
  assert.equal(maxDiff(before, params(m)), 0, 'no update was applied from the NaN step on');
  assert.equal(scope(() => opt.stateDict().get('conv1.weight.step')!.toFloat32Array()[0]), 2, 'skipped steps are not counted');
  assert.ok(Number.isFinite(t.lossSum) && t.lossSum > 0, 'finite steps still add up');
});

test('the fused optimizer state moves to and from the LibTorch Adam and through stateDict', async () => {
  const data = batches(5, 3);
  using a = model();
  using optA = new Adam(a, { lr: 5e-3, weightDecay: 1e-5 });
  using metrics = new StepMetrics();
  for (const b of data.slice(0, 3)) await step(a, optA, b, metrics);
  using b = model();
  scope(() => b.loadStateDict(a.stateDict()));
  using optB = new Adam(b, { lr: 5e-3, weightDecay: 1e-5 });
  scope(() => optB.loadStateDict(optA.stateDict()));
  assert.equal(scope(() => optB.stateDict().get('fc.weight.step')!.toFloat32Array()[0]), 3);
  // A: fused state migrates back to LibTorch's Adam; B: loaded from the exported state. Same update.
  await step(a, optA, data[3]!);
  await step(b, optB, data[3]!);
  assert.ok(maxDiff(weights(a), weights(b)) < 1e-6, 'the state carried over exactly');
  // And into the fused path again from LibTorch's state.
  await step(a, optA, data[4]!, metrics);
  await step(b, optB, data[4]!);
  assert.ok(maxDiff(weights(a), weights(b)) < 1e-5);
});

test('the float16 loss scale travels with the optimizer state (grad_scaler.*) through a checkpoint, and is checked on load', async (t) => {
  const data = batches(1, 4);
  using m = model();
  using opt = new Adam(m, { lr: 1e-3 });
  await step(m, opt, data[0]!);
  const keys = () => scope(() => [...opt.stateDict().keys()].filter((k) => k.startsWith('grad_scaler.')));
  assert.deepEqual(keys(), [], 'float32 steps keep no loss scale: their checkpoints are unchanged');
  const adamOnly = () => [...opt.stateDict()].filter(([k]) => !k.startsWith('grad_scaler.'));
  const withScale = (scale: Tensor, tracker: Tensor) => new Map([...adamOnly(), ['grad_scaler.scale', scale], ['grad_scaler._growth_tracker', tracker]]);
  scope(() => opt.loadStateDict(withScale(Tensor.fromArray([1024], []), Tensor.fromArray([7], [], { dtype: 'int32' }))));
  assert.deepEqual(keys(), ['grad_scaler.scale', 'grad_scaler._growth_tracker']);
  // Through a checkpoint file and into a fresh optimizer, as a resumed run does.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bnn-scaler-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'ckpt.safetensors');
  await scope(async () => {
    const meta = { format: CHECKPOINT_FORMAT, version: VERSION, stage: 1 as const, epochsDone: 1, runConfig: {}, history: [] };
    await saveCheckpoint(file, { meta, model: m.stateDict(), optimizer: opt.stateDict(), rng: Tensor.fromArray([0], [1], { dtype: 'uint8' }) });
  });
  const ckpt = await loadCheckpoint(file);
  using fresh = new Adam(m, { lr: 1e-3 });
  fresh.loadStateDict(ckpt.optimizer);
  [...ckpt.model.values(), ...ckpt.optimizer.values(), ckpt.rng].forEach((x) => x.dispose());
  scope(() => {
    const state = fresh.stateDict();
    assert.equal(state.get('grad_scaler.scale')!.dtype, 'float32');
    assert.equal(state.get('grad_scaler.scale')!.item(), 1024);
    assert.equal(state.get('grad_scaler._growth_tracker')!.dtype, 'int32');
    assert.equal(state.get('grad_scaler._growth_tracker')!.item(), 7);
    assert.equal(state.get('fc.weight.step')!.item(), 1, "Adam's own state came along");
  });
  // Refused clearly, and a refused load leaves the state as it was.
  const bad: [() => Map<string, Tensor>, RegExp][] = [
    [() => withScale(Tensor.fromArray([0], []), Tensor.fromArray([0], [], { dtype: 'int32' })), /grad_scaler\.scale must be finite, positive and within float32, got 0/],
    [() => withScale(Tensor.fromArray([NaN], []), Tensor.fromArray([0], [], { dtype: 'int32' })), /grad_scaler\.scale must be finite, positive and within float32/],
    [() => withScale(Tensor.fromArray([1e39], [], { dtype: 'float64' }), Tensor.fromArray([0], [], { dtype: 'int32' })), /grad_scaler\.scale must be finite, positive and within float32/],
    [() => withScale(Tensor.fromArray([2, 4], [2]), Tensor.fromArray([0], [], { dtype: 'int32' })), /grad_scaler\.scale must be one floating-point number/],
    [() => withScale(Tensor.fromArray([8], []), Tensor.fromArray([1.5], [])), /_growth_tracker must be one integer/],
    [() => withScale(Tensor.fromArray([8], []), Tensor.fromArray([-1], [], { dtype: 'int32' })), /_growth_tracker must be a count of steps, got -1/],
    [() => new Map([...adamOnly(), ['grad_scaler.scale', Tensor.fromArray([8], [])]]), /needs both grad_scaler\.scale and grad_scaler\._growth_tracker/],
    [() => new Map([...adamOnly(), ['grad_scaler.scales', Tensor.fromArray([8], [])]]), /unknown loss-scaler state 'grad_scaler\.scales'/],
  ];
  for (const [make, message] of bad) {
    scope(() => assert.throws(() => opt.loadStateDict(make()), (e: Error & { code?: string }) => e.code === 'BNN_INVALID_ARGUMENT' && message.test(e.message), `refused: ${message}`));
    assert.equal(scope(() => opt.stateDict().get('grad_scaler.scale')!.item()), 1024, `kept after ${message}`);
  }
  scope(() => opt.loadStateDict(new Map()));
  assert.deepEqual(keys(), [], 'an empty state resets the scale too');
});

test('the optimizer refuses its state, learning rate and updates while a training step that uses it runs', async () => {
  const data = batches(1, 5);
  using m = model();
  using opt = new Adam(m, { lr: 1e-3 });
  const pending = step(m, opt, data[0]!);
  for (const use of [() => opt.stateDict(), () => opt.loadStateDict(new Map()), () => (opt.lr = 1e-4), () => opt.step()]) {
    assert.throws(use, (e: Error & { code?: string }) => e.code === 'BNN_INVALID_ARGUMENT' && /the optimizer is busy with a training step/.test(e.message));
  }
  await pending;
  assert.equal(scope(() => opt.stateDict().get('fc.weight.step')!.item()), 1, 'free again once the step settled');
});

test('precision: checked, resolved, and refused clearly where it cannot run', async () => {
  assert.equal(resolvePrecision('auto', 'cpu'), 'float32');
  assert.equal(resolvePrecision('bfloat16', 'cpu'), 'bfloat16');
  assert.throws(() => resolvePrecision('int8' as never, 'cpu'), RangeError);
  using m = model();
  using opt = new Adam(m);
  using x = Tensor.zeros([2, ...SHAPE]);
  using y = Tensor.fromArray([0, 1], [2], { dtype: 'int64' });
  await assert.rejects(trainStep(m, opt, x, y, { precision: 'bfloat16' }), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'BNN_INVALID_ARGUMENT');
    assert.match(e.message, /reduced precision \(autocast\) needs a CUDA device; this model is on cpu/);
    return true;
  });
  await assert.rejects(trainStep(m, opt, x, y, { precision: 'float16' }), /needs a CUDA device/);
  await assert.rejects(trainStep(m, opt, x, y, { precision: 'half' as never }), RangeError);
  await assert.rejects(trainStep(m, opt, x, y, { metrics: {} as never }), TypeError);
  using bad = Tensor.fromArray([0, 7], [2], { dtype: 'int64' });
  using metrics = new StepMetrics();
  await assert.rejects(trainStep(m, opt, x, bad, { metrics }), /labels must be in \[0, 3\], found 7/);
  metrics.dispose();
  assert.throws(() => metrics.reset(), /disposed/);
  assert.throws(() => new Trainer({ model: m, stage: 1, options: { epochs: 1, lr: 1e-3, weightDecay: 0, milestones: [], gammas: [] }, train: source(batches(1, 0)), syncInterval: 0 }), RangeError);
});

function source(data: { x: Float32Array; y: number[] }[], poisonAt = -1): BatchSource {
  return {
    size: data.length * BATCH,
    batchesPerEpoch: data.length,
    numClasses: CLASSES,
    async *epoch(): AsyncIterable<Batch> {
      for (const [index, d] of data.entries()) {
        const images = Tensor.fromArray(index === poisonAt ? new Float32Array(BATCH * 64).fill(NaN) : d.x, [BATCH, ...SHAPE]);
        const labels = Tensor.fromArray(d.y, [BATCH], { dtype: 'int64' });
        const dispose = (): void => {
          images.dispose();
          labels.dispose();
        };
        yield { images, labels, index, dispose, [Symbol.dispose]: dispose };
      }
    },
  };
}

const STAGE = { epochs: 2, lr: 5e-3, weightDecay: 1e-5, milestones: [1], gammas: [0.1] };

test('Trainer with syncInterval reads every N steps and gives the epoch figures of per-step reads', async () => {
  const data = batches(7, 4);
  const run = async (syncInterval?: number) => {
    using m = model(9);
    const seen: number[] = [];
    const trainer = new Trainer({
      model: m,
      stage: 1,
      options: STAGE,
      train: source(data),
      ...(syncInterval ? { syncInterval } : {}),
      callbacks: { onBatchEnd: (b) => void seen.push(b.loss) },
    });
    try {
      return { logs: await trainer.fit(), seen };
    } finally {
      trainer.dispose();
    }
  };
  const every = await run();
  const sparse = await run(3);
  assert.ok(every.seen.every(Number.isFinite));
  // Read after batches 3, 6 and 7 (the epoch's end): before the first read there is no figure yet.
  assert.ok(Number.isNaN(sparse.seen[0]!) && Number.isNaN(sparse.seen[1]!) && Number.isFinite(sparse.seen[2]!));
  assert.equal(sparse.seen[3], sparse.seen[2], 'between reads the last figures stand');
  for (const [i, log] of every.logs.entries()) {
    const other: EpochLog = sparse.logs[i]!;
    assert.ok(Math.abs(other.trainLoss - log.trainLoss) <= 2e-3 * log.trainLoss, `epoch ${i}: ${other.trainLoss} vs ${log.trainLoss}`);
    assert.ok(Math.abs(other.trainAccuracy - log.trainAccuracy) <= 3 / (7 * BATCH));
  }
});

test('Trainer with syncInterval names the step of a NaN loss at the next read', async () => {
  using m = model(9);
  const trainer = new Trainer({ model: m, stage: 1, options: STAGE, train: source(batches(7, 4), 4), syncInterval: 3 });
  await assert.rejects(trainer.fit(), (e: Error & { code?: string; step?: number; epoch?: number }) => {
    assert.equal(e.code, 'BNN_NON_FINITE_LOSS');
    assert.match(e.message, /stage 1, epoch 1, step 5: the loss is nan/i);
    assert.equal(e.step, 4);
    assert.equal(e.epoch, 0);
    return true;
  });
  trainer.dispose();
});

test('CUDA: the sync-free step never waits for the GPU (sync debug mode), in bfloat16 and float16', { skip: !cudaAvailable() && 'no CUDA device' }, async () => {
  manualSeed(1);
  using m = createModel({ inChannels: 3, width: 16, numClasses: 10 }).to('cuda');
  using opt = new Adam(m, { lr: 1e-3 });
  using x = Tensor.randn([32, 3, 32, 32], { device: 'cuda' });
  using y = Tensor.fromArray(Array.from({ length: 32 }, (_, i) => i % 10), [32], { dtype: 'int64', device: 'cuda' });
  using metrics = new StepMetrics();
  const first = await trainStep(m, opt, x, y, { precision: 'float32' });
  for (const precision of ['bfloat16', 'float16'] as const) {
    // One step first: cuDNN's benchmark search for the new dtype's shapes may wait; steady state may not.
    await trainStep(m, opt, x, y, { precision, metrics });
    await metrics.read();
    metrics.reset();
    setCudaSyncDebugMode('error');
    try {
      for (let i = 0; i < 4; i++) await trainStep(m, opt, x, y, { precision, metrics });
    } finally {
      setCudaSyncDebugMode('off');
    }
    const t = await metrics.read();
    assert.equal(t.steps, 4);
    assert.equal(t.firstNonFinite, -1);
    // Mixup (drawn on the host, its permutation copied from pinned memory) and distillation (the
    // teacher's forward in the step) keep the step sync-free too.
    using teacher = createModel({ inChannels: 3, width: 16, numClasses: 10, binaryActivations: false }).to('cuda');
    await trainStep(m, opt, x, y, { precision, metrics, mixup: { alpha: 0.2, seed: 7 }, distill: { teacher } });
    await metrics.read();
    metrics.reset();
    setCudaSyncDebugMode('error');
    try {
      await trainStep(m, opt, x, y, { precision, metrics, mixup: { alpha: 0.2, seed: 8 } });
      await trainStep(m, opt, x, y, { precision, metrics, distill: { teacher } });
      await trainStep(m, opt, x, y, { precision, metrics, mixup: { alpha: 0.2, seed: 9 }, distill: { teacher, temperature: 2, weight: 0.7 } });
    } finally {
      setCudaSyncDebugMode('off');
    }
    const tricks = await metrics.read();
    assert.equal(tricks.steps, 3);
    assert.equal(tricks.firstNonFinite, -1);
    metrics.reset();
    // The same batch over and over: the model memorises it, in every precision.
    assert.ok(t.lossSum / t.count < first.loss, `${precision}: ${t.lossSum / t.count} vs ${first.loss} at the start`);
  }
  // The synced step does wait: the debug mode catches it, so the check above can fail.
  setCudaSyncDebugMode('error');
  try {
    await assert.rejects(trainStep(m, opt, x, y, { precision: 'bfloat16' }), /synchroniz/i);
  } finally {
    setCudaSyncDebugMode('off');
  }
});

test('CUDA: bfloat16 and float16 train like float32 (20 steps on one batch, from the same weights)', { skip: !cudaAvailable() && 'no CUDA device' }, async () => {
  const curve = async (precision: 'float32' | 'bfloat16' | 'float16') => {
    manualSeed(2);
    using m = createModel({ inChannels: 3, width: 16, numClasses: 10 }).to('cuda');
    using opt = new Adam(m, { lr: 1e-3 });
    using x = Tensor.randn([32, 3, 32, 32], { device: 'cuda' });
    using y = Tensor.fromArray(Array.from({ length: 32 }, (_, i) => i % 10), [32], { dtype: 'int64', device: 'cuda' });
    using metrics = new StepMetrics();
    const losses: number[] = [];
    for (let i = 0; i < 20; i++) {
      await trainStep(m, opt, x, y, { precision, metrics });
      const t = await metrics.read();
      metrics.reset();
      assert.equal(t.firstNonFinite, -1, `${precision} step ${i}`);
      losses.push(t.lossSum / t.count);
    }
    return losses;
  };
  const fp32 = await curve('float32');
  for (const precision of ['bfloat16', 'float16'] as const) {
    const low = await curve(precision);
    assert.ok(Math.abs(low[0]! - fp32[0]!) < 0.05 * fp32[0]!, `${precision} first loss ${low[0]} vs ${fp32[0]}`);
    assert.ok(low[19]! < 0.7 * low[0]!, `${precision} learns: ${low[0]} -> ${low[19]}`);
    assert.ok(Math.abs(low[19]! - fp32[19]!) < 0.3 * fp32[0]!, `${precision} ends at ${low[19]}, float32 at ${fp32[19]}`);
  }
});

test('CUDA: a float16 run resumed from its optimizer state goes on with the same loss scale and update', { skip: !cudaAvailable() && 'no CUDA device' }, async () => {
  manualSeed(3);
  const make = () => createModel({ inChannels: 3, width: 8, numClasses: 10 }).to('cuda');
  using a = make();
  using optA = new Adam(a, { lr: 1e-3 });
  using x = Tensor.randn([16, 3, 32, 32], { device: 'cuda' });
  using y = Tensor.fromArray(Array.from({ length: 16 }, (_, i) => i % 10), [16], { dtype: 'int64', device: 'cuda' });
  using metrics = new StepMetrics();
  for (let i = 0; i < 3; i++) await trainStep(a, optA, x, y, { precision: 'float16', metrics });
  const scaler = (o: Adam): [number, number] =>
    scope(() => {
      const s = o.stateDict();
      return [s.get('grad_scaler.scale')!.item(), s.get('grad_scaler._growth_tracker')!.item()];
    });
  const [scale, tracker] = scaler(optA);
  assert.ok(Number.isFinite(scale) && scale > 0 && scale <= 65536, `scale ${scale}`);
  assert.ok(tracker > 0 || scale < 65536, 'three steps moved the scaler off its first-step state');
  using b = make();
  scope(() => b.loadStateDict(a.stateDict()));
  using optB = new Adam(b, { lr: 1e-3 });
  scope(() => optB.loadStateDict(optA.stateDict()));
  await trainStep(a, optA, x, y, { precision: 'float16', metrics });
  await trainStep(b, optB, x, y, { precision: 'float16', metrics });
  assert.deepEqual(scaler(optB), scaler(optA), 'the resumed optimizer scales like the one that kept going');
  assert.ok(maxDiff(params(a), params(b)) < 1e-4, 'and takes the same update');
});

test('a CPU build refuses the sync debug mode clearly', { skip: libtorchInfo().cudaBuild && 'a CUDA build' }, () => {
  assert.throws(() => setCudaSyncDebugMode('error'), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'BNN_CUDA_UNAVAILABLE');
    assert.match(e.message, /needs a CUDA build/);
    return true;
  });
  assert.throws(() => setCudaSyncDebugMode('loud' as never), RangeError);
});
