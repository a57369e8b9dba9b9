// The tricks ablation's training switches, end to end on a toy task: SGD, the cosine schedule,
// one stage (1-bit weights from scratch), label smoothing, mixup and the warm-up in both stages;
// each resumes exactly.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import {
  createModel,
  crossEntropy,
  drawMixup,
  InMemoryBatches,
  manualSeed,
  mixImages,
  mixupCrossEntropy,
  mixupSeed,
  oneStageOptions,
  scope,
  SGD,
  StepMetrics,
  Tensor,
  Trainer,
  trainStep,
  trainTwoStage,
  type BatchEndInfo,
  type EpochLog,
  type Model,
  type StageOptions,
  type TwoStageConfig,
} from '../src/index.js';
import { mulberry32 } from '../src/data/batches.js';
import { TOY_CLASSES, TOY_SHAPE, toyData } from './support/toy-task.js';
import { readSafetensorsSync } from '../src/io/safetensors.js';
import { createSchedule } from '../src/train/trainer.js';

const CLASSES = TOY_CLASSES;
const SHAPE = TOY_SHAPE;
const MODEL = { inChannels: 1, width: 4, numClasses: CLASSES };
const SEED = 3;


function trainSource(): InMemoryBatches {
  const tr = toyData(256, 1);
  return new InMemoryBatches(tr.images, tr.labels, SHAPE, CLASSES, { batchSize: 32, seed: 1 });
}

const STAGE1: StageOptions = { epochs: 2, lr: 5e-3, weightDecay: 1e-5, milestones: [1], gammas: [0.1] };
const STAGE2: StageOptions = { epochs: 2, lr: 1e-3, weightDecay: 0, milestones: [1], gammas: [0.2] };

function config(outDir: string | undefined, extra: Partial<TwoStageConfig> = {}): TwoStageConfig {
  const te = toyData(64, 101);
  return {
    model: MODEL,
    stage1: STAGE1,
    stage2: STAGE2,
    train: trainSource(),
    test: new InMemoryBatches(te.images, te.labels, SHAPE, CLASSES, { batchSize: 64, shuffle: false }),
    seed: SEED,
    ...(outDir ? { outDir } : {}),
    ...extra,
  };
}

const tmpDir = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'bnn-variants-'));
const weightsOf = (file: string): Map<string, Uint8Array> => new Map([...readSafetensorsSync(file).tensors].map(([k, t]) => [k, t.data]));

/** Mean cross-entropy (PyTorch's, with label smoothing) of a model's train-mode forward on the first batch of epoch 0. */
async function firstBatchLoss(model: Model, labelSmoothing: number): Promise<number> {
  for await (const batch of trainSource().epoch(0)) {
    try {
      return scope(() => crossEntropy(model.train().forward(batch.images), batch.labels, { labelSmoothing }).item());
    } finally {
      batch.dispose();
    }
  }
  throw new Error('no batch');
}

/** Runs a config, interrupting it after `stopAfter` epochs, resumes it, and compares with an uninterrupted run. */
async function assertResumesExactly(extra: Partial<TwoStageConfig>, stopAfter: number, epochs: number): Promise<EpochLog[]> {
  const whole = tmpDir();
  const result = await trainTwoStage(config(whole, extra));
  result.model.dispose();
  const broken = tmpDir();
  let seen = 0;
  const stop = { onEpochEnd: () => { if (++seen === stopAfter) throw new Error('simulated interruption'); } };
  await assert.rejects(trainTwoStage(config(broken, { ...extra, callbacks: stop })), /simulated interruption/);
  const resumed = await trainTwoStage(config(broken, { ...extra, resume: true }));
  resumed.model.dispose();
  assert.equal(resumed.history.length, epochs);
  assert.deepEqual(resumed.history.map((h) => [h.stage, h.epoch, h.lr]), result.history.map((h) => [h.stage, h.epoch, h.lr]));
  assert.deepEqual(weightsOf(path.join(broken, 'final.safetensors')), weightsOf(path.join(whole, 'final.safetensors')), 'resumed = never stopped');
  return result.history;
}

test('SGD with the cosine schedule in both stages: the planned rates, and a resume equals an uninterrupted run', async () => {
  const sgd = (s: StageOptions): StageOptions => ({ ...s, optimizer: 'sgd', momentum: 0.8, nesterov: true, lrSchedule: 'cosine', lr: s.lr * 10 });
  // Stopped in stage 1 (its momentum buffers resume) and in stage 2 (a fresh SGD from stage 1's weights).
  for (const stopAfter of [1, 3]) {
    const history = await assertResumesExactly({ stage1: sgd(STAGE1), stage2: sgd(STAGE2) }, stopAfter, 4);
    const cos = (lr: number, e: number, n: number): number => (lr * (1 + Math.cos((Math.PI * e) / n))) / 2;
    assert.deepEqual(history.map((h) => h.lr), [cos(5e-2, 0, 2), cos(5e-2, 1, 2), cos(1e-2, 0, 2), cos(1e-2, 1, 2)]);
    assert.ok(history.every((h) => Number.isFinite(h.trainLoss)));
  }
});

test("a checkpoint is resumed only with the optimizer it was made with", async () => {
  const out = tmpDir();
  (await trainTwoStage(config(out, { stages: 1, stage1: { ...STAGE1, optimizer: 'sgd' } }))).model.dispose();
  await assert.rejects(trainTwoStage(config(out, { stages: 1, resume: true })), /belongs to a different run configuration:[\s\S]*stage1: checkpoint has .*"optimizer":"sgd"/);
});

test('one stage: 1-bit weights from the first step, the two-stage rates end to end, one stage in the logs; resumes exactly', async () => {
  const smoothing = 0.1;
  const stage1 = { ...STAGE1, labelSmoothing: smoothing };
  const stage2 = { ...STAGE2, labelSmoothing: smoothing };
  let firstLoss = NaN;
  const out = tmpDir();
  const result = await trainTwoStage(config(out, {
    stage1,
    stage2,
    oneStage: true,
    callbacks: { onBatchEnd: (b) => { if (b.epoch === 0 && b.batch === 1) firstLoss = b.loss; } },
  }));
  try {
    assert.equal(result.model.binaryWeights, true);
    assert.deepEqual(result.history.map((h) => [h.stage, h.epoch]), [[2, 0], [2, 1], [2, 2], [2, 3]]);
    // 5e-3, x0.1 at 1, to stage 2's 1e-3 at 2, x0.2 at 3.
    const lrs = result.history.map((h) => h.lr);
    [5e-3, 5e-4, 1e-3, 2e-4].forEach((want, i) => assert.ok(Math.abs(lrs[i]! - want) < 1e-15, `epoch ${i}: ${lrs[i]} vs ${want}`));
    assert.ok(!fs.existsSync(path.join(out, 'stage1.safetensors')) && fs.existsSync(path.join(out, 'final.safetensors')));
    assert.equal(result.stage1WeightsPath, undefined);
  } finally {
    result.model.dispose();
  }
  // The first step's loss is that of the seeded initial model with 1-bit weights (and label
  // smoothing), not of its real-valued weights.
  manualSeed(SEED);
  using model = createModel(MODEL);
  const real = await firstBatchLoss(model, smoothing);
  model.setBinaryWeights(true);
  const binary = await firstBatchLoss(model, smoothing);
  // (A freshly initialised network's loss is near ln 4 either way: the tolerance is far below the gap.)
  const tolerance = 2e-6 * binary;
  assert.ok(Math.abs(real - binary) > 50 * tolerance, `the two forwards differ (${real} vs ${binary})`);
  assert.ok(Math.abs(firstLoss - binary) <= tolerance, `first step's loss ${firstLoss} = the 1-bit forward's ${binary} (real weights: ${real})`);

  await assertResumesExactly({ stage1, stage2, oneStage: true }, 2, 4);
  // A one-stage checkpoint is not a two-stage run's, and the options that cannot apply are refused.
  await assert.rejects(trainTwoStage(config(out, { stage1, stage2, resume: true })), /belongs to a different run configuration:[\s\S]*oneStage: checkpoint has true, this run has nothing/);
  await assert.rejects(trainTwoStage(config(undefined, { oneStage: true, stages: 1 })), /oneStage trains both stages' epochs in one run: stages must be 'both', got 1/);
  await assert.rejects(trainTwoStage(config(undefined, { oneStage: true, init: 'x.safetensors' })), /oneStage trains 1-bit weights from scratch: init/);
  await assert.rejects(trainTwoStage(config(undefined, { oneStage: 'yes' as never })), /oneStage must be a boolean/);
});

test('label smoothing reaches both stages: each stage\'s first step has the smoothed loss of its starting model', async () => {
  const smoothing = 0.2;
  const firsts = new Map<number, number>();
  const out = tmpDir();
  const r = await trainTwoStage(config(out, {
    stage1: { ...STAGE1, epochs: 1, labelSmoothing: smoothing },
    stage2: { ...STAGE2, epochs: 1, labelSmoothing: smoothing },
    callbacks: { onBatchEnd: (b) => { if (b.batch === 1) firsts.set(b.stage, b.loss); } },
  }));
  r.model.dispose();
  manualSeed(SEED);
  using model = createModel(MODEL);
  const one = await firstBatchLoss(model, smoothing);
  assert.ok(Math.abs(one - (await firstBatchLoss(model, 0))) > 1e-3, 'smoothing changes the loss');
  assert.ok(Math.abs(firsts.get(1)! - one) <= 1e-5 * one, `stage 1: ${firsts.get(1)} vs ${one}`);
  await model.loadWeights(path.join(out, 'stage1.safetensors'));
  model.setBinaryWeights(true);
  const two = await firstBatchLoss(model, smoothing);
  assert.ok(Math.abs(firsts.get(2)! - two) <= 1e-5 * two, `stage 2: ${firsts.get(2)} vs ${two}`);
});

test("crossEntropy's label smoothing is PyTorch's: (1 - e) * NLL + e * mean over classes of -log p", () => {
  scope(() => {
    const rand = mulberry32(9);
    const n = 6;
    const logits = Array.from({ length: n * CLASSES }, () => (rand() - 0.5) * 6);
    const labels = Array.from({ length: n }, (_, i) => (i * 3) % CLASSES);
    const x = Tensor.fromArray(logits, [n, CLASSES]);
    const y = Tensor.fromArray(labels, [n], { dtype: 'int64' });
    for (const e of [0, 0.1, 0.35]) {
      let want = 0;
      for (let i = 0; i < n; i++) {
        const row = logits.slice(i * CLASSES, (i + 1) * CLASSES);
        const max = Math.max(...row);
        const lse = max + Math.log(row.reduce((s, v) => s + Math.exp(v - max), 0));
        const nll = lse - row[labels[i]!]!;
        const uniform = row.reduce((s, v) => s + (lse - v), 0) / CLASSES;
        want += ((1 - e) * nll + e * uniform) / n;
      }
      const got = crossEntropy(x, y, { labelSmoothing: e }).item();
      assert.ok(Math.abs(got - want) <= 1e-6 * want, `smoothing ${e}: ${got} vs ${want}`);
    }
  });
});

test('SGD under the sync-free step (fused SGD) updates as LibTorch\'s, skips a NaN step on the device flag, and carries its momentum across', async () => {
  const batches = (await (async () => {
    const out: { x: Float32Array; y: number[] }[] = [];
    for await (const b of trainSource().epoch(0)) {
      out.push({ x: b.images.toFloat32Array(), y: [...b.labels.toTypedArray() as BigInt64Array].map(Number) });
      b.dispose();
    }
    return out;
  })()).slice(0, 6);
  const model = (): Model => {
    manualSeed(SEED);
    return createModel(MODEL);
  };
  const params = (m: Model): Float32Array[] => scope(() => m.parameters().map((t) => t.toFloat32Array()));
  const maxDiff = (a: Float32Array[], b: Float32Array[]): number => Math.max(...a.map((t, i) => Math.max(...t.map((v, j) => Math.abs(v - b[i]![j]!)))));
  const step = async (m: Model, opt: SGD, b: { x: Float32Array; y: number[] }, metrics?: StepMetrics) =>
    scope(async () => trainStep(m, opt, Tensor.fromArray(b.x, [b.y.length, ...SHAPE]), Tensor.fromArray(b.y, [b.y.length], { dtype: 'int64' }), metrics ? { metrics } : {}));
  const options = { lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 1e-4, noDecayOn: ['bn' as const] };
  using a = model();
  using b = model();
  using optA = new SGD(a, options);
  using optB = new SGD(b, options);
  using metrics = new StepMetrics();
  for (const batch of batches.slice(0, 3)) {
    await step(a, optA, batch);
    await step(b, optB, batch, metrics);
  }
  const d = maxDiff(params(a), params(b));
  assert.ok(d < 1e-5, `fused and LibTorch SGD differ by ${d}`);
  // A NaN batch raises the flag: no update and no momentum change from that step until the read.
  const before = params(b);
  const buffers = scope(() => [...optB.stateDict().values()].map((t) => t.toFloat32Array()));
  await step(b, optB, { x: new Float32Array(batches[3]!.x.length).fill(NaN), y: batches[3]!.y }, metrics);
  await step(b, optB, batches[4]!, metrics);
  const t = await metrics.read();
  assert.equal(t.firstNonFinite, 3);
  assert.equal(maxDiff(before, params(b)), 0, 'no update from the NaN step on');
  assert.equal(maxDiff(buffers, scope(() => [...optB.stateDict().values()].map((x) => x.toFloat32Array()))), 0, 'momentum buffers untouched');
  // The fused state moves back into LibTorch's SGD (a plain step), and out through stateDict.
  using c = model();
  scope(() => c.loadStateDict(b.stateDict()));
  using optC = new SGD(c, options);
  scope(() => optC.loadStateDict(optB.stateDict()));
  await step(b, optB, batches[5]!);
  await step(c, optC, batches[5]!);
  assert.equal(maxDiff(params(b), params(c)), 0, 'the state carried over exactly');
});

test('one stage under a time budget: the plan sizes the one stage, the run trains it, a resume keeps it', async () => {
  const out = tmpDir();
  const first = await trainTwoStage(config(out, { oneStage: true, timeBudget: 6 }));
  first.model.dispose();
  const plan = first.timeBudget!;
  assert.ok(plan, 'a plan was made');
  assert.ok(first.history.every((h) => h.stage === 2), 'one stage in the logs');
  assert.equal(first.history.length, plan.stage2.epochs, 'the planned epochs of the one stage');
  // Shortened epochs keep the epoch count (the rates stay the laid-out ones); scaled ones scale the milestones.
  assert.ok(plan.stage2.milestones.length >= 2, `the laid-out milestones: ${plan.stage2.milestones.join(", ")}`);
  const again = await trainTwoStage(config(out, { oneStage: true, timeBudget: 6, resume: true }));
  again.model.dispose();
  assert.equal(again.history.length, first.history.length, 'nothing left to train; no refusal');
});

/**
 * Runs a config whole, then again interrupted (Ctrl-C style) after batch `at.batch` of `at.epoch`
 * in `at.stage` and resumed; checks that the resumed run ends with the same weights and that every
 * step after the interruption trained at the rate the whole run used. Returns the whole run's steps.
 */
async function assertResumesMidEpoch(extra: Partial<TwoStageConfig>, at: { stage: 1 | 2; epoch: number; batch: number }): Promise<BatchEndInfo[]> {
  const steps = (into: BatchEndInfo[]) => ({ onBatchEnd: (b: BatchEndInfo) => void into.push(b) });
  const wholeSteps: BatchEndInfo[] = [];
  const whole = tmpDir();
  (await trainTwoStage(config(whole, { ...extra, callbacks: steps(wholeSteps) }))).model.dispose();
  const broken = tmpDir();
  const controller = new AbortController();
  await assert.rejects(
    trainTwoStage(config(broken, {
      ...extra,
      signal: controller.signal,
      callbacks: { onBatchEnd: (b) => { if (b.stage === at.stage && b.epoch === at.epoch && b.batch === at.batch) controller.abort(); } },
    })),
    (e: Error & { code?: string }) => e.code === 'BNN_INTERRUPTED',
  );
  const resumedSteps: BatchEndInfo[] = [];
  (await trainTwoStage(config(broken, { ...extra, resume: true, callbacks: steps(resumedSteps) }))).model.dispose();
  const key = (b: BatchEndInfo) => [b.stage, b.epoch, b.batch, b.lr];
  const from = wholeSteps.findIndex((b) => b.stage === at.stage && b.epoch === at.epoch && b.batch === at.batch + 1);
  assert.ok(from > 0);
  assert.deepEqual(resumedSteps.map(key), wholeSteps.slice(from).map(key), 'the resumed steps, at the same rates');
  assert.deepEqual(weightsOf(path.join(broken, 'final.safetensors')), weightsOf(path.join(whole, 'final.safetensors')), 'resumed mid-epoch = never stopped');
  return wholeSteps;
}

test("mixup in both stages: the first step learns the mixed loss of the seeded model with the step's draw; resumes exactly after 1 or 3 epochs and mid-epoch", async () => {
  const alpha = 0.4;
  const stage1 = { ...STAGE1, mixup: alpha };
  const stage2 = { ...STAGE2, mixup: alpha };
  const steps = await assertResumesMidEpoch({ stage1, stage2 }, { stage: 1, epoch: 1, batch: 3 });
  assert.ok(steps.every((b) => Number.isFinite(b.loss)));
  for (const stopAfter of [1, 3]) await assertResumesExactly({ stage1, stage2 }, stopAfter, 4);
  // The Trainer's draw for stage 1, epoch 0, step 0 is drawMixup(alpha, batch, mixupSeed(run seed, 1, 0, 0)).
  manualSeed(SEED);
  using model = createModel(MODEL);
  let want = NaN;
  let plain = NaN;
  for await (const batch of trainSource().epoch(0)) {
    scope(() => {
      const draw = drawMixup(alpha, batch.labels.shape[0]!, mixupSeed(SEED, 1, 0, 0));
      assert.ok(draw.lambda > 0.05 && draw.lambda < 0.95, `a draw that mixes visibly (lambda ${draw.lambda})`);
      want = mixupCrossEntropy(model.train().forward(mixImages(batch.images, draw)), batch.labels, draw).item();
      plain = crossEntropy(model.train().forward(batch.images), batch.labels).item();
    });
    batch.dispose();
    break;
  }
  assert.ok(Math.abs(want - plain) > 1e-3, `mixing changes the loss (${want} vs ${plain})`);
  assert.ok(Math.abs(steps[0]!.loss - want) <= 1e-5 * want, `first step's loss ${steps[0]!.loss} vs ${want}`);
  // Every step draws its own mixing: at a negligible learning rate each step's loss is the initial
  // model's mixed loss under drawMixup(alpha, batch, mixupSeed(seed, stage, epoch, step)).
  manualSeed(SEED);
  using still = createModel(MODEL);
  const perStep: number[] = [];
  let last = { loss: 0, seen: 0 };
  const trainer = new Trainer({
    model: still,
    stage: 1,
    options: { ...STAGE1, epochs: 1, lr: 1e-12, mixup: alpha },
    train: trainSource(),
    seed: SEED,
    callbacks: {
      onBatchEnd: (b) => {
        const seen = last.seen + b.batchSize;
        perStep.push(b.loss * seen - last.loss * last.seen);
        last = { loss: b.loss, seen };
      },
    },
  });
  try {
    await trainer.fit();
  } finally {
    trainer.dispose();
  }
  manualSeed(SEED);
  using initial = createModel(MODEL);
  let k = 0;
  for await (const batch of trainSource().epoch(0)) {
    const n = batch.labels.shape[0]!;
    const expected = scope(() => {
      const draw = drawMixup(alpha, n, mixupSeed(SEED, 1, 0, k));
      return mixupCrossEntropy(initial.train().forward(mixImages(batch.images, draw)), batch.labels, draw).item();
    });
    batch.dispose();
    assert.ok(Math.abs(perStep[k]! / n - expected) <= 1e-4 * expected, `step ${k}: ${perStep[k]! / n} vs ${expected}`);
    k++;
  }
  assert.equal(k, perStep.length);
  // Mixup trains another network than the plain run.
  const a = tmpDir();
  const b = tmpDir();
  (await trainTwoStage(config(a, { stage1: { ...STAGE1, epochs: 1 }, stages: 1 }))).model.dispose();
  (await trainTwoStage(config(b, { stage1: { ...STAGE1, epochs: 1, mixup: alpha }, stages: 1 }))).model.dispose();
  assert.notDeepEqual(weightsOf(path.join(a, 'stage1.safetensors')), weightsOf(path.join(b, 'stage1.safetensors')));
});

test("warm-up: every step's rate is the schedule's lrAtStep (LinearLR x the stage's schedule), in both stages and in one stage; a resume mid-warm-up continues the ramp", async () => {
  const stage1 = { ...STAGE1, warmupEpochs: 1 };
  const stage2 = { ...STAGE2, warmupEpochs: 1 };
  const batches = 256 / 32;
  const steps = await assertResumesMidEpoch({ stage1, stage2 }, { stage: 1, epoch: 0, batch: 3 });
  assert.equal(steps.length, 4 * batches);
  for (const b of steps) {
    const s = createSchedule(b.stage === 1 ? stage1 : stage2);
    assert.equal(b.lr, s.lrAtStep(b.epoch, b.batch - 1, batches), `stage ${b.stage} epoch ${b.epoch} batch ${b.batch}`);
  }
  // Stage 1 ramps from 5e-3 / 8 to 5e-3 x (1/8 + 7/8 x 7/8) over its first epoch, then 5e-4 (milestone 1); stage 2 ramps again.
  assert.equal(steps[0]!.lr, 5e-3 / 8);
  assert.ok(steps.slice(1, batches).every((b, i) => b.lr > steps[i]!.lr), 'rising through the warm-up epoch');
  assert.ok(Math.abs(steps[batches]!.lr - 5e-4) < 1e-18, 'epoch 1: the milestone (counted from epoch 0)');
  assert.equal(steps[2 * batches]!.lr, 1e-3 / 8, "stage 2's own warm-up");
  // One stage: the laid-out schedule with stage 1's warm-up; resumed mid-warm-up.
  const one = await assertResumesMidEpoch({ stage1, stage2, oneStage: true }, { stage: 2, epoch: 0, batch: 5 });
  const laidOut = createSchedule(oneStageOptions(stage1, stage2));
  assert.equal(laidOut.warmupEpochs, 1);
  for (const b of one) assert.equal(b.lr, laidOut.lrAtStep(b.epoch, b.batch - 1, batches));
  assert.equal(one[0]!.lr, 5e-3 / 8);
});
