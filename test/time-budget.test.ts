// Sizing a run to a wall-clock budget: the measurement, the scaling of both stages, and a resume
// that keeps the plan its checkpoint was made with.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { InMemoryBatches, parseDuration, planTimeBudget, trainTwoStage, type BatchSource, type StageOptions } from '../src/index.js';
import { mulberry32 } from '../src/data/batches.js';

const CLASSES = 4;
const SHAPE = [1, 8, 8];

function toyData(n: number, seed: number): { images: Float32Array; labels: Int32Array } {
  const rand = mulberry32(seed);
  const images = new Float32Array(n * 64).map(() => rand() - 0.5);
  const labels = new Int32Array(n).map((_, i) => i % CLASSES);
  labels.forEach((c, i) => {
    for (let p = 0; p < 16; p++) images[i * 64 + c * 16 + p]! += 1.5;
  });
  return { images, labels };
}

function sources() {
  const tr = toyData(256, 1);
  const te = toyData(64, 2);
  return {
    train: new InMemoryBatches(tr.images, tr.labels, SHAPE, CLASSES, { batchSize: 16, seed: 1 }),
    test: new InMemoryBatches(te.images, te.labels, SHAPE, CLASSES, { batchSize: 32, shuffle: false }),
  };
}

const STAGE1: StageOptions = { epochs: 4, lr: 5e-3, weightDecay: 1e-5, milestones: [3], gammas: [0.1] };
const STAGE2: StageOptions = { epochs: 2, lr: 1e-3, weightDecay: 0, milestones: [1], gammas: [0.2] };
const MODEL = { inChannels: 1, width: 4, numClasses: CLASSES };

test('durations: minutes by default, s / m / h suffixes, nonsense refused', () => {
  assert.equal(parseDuration('15m'), 900);
  assert.equal(parseDuration('900s'), 900);
  assert.equal(parseDuration('1.5h'), 5400);
  assert.equal(parseDuration('2'), 120);
  assert.equal(parseDuration(' 10 min '), 600);
  for (const bad of ['', 'soon', '-3m', '0s', '5d']) assert.throws(() => parseDuration(bad), RangeError, bad);
});

test('the plan scales both stages by one factor to fill the budget, from measured step times', async () => {
  const { train, test: testSet } = sources();
  const plan = async (budgetSeconds: number) => planTimeBudget({ model: MODEL, stage1: STAGE1, stage2: STAGE2, train, test: testSet, budgetSeconds, steps: 4 });
  const small = await plan(1.5);
  // Generous on this machine now: three times what the schedule was measured to need.
  const probe = await plan(3600);
  const needs = probe.epochSeconds.stage1 * STAGE1.epochs + probe.epochSeconds.stage2 * STAGE2.epochs + probe.epochSeconds.eval;
  const budget = Math.max(60, 3 * needs + 3 * probe.calibrationSeconds);
  const big = await plan(budget);
  for (const p of [small, big]) {
    assert.ok(p.secondsPerStep.stage1 > 0 && p.secondsPerStep.stage2 > 0 && p.secondsPerStep.eval > 0, JSON.stringify(p.secondsPerStep));
    assert.ok(p.calibrationSeconds > 0);
    assert.ok(p.stage1.epochs >= 1 && p.stage2.epochs >= 1);
    // The schedule keeps its shape: milestones scale with the epochs and stay increasing.
    assert.equal(p.stage1.milestones.length, 1);
    assert.equal(p.stage1.lr, STAGE1.lr);
    assert.equal(p.stage2.weightDecay, STAGE2.weightDecay);
  }
  assert.ok(big.scale > small.scale, `${big.scale} > ${small.scale}`);
  assert.ok(big.stage1.epochs > STAGE1.epochs, `a generous budget adds epochs (${big.stage1.epochs})`);
  assert.ok(big.predictedSeconds <= budget * 0.93 - big.calibrationSeconds + 1e-9, `${big.predictedSeconds} s predicted`);
  // The prediction is the measured cost of the epochs it chose.
  const epochCost = (perStep: number) => perStep * train.batchesPerEpoch + big.secondsPerStep.eval * testSet.batchesPerEpoch;
  const expected = big.stage1.epochs * epochCost(big.secondsPerStep.stage1) + big.stage2.epochs * epochCost(big.secondsPerStep.stage2) + big.secondsPerStep.eval * testSet.batchesPerEpoch;
  assert.ok(Math.abs(big.predictedSeconds - expected) < 1e-9);
  await assert.rejects(plan(0), RangeError);
});

/** `source`, counting the passes started over it and the batches drawn: what a measurement trained on. */
function counting(source: BatchSource): BatchSource & { passes: number; drawn: number } {
  const counted = {
    passes: 0,
    drawn: 0,
    size: source.size,
    batchesPerEpoch: source.batchesPerEpoch,
    numClasses: source.numClasses,
    async *epoch(epoch: number, options?: { startBatch?: number }) {
      counted.passes++;
      for await (const batch of source.epoch(epoch, options)) {
        counted.drawn++;
        yield batch;
      }
    },
  };
  return counted;
}

test('only the stages that will train are measured: stage 1 alone, stage 2 alone, a one-stage run', async () => {
  const { train, test: testSet } = sources();
  // 4 timed steps after 2 untimed warm-up steps: 6 batches for each stage measured.
  const measured = async (stages: 'both' | 1 | 2) => {
    const source = counting(train);
    const plan = await planTimeBudget({ model: MODEL, stage1: STAGE1, stage2: STAGE2, train: source, test: testSet, budgetSeconds: 3600, steps: 4, stages });
    return { plan, passes: source.passes, drawn: source.drawn };
  };
  const both = await measured('both');
  assert.deepEqual([both.passes, both.drawn], [2, 12]);
  const one = await measured(1);
  assert.deepEqual([one.passes, one.drawn], [1, 6], 'stage 1 alone: no 1-bit steps measured');
  assert.ok(one.plan.secondsPerStep.stage1 > 0);
  assert.deepEqual([one.plan.secondsPerStep.stage2, one.plan.epochSeconds.stage2], [0, 0]);
  assert.ok(Math.abs(one.plan.predictedSeconds - (one.plan.stage1.epochs * one.plan.epochSeconds.stage1 + one.plan.epochSeconds.eval)) < 1e-9);
  const two = await measured(2);
  assert.deepEqual([two.passes, two.drawn], [1, 6], 'stage 2 alone: no real-valued steps measured');
  assert.ok(two.plan.secondsPerStep.stage2 > 0 && two.plan.secondsPerStep.eval > 0);
  assert.deepEqual([two.plan.secondsPerStep.stage1, two.plan.epochSeconds.stage1], [0, 0]);
  assert.ok(Math.abs(two.plan.predictedSeconds - (two.plan.stage2.epochs * two.plan.epochSeconds.stage2 + two.plan.epochSeconds.eval)) < 1e-9);

  // A one-stage run trains 1-bit weights only (as stage 2): its plan measures that stage alone.
  // Stopped as soon as the plan is made (the run's own batches are not the measurement's).
  const source = counting(train);
  const stop = new AbortController();
  let atPlan: { passes: number; drawn: number; stage1: number; stage2: number } | undefined;
  await assert.rejects(
    trainTwoStage({
      model: MODEL,
      stage1: STAGE1,
      stage2: STAGE2,
      oneStage: true,
      train: source,
      test: testSet,
      timeBudget: 3600,
      signal: stop.signal,
      onTimeBudget: (p) => {
        atPlan = { passes: source.passes, drawn: source.drawn, stage1: p.secondsPerStep.stage1, stage2: p.secondsPerStep.stage2 };
        stop.abort();
      },
    }),
    (e: Error & { code?: string }) => e.code === 'BNN_INTERRUPTED',
  );
  assert.ok(atPlan, 'a plan was made');
  // 2 warm-ups and up to 20 timed steps (the default), as many as this 16-batch epoch holds.
  assert.deepEqual([atPlan.passes, atPlan.drawn, atPlan.stage1], [1, Math.min(2 + 20, train.batchesPerEpoch), 0], 'one measured stage');
  assert.ok(atPlan.stage2 > 0);
});

test('trainTwoStage with a time budget trains the planned epochs, and a resume keeps that plan', async () => {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'bnn-budget-'));
  const { train, test: testSet } = sources();
  let announced: number | undefined;
  const first = await trainTwoStage({ model: MODEL, stage1: STAGE1, stage2: STAGE2, train, test: testSet, outDir: out, timeBudget: 8, onTimeBudget: (p) => void (announced = p.scale) });
  first.model.dispose();
  assert.ok(first.timeBudget);
  assert.equal(announced, first.timeBudget.scale);
  const planned = first.timeBudget;
  assert.equal(first.history.filter((h) => h.stage === 1).length, planned.stage1.epochs);
  assert.equal(first.history.filter((h) => h.stage === 2).length, planned.stage2.epochs);
  // Resuming a finished run with the same budget: the checkpoint's schedule is adopted (no new
  // measurement, no "different configuration" refusal), and nothing is left to train.
  const again = await trainTwoStage({ model: MODEL, stage1: STAGE1, stage2: STAGE2, train, test: testSet, outDir: out, resume: true, timeBudget: 8 });
  again.model.dispose();
  assert.equal(again.timeBudget, undefined);
  assert.equal(again.history.length, first.history.length);
  await assert.rejects(trainTwoStage({ model: MODEL, stage1: STAGE1, stage2: STAGE2, train, timeBudget: -1 }), RangeError);
});

test('a run slower than measured shortens the epochs still to come, in both stages', async () => {
  const { train, test: testSet } = sources();
  const plans: { steps1?: number; steps2?: number; epochs1: number; epochs2: number }[] = [];
  const slow = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const batchesSeen = new Map<string, number>();
  // A budget the schedule just fits, measured on this machine now.
  const probe = await planTimeBudget({ model: MODEL, stage1: STAGE1, stage2: STAGE2, train, test: testSet, budgetSeconds: 3600, steps: 4 });
  const full = probe.epochSeconds.stage1 * 4 + probe.epochSeconds.stage2 * 2 + probe.epochSeconds.eval;
  const result = await trainTwoStage({
    model: MODEL,
    stage1: STAGE1,
    stage2: STAGE2,
    train,
    test: testSet,
    timeBudget: full / 0.93 + probe.calibrationSeconds + 0.5,
    onTimeBudget: (p) => void plans.push({ steps1: p.stage1.stepsPerEpoch, steps2: p.stage2.stepsPerEpoch, epochs1: p.stage1.epochs, epochs2: p.stage2.epochs }),
    // The measurement cannot see this: every stage-1 batch of the first two epochs waits 60 ms.
    callbacks: {
      onBatchEnd: async (b) => {
        batchesSeen.set(`${b.stage}.${b.epoch}`, b.batch);
        if (b.stage === 1 && b.epoch < 2) await slow(Math.max(60, 4000 * probe.secondsPerStep.stage1));
      },
    },
  });
  result.model.dispose();
  assert.ok(plans.length >= 2, `planned, then refitted: ${JSON.stringify(plans)}`);
  const first = plans[0]!;
  const last = plans.at(-1)!;
  // Epochs and milestones stay; the epochs get shorter.
  assert.deepEqual([last.epochs1, last.epochs2], [first.epochs1, first.epochs2]);
  assert.ok(last.steps2 !== undefined && last.steps2 < (first.steps2 ?? train.batchesPerEpoch), JSON.stringify(plans));
  assert.equal(result.history.filter((h) => h.stage === 2).length, first.epochs2);
  assert.equal(result.timeBudget?.stage2.stepsPerEpoch, last.steps2);
  // Stage 2 trained exactly the batches the last plan gave it.
  for (let e = 0; e < first.epochs2; e++) assert.equal(batchesSeen.get(`2.${e}`), last.steps2, `stage 2 epoch ${e}`);
  // Stage 1's later epochs were shortened too.
  assert.ok(batchesSeen.get(`1.${first.epochs1 - 1}`)! < train.batchesPerEpoch, JSON.stringify([...batchesSeen]));
});

// A schedule too long for the budget: 40 + 20 epochs of 16 batches.
const LONG1: StageOptions = { ...STAGE1, epochs: 40, milestones: [30] };
const LONG2: StageOptions = { ...STAGE2, epochs: 20, milestones: [10] };

test('a budget shorter than the schedule shortens every epoch and keeps the epochs and milestones', async () => {
  const { train, test: testSet } = sources();
  const generous = await planTimeBudget({ model: MODEL, stage1: LONG1, stage2: LONG2, train, test: testSet, budgetSeconds: 3600, steps: 4 });
  assert.equal(generous.stage1.stepsPerEpoch, undefined, 'a budget the schedule fits adds epochs, never shortens them');
  // About half of what the full schedule needs, measured.
  const full = generous.epochSeconds.stage1 * 40 + generous.epochSeconds.stage2 * 20 + generous.epochSeconds.eval;
  const plan = await planTimeBudget({ model: MODEL, stage1: LONG1, stage2: LONG2, train, test: testSet, budgetSeconds: full * 0.55 + 2, steps: 4 });
  assert.deepEqual([plan.stage1.epochs, plan.stage1.milestones, plan.stage2.epochs, plan.stage2.milestones], [40, [30], 20, [10]]);
  const steps1 = plan.stage1.stepsPerEpoch!;
  assert.ok(steps1 >= Math.floor(0.3 * train.batchesPerEpoch) && steps1 < train.batchesPerEpoch, `stage 1 takes ${steps1} of ${train.batchesPerEpoch} batches`);
  assert.equal(plan.stage2.stepsPerEpoch, steps1);
  assert.ok(Math.abs(plan.scale - steps1 / train.batchesPerEpoch) < 0.07, `${plan.scale}`);
  assert.ok(plan.predictedSeconds <= (full * 0.55 + 2) * 0.93 - plan.calibrationSeconds + 1e-9);
  const perEpoch = (s: number) => s * steps1 + plan.epochSeconds.eval;
  assert.ok(Math.abs(plan.epochSeconds.stage1 - perEpoch(plan.secondsPerStep.stage1)) < 1e-9, 'epochSeconds is the planned (short) epoch');
  // Evaluation alone filling most of the budget: fewer epochs instead.
  const tiny = await planTimeBudget({ model: MODEL, stage1: LONG1, stage2: LONG2, train, test: testSet, budgetSeconds: 61 * plan.epochSeconds.eval * 1.2 + 1, steps: 4 });
  assert.equal(tiny.stage1.stepsPerEpoch, undefined);
  assert.ok(tiny.stage1.epochs < 40 && tiny.stage2.epochs < 20, `${tiny.stage1.epochs} + ${tiny.stage2.epochs}`);
});

test('stepsPerEpoch: each epoch trains that many batches, the milestones stay in epochs', async () => {
  const { train } = sources();
  const seen: { epoch: number; batch: number; batches: number; lr: number }[] = [];
  const result = await trainTwoStage({
    model: MODEL,
    stage1: { ...STAGE1, epochs: 3, milestones: [2], stepsPerEpoch: 5 },
    stage2: { ...STAGE2, epochs: 1, milestones: [], gammas: [], stepsPerEpoch: 40 },
    train,
    callbacks: { onBatchEnd: (b) => void seen.push(b) },
  });
  result.model.dispose();
  const stage1 = seen.filter((b) => (b as { stage?: number }).stage === 1);
  assert.deepEqual(stage1.map((b) => b.batch), [1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2, 3, 4, 5]);
  assert.ok(stage1.every((b) => b.batches === 5));
  assert.deepEqual([...new Set(stage1.map((b) => b.lr))], [STAGE1.lr, STAGE1.lr * 0.1]);
  // More than the training set holds: the whole set, no more.
  assert.equal(seen.length - stage1.length, train.batchesPerEpoch);
  for (const [bad, kind] of [[0, RangeError], [-2, RangeError], [1.5, TypeError]] as const) {
    await assert.rejects(trainTwoStage({ model: MODEL, stage1: { ...STAGE1, stepsPerEpoch: bad }, stage2: STAGE2, train }), kind, String(bad));
  }
});

const MID1: StageOptions = { ...STAGE1, epochs: 12, milestones: [9] };
const MID2: StageOptions = { ...STAGE2, epochs: 6, milestones: [3] };

test('a shortened plan whose stage 1 ran slow shortens stage 2 epochs further', async () => {
  const { train, test: testSet } = sources();
  const probe = await planTimeBudget({ model: MODEL, stage1: MID1, stage2: MID2, train, test: testSet, budgetSeconds: 3600, steps: 4 });
  const full = probe.epochSeconds.stage1 * 12 + probe.epochSeconds.stage2 * 6 + probe.epochSeconds.eval;
  const plans: { steps1?: number; steps2?: number; epochs2: number }[] = [];
  const slow = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const result = await trainTwoStage({
    model: MODEL,
    stage1: MID1,
    stage2: MID2,
    train,
    test: testSet,
    timeBudget: full * 0.6 + 2,
    onTimeBudget: (p) => void plans.push({ steps1: p.stage1.stepsPerEpoch, steps2: p.stage2.stepsPerEpoch, epochs2: p.stage2.epochs }),
    callbacks: {
      onBatchEnd: async (b) => {
        if (b.stage === 1) await slow(Math.max(30, 3000 * probe.secondsPerStep.stage1));
      },
    },
  });
  result.model.dispose();
  assert.ok(plans.length >= 2, JSON.stringify(plans));
  assert.ok(plans[0]!.steps1 !== undefined && plans.at(-1)!.steps2! < plans[0]!.steps2!, JSON.stringify(plans));
  assert.equal(plans.at(-1)!.epochs2, 6, 'stage 2 keeps its epochs');
  assert.equal(result.history.filter((h) => h.stage === 2).length, 6);
});
