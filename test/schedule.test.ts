import assert from 'node:assert/strict';
import { test } from 'node:test';

import { CosineSchedule, getPreset, MultiStepSchedule, oneStageOptions, PRESETS, scaleStage, type StageOptions, type StageSchedule, warmupFactor } from '../src/index.js';
import { checkStage, createSchedule } from '../src/train/trainer.js';
import { loadFixture } from './support/fixtures.js';

// The reference's adjust_learning_rate, written independently: multiply by each gamma whose
// milestone the epoch has reached.
function reference(stage: StageSchedule, epoch: number): number {
  let lr = stage.lr;
  stage.milestones.forEach((m, i) => {
    if (epoch >= m) lr *= stage.gammas[i]!;
  });
  return lr;
}

test('every epoch of every preset follows the recipe formula', () => {
  for (const preset of Object.values(PRESETS)) {
    for (const stage of [preset.stage1, preset.stage2]) {
      const s = new MultiStepSchedule({ baseLr: stage.lr, milestones: stage.milestones, gammas: stage.gammas });
      for (let e = 0; e < stage.epochs; e++) assert.equal(s.lrAt(e), reference(stage, e), `${preset.name} epoch ${e}`);
    }
  }
});

test('the recipe preset is the recipe as written', () => {
  const r = getPreset('recipe');
  assert.deepEqual([r.stage1.lr, r.stage1.weightDecay, r.stage1.milestones, r.stage1.epochs], [1e-3, 1e-5, [40, 60, 70], 75]);
  assert.deepEqual([r.stage2.lr, r.stage2.weightDecay, r.stage2.milestones, r.stage2.epochs], [2e-4, 0, [150, 250, 320], 350]);
  const s1 = new MultiStepSchedule({ baseLr: 1e-3, milestones: [40, 60, 70], gammas: [0.1, 0.1, 0.1] });
  assert.equal(s1.lrAt(39), 1e-3);
  assert.equal(s1.lrAt(40), 1e-3 * 0.1);
  assert.equal(s1.lrAt(74), 1e-3 * 0.1 * 0.1 * 0.1);
  const s2 = new MultiStepSchedule({ baseLr: 2e-4, milestones: [150, 250, 320], gammas: [0.2, 0.2, 0.2] });
  assert.ok(Math.abs(s2.lrAt(349) - 2e-4 * 0.008) < 1e-18);
  assert.deepEqual([getPreset('imagenet').stage2.milestones, getPreset('cifar100').stage1.milestones], [[40, 60, 70], [150, 250, 320]]);
});

test('warm-up ramps every step, then the steps apply; milestones count from epoch 0', () => {
  const s = new MultiStepSchedule({ baseLr: 1, milestones: [3], gammas: [0.5], warmupEpochs: 2 });
  // lrAt is the epoch's scheduled rate; the warm-up is per step: T = 2 x 4 steps, 1/8 + (7/8) i / 8.
  assert.deepEqual([0, 1, 2, 3].map((e) => s.lrAt(e)), [1, 1, 1, 0.5]);
  const steps = [0, 1].flatMap((e) => [0, 1, 2, 3].map((b) => s.lrAtStep(e, b, 4)));
  steps.forEach((lr, i) => assert.ok(Math.abs(lr - (1 / 8 + ((7 / 8) * i) / 8)) < 1e-15, `step ${i}: ${lr}`));
  assert.equal(s.lrAtStep(2, 0, 4), 1, 'full rate from the first step after the warm-up');
  assert.equal(s.lrAtStep(3, 3, 4), 0.5, "the milestone at epoch 3 counts from the stage's epoch 0");
  assert.equal(s.step(0, { lr: 0 }, 4), 1 / 8, "step() sets the epoch's first step's rate");
  assert.equal(warmupFactor(0, 0, 0, 5), 1, 'no warm-up: factor 1');
  assert.throws(() => s.lrAtStep(0, 4, 4), /step must be between 0 and 3, got 4/);
  assert.throws(() => s.lrAtStep(0, 0, 0), /steps must be at least 1, got 0/);
});

test("warm-up: PyTorch's LinearLR(start_factor=1/T, total_iters=T) per step times MultiStepLR or CosineAnnealingLR per epoch (golden)", () => {
  const fx = loadFixture('lr-warmup');
  type Case = { lr: number; epochs: number; steps: number; warmupEpochs: number; schedule: 'step' | 'cosine'; milestones?: number[]; gamma?: number; lrs: number[] };
  const cases = (JSON.parse(fx.metadata.config!) as { warmup: Case[] }).warmup;
  fx.tensors.forEach((t) => t.dispose());
  assert.ok(cases.length >= 4 && cases.some((c) => c.schedule === 'cosine') && cases.some((c) => c.schedule === 'step'));
  for (const c of cases) {
    const stage: StageOptions = {
      epochs: c.epochs,
      lr: c.lr,
      weightDecay: 0,
      milestones: c.milestones ?? [],
      gammas: (c.milestones ?? []).map(() => c.gamma!),
      warmupEpochs: c.warmupEpochs,
      lrSchedule: c.schedule,
    };
    const s = createSchedule(stage);
    assert.equal(c.lrs.length, c.epochs * c.steps);
    c.lrs.forEach((want, i) => {
      const got = s.lrAtStep(Math.floor(i / c.steps), i % c.steps, c.steps);
      assert.ok(Math.abs(got - want) <= 1e-12 * c.lr, `${JSON.stringify({ ...c, lrs: undefined })} step ${i}: ${got} vs PyTorch ${want}`);
    });
    // Past the warm-up, exactly the schedule without one (a stage without warm-up keeps its rates bit for bit).
    const plain = createSchedule({ ...stage, warmupEpochs: 0 });
    for (let e = c.warmupEpochs; e < c.epochs; e++) assert.equal(s.lrAtStep(e, c.steps - 1, c.steps), plain.lrAt(e));
  }
});

test('step(epoch) applies the rate to an optimizer', () => {
  const s = new MultiStepSchedule({ baseLr: 0.1, milestones: [1], gammas: [0.1] });
  const opt = { lr: 0 };
  assert.equal(s.step(1, opt), opt.lr);
  assert.ok(Math.abs(opt.lr - 0.01) < 1e-15);
});

test('bad schedules are clear errors', () => {
  const bad: [object, RegExp][] = [
    [{ baseLr: 1, milestones: [1, 2], gammas: [0.1] }, /same length, got 2 milestones and 1 gammas/],
    [{ baseLr: 1, milestones: [5, 3], gammas: [0.1, 0.1] }, /strictly increasing/],
    [{ baseLr: 1, milestones: [0], gammas: [0.1] }, /milestones\[0\] must be at least 1, got 0/],
    [{ baseLr: 1, milestones: [2], gammas: [-1] }, /gammas\[0\] must be a positive number/],
    [{ baseLr: 0, milestones: [], gammas: [] }, /baseLr must be a positive number/],
  ];
  for (const [o, msg] of bad) assert.throws(() => new MultiStepSchedule(o as never), (e: Error) => e instanceof RangeError && msg.test(e.message), JSON.stringify(o));
  // A fraction where an integer is needed is a wrong type (src/core/check.ts).
  assert.throws(() => new MultiStepSchedule({ baseLr: 1, milestones: [1.5], gammas: [0.1] }), (e: Error) => e instanceof TypeError && /milestones\[0\] must be an integer, got 1.5/.test(e.message));
  assert.throws(() => new MultiStepSchedule({ baseLr: 1, milestones: [], gammas: [] }).lrAt(-1), RangeError);
  assert.throws(() => getPreset('nope'), /unknown preset 'nope' \(known: recipe, imagenet, cifar100, fashion-mnist-cpu, fashion-mnist\)/);
});

test('epochsScale keeps the shape: rounded, distinct, >= 1', () => {
  const r = getPreset('recipe');
  assert.deepEqual(scaleStage(r.stage1, 0.1), { ...r.stage1, epochs: 8, milestones: [4, 6, 7] });
  assert.deepEqual(scaleStage(r.stage2, 0.01), { ...r.stage2, epochs: 4, milestones: [2, 3, 4] });
  assert.deepEqual(scaleStage(r.stage1, 0.001).milestones, [1, 2, 3]);
  assert.equal(scaleStage(r.stage1, 0.001).epochs, 1);
  assert.deepEqual(scaleStage(r.stage1, 2), { ...r.stage1, epochs: 150, milestones: [80, 120, 140] });
  assert.throws(() => scaleStage(r.stage1, 0), RangeError);
});

test("cosine: PyTorch's CosineAnnealingLR(T_max = epochs, eta_min = 0) stepped per epoch (golden), with warm-up on top", () => {
  const fx = loadFixture('lr-schedules');
  const cases = (JSON.parse(fx.metadata.config!) as { cosine: { lr: number; epochs: number; lrs: number[] }[] }).cosine;
  fx.tensors.forEach((t) => t.dispose());
  assert.ok(cases.length >= 3);
  for (const c of cases) {
    const s = new CosineSchedule({ baseLr: c.lr, epochs: c.epochs });
    assert.equal(c.lrs.length, c.epochs);
    c.lrs.forEach((want, e) => assert.ok(Math.abs(s.lrAt(e) - want) <= 1e-12 * c.lr, `lr ${c.lr} T_max ${c.epochs} epoch ${e}: ${s.lrAt(e)} vs PyTorch ${want}`));
    assert.equal(s.lrAt(0), c.lr);
  }
  const w = new CosineSchedule({ baseLr: 1, epochs: 4, warmupEpochs: 2 });
  const plain = new CosineSchedule({ baseLr: 1, epochs: 4 });
  // One step per epoch: T = 2, factors 1/2 then 3/4, then the cosine's own rates.
  assert.deepEqual([0, 1, 2, 3].map((e) => w.lrAtStep(e, 0, 1)), [plain.lrAt(0) / 2, plain.lrAt(1) * 0.75, plain.lrAt(2), plain.lrAt(3)]);
  assert.throws(() => new CosineSchedule({ baseLr: 1, epochs: 0 }), /epochs must be at least 1, got 0/);
  assert.throws(() => new CosineSchedule({ baseLr: -1, epochs: 3 }), /baseLr must be a positive number/);
});

test('a stage picks its schedule and optimizer by name; bad names and misplaced options are refused naming the field', () => {
  const base: StageOptions = { epochs: 5, lr: 0.1, weightDecay: 0, milestones: [2], gammas: [0.1] };
  assert.ok(createSchedule(base) instanceof MultiStepSchedule);
  const cos = createSchedule({ ...base, lrSchedule: 'cosine', warmupEpochs: 1 });
  assert.ok(cos instanceof CosineSchedule);
  assert.equal(cos.lrAt(2), (0.1 * (1 + Math.cos((Math.PI * 2) / 5))) / 2, 'T_max is the stage epochs; milestones are not used');
  const bad: [Partial<StageOptions>, RegExp][] = [
    [{ lrSchedule: 'linear' as never }, /unknown stage1\.lrSchedule 'linear': expected one of 'step', 'cosine'/],
    [{ optimizer: 'rmsprop' as never }, /unknown stage1\.optimizer 'rmsprop': expected one of 'adam', 'sgd'/],
    [{ momentum: 0.9 }, /stage1\.momentum and stage1\.nesterov are SGD's: set stage1\.optimizer to 'sgd'/],
    [{ optimizer: 'sgd', momentum: 1.5 }, /stage1\.momentum must be a number in \[0, 1\), got 1\.5/],
    [{ optimizer: 'sgd', momentum: 0, nesterov: true }, /stage1\.nesterov needs a stage1\.momentum > 0/],
    [{ optimizer: 'sgd', decoupled: true }, /stage1\.decoupled is AdamW's/],
    [{ warmupEpochs: 6 }, /stage1\.warmupEpochs must be at most the stage's epochs \(5\), got 6/],
    [{ warmupEpochs: -1 }, /stage1: warmupEpochs must be at least 0, got -1/],
    [{ warmupEpochs: 0.5 }, /stage1: warmupEpochs must be an integer, got 0\.5/],
    [{ mixup: -0.2 }, /stage1\.mixup must be a number >= 0, got -0\.2/],
    [{ mixup: Infinity }, /stage1\.mixup must be a number >= 0, got Infinity/],
    [{ mixup: '0.2' as never }, /stage1\.mixup must be a number, got/],
  ];
  for (const [extra, msg] of bad) assert.throws(() => checkStage({ ...base, ...extra }, 'stage1'), msg, JSON.stringify(extra));
  checkStage({ ...base, optimizer: 'sgd', momentum: 0.5, nesterov: true, lrSchedule: 'cosine' }, 'stage1');
  checkStage({ ...base, warmupEpochs: 5, mixup: 0 }, 'stage1');
});

test('one stage: the learning rate of every epoch is the two-stage run\'s, laid end to end', () => {
  for (const preset of Object.values(PRESETS)) {
    const s1: StageOptions = preset.stage1;
    const s2: StageOptions = { ...preset.stage2, warmupEpochs: 1, clipLatentWeights: true };
    const one = oneStageOptions(s1, s2);
    assert.equal(one.epochs, s1.epochs + s2.epochs);
    assert.equal(one.weightDecay, s1.weightDecay, "stage 1's weight decay throughout");
    assert.equal(one.clipLatentWeights, true, "stage 2's latent-weight clipping (a setting of 1-bit weights)");
    assert.equal(one.warmupEpochs, undefined, "stage 1's warm-up only");
    const sched = createSchedule(one);
    const a = createSchedule(s1);
    const b = createSchedule({ ...s2, warmupEpochs: 0 });
    for (let e = 0; e < one.epochs; e++) {
      const want = e < s1.epochs ? a.lrAt(e) : b.lrAt(e - s1.epochs);
      assert.ok(Math.abs(sched.lrAt(e) - want) <= 1e-12 * want, `${preset.name} epoch ${e}: ${sched.lrAt(e)} vs ${want}`);
    }
  }
  const main = getPreset('fashion-mnist-cpu');
  const one = oneStageOptions(main.stage1, main.stage2);
  assert.deepEqual([one.epochs, one.lr, one.milestones], [6, 2e-3, [3, 4, 5]]);
  assert.deepEqual(one.gammas.map((g) => Number(g.toPrecision(12))), [0.1, 2.5, 0.2]);
  // Milestones a stage never reaches are left out; equal rates need no junction milestone.
  const same = oneStageOptions({ epochs: 2, lr: 0.1, weightDecay: 0, milestones: [5], gammas: [0.1] }, { epochs: 3, lr: 0.1, weightDecay: 0, milestones: [1, 3], gammas: [0.5, 0.5] });
  assert.deepEqual([same.milestones, same.gammas], [[3], [0.5]]);
  // Cosine: one anneal over all the epochs from stage 1's rate.
  const cos = oneStageOptions({ ...main.stage1, lrSchedule: 'cosine' }, main.stage2);
  assert.equal(cos.lrSchedule, 'cosine');
  assert.equal(createSchedule(cos).lrAt(3), (2e-3 * (1 + Math.cos(Math.PI / 2))) / 2);
  // A step stage 1 cannot carry stage 2's cosine: refused, not silently dropped.
  assert.throws(() => oneStageOptions(main.stage1, { ...main.stage2, lrSchedule: 'cosine' }), /stage 2's cosine/);
});
