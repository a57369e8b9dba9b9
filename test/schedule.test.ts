import assert from 'node:assert/strict';
import { test } from 'node:test';

import { getPreset, MultiStepSchedule, PRESETS, scaleStage, type StageSchedule } from '../src/index.js';

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

test('warm-up ramps linearly, then the steps apply', () => {
  const s = new MultiStepSchedule({ baseLr: 1, milestones: [3], gammas: [0.5], warmupEpochs: 2 });
  assert.deepEqual([0, 1, 2, 3].map((e) => s.lrAt(e)), [0.5, 1, 1, 0.5]);
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
  assert.throws(() => getPreset('nope'), /unknown preset 'nope' \(known: recipe, imagenet, cifar100, fashion-mnist-cpu\)/);
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
