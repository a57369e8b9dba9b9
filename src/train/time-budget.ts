// Sizing a two-stage run to a wall-clock budget: measure this machine's training and evaluation
// throughput on a few real batches with a throwaway model, then scale both stages' epochs and
// milestones by one factor (the schedule keeps its shape) so that the whole run, evaluation
// included, ends within the budget.
import { checkNumber } from '../core/check.js';
import type { Device } from '../core/device.js';
import type { Batch, BatchSource } from '../data/batches.js';
import type { ProcessGroup } from '../distributed/process-group.js';
import { createModel } from '../nn/model.js';
import type { ModelConfig } from '../nn/model-config.js';
import type { Optimizer } from './optim.js';
import { scaleStage } from './presets.js';
import { evalStep, type Precision, resolvePrecision, type StepDistillation, StepMetrics, trainStep } from './step.js';
import { createOptimizer } from './trainer.js';
import type { StageOptions } from './types.js';

/** What {@link planTimeBudget} measured and decided. */
export interface TimeBudgetPlan {
  /** The budget, in seconds. */
  budgetSeconds: number;
  /**
   * The factor the run was scaled by: above 1, both stages' epochs and milestones grew by it;
   * below 1, each epoch takes this share of the training set (`stepsPerEpoch`) and the epochs and
   * milestones stay as given (or, for budgets evaluation would mostly fill, the epochs shrink).
   */
  scale: number;
  stage1: StageOptions;
  stage2: StageOptions;
  /**
   * Measured seconds per training step in each stage and per evaluation batch; 0 for a stage the
   * run does not train ({@link TimeBudgetOptions.stages}), which is not measured.
   */
  secondsPerStep: { stage1: number; stage2: number; eval: number };
  /**
   * Predicted seconds of one planned epoch of each stage (evaluation included) and of one
   * evaluation pass; 0 for a stage the run does not train.
   */
  epochSeconds: { stage1: number; stage2: number; eval: number };
  /** The run's predicted length, evaluation included (calibration excluded). */
  predictedSeconds: number;
  /** Seconds the measurement itself took (part of the budget). */
  calibrationSeconds: number;
}

/** Options of {@link planTimeBudget}. */
export interface TimeBudgetOptions {
  model: ModelConfig;
  stage1: StageOptions;
  stage2: StageOptions;
  train: BatchSource;
  test?: BatchSource;
  device?: Device;
  precision?: Precision | 'auto';
  /** Wall-clock seconds for the whole run, evaluation included. */
  budgetSeconds: number;
  /**
   * Which stages will run, and so which are measured: stage 1 with real-valued weights, stage 2
   * with 1-bit weights (a one-stage run's single stage is stage 2, with its laid-out options as
   * `stage2`). Default 'both'.
   */
  stages?: 'both' | 1 | 2;
  /** Timed training steps per stage (after two untimed warm-up steps). Default 20. */
  steps?: number;
  /**
   * Share of the budget the plan fills, leaving the rest for what the measurement cannot see
   * (checkpoints, the system's noise). Default 0.93.
   */
  fill?: number;
  /** Data-parallel: every rank measures, and all adopt the mean (so they agree on the plan). */
  group?: ProcessGroup;
  /** Knowledge distillation: the measured steps run the teacher too, as the run's will. */
  distill?: StepDistillation;
  /** CUDA graphs: the measured steps are replays, as the run's will (their warm-up and capture untimed). */
  cudaGraph?: boolean;
}

/**
 * The shortest epoch (as a share of the training set) a plan shortens epochs to; below it, fewer
 * epochs save more evaluation time than shorter ones.
 */
const MIN_EPOCH_SHARE = 0.3;

async function timeSteps(source: BatchSource, wanted: number, step: (b: Batch) => Promise<unknown>, finish: () => Promise<void>, warmups = 2): Promise<number> {
  // Untimed warm-up batches first (allocator, kernel and primitive caches; a CUDA graph's warm-up
  // steps and capture), as many as a short epoch leaves room for.
  const warmup = Math.min(warmups, Math.max(0, source.batchesPerEpoch - 1));
  const count = Math.max(1, Math.min(wanted, source.batchesPerEpoch - warmup));
  let done = 0;
  let started = performance.now();
  for await (const batch of source.epoch(0)) {
    try {
      if (done === warmup) {
        await finish();
        started = performance.now();
      }
      await step(batch);
    } finally {
      batch.dispose();
    }
    if (++done >= warmup + count) break;
  }
  await finish();
  const timed = done - warmup;
  if (timed <= 0) return NaN;
  return (performance.now() - started) / 1000 / timed;
}

/**
 * Measures training (each stage that will run) and evaluation on a few batches of the real data
 * with a throwaway model, and returns both stages scaled to fit the budget. The run's own model
 * and random numbers are untouched (call it before seeding).
 */
export async function planTimeBudget(o: TimeBudgetOptions): Promise<TimeBudgetPlan> {
  checkNumber(o.budgetSeconds, 'timeBudget', { min: 1 });
  const fill = o.fill ?? 0.93;
  checkNumber(fill, 'fill', { min: 0.1, max: 1 });
  const steps = o.steps ?? 20;
  const stages = o.stages ?? 'both';
  const started = performance.now();
  const device = o.device ?? 'cpu';
  using model = createModel({ ...o.model, binaryWeights: false }).to(device);
  const precision = resolvePrecision(o.precision ?? 'auto', model.device);
  using metrics = model.device.startsWith('cuda') ? new StepMetrics() : undefined;
  const finish = async (): Promise<void> => {
    if (metrics) await metrics.read();
  };
  // Each stage's steps as the run will take them: with its mixup (which mixes the batch on the
  // device and takes two cross-entropies) and the teacher's forward when distilling.
  let draws = 0;
  const train = (optimizer: Optimizer, alpha: number) => (b: Batch) =>
    trainStep(model, optimizer, b.images, b.labels, {
      precision,
      ...(metrics ? { metrics } : {}),
      ...(o.distill ? { distill: o.distill } : {}),
      ...(alpha > 0 ? { mixup: { alpha, seed: draws++ } } : {}),
      ...(o.cudaGraph ? { cudaGraph: true } : {}),
    });
  // A graph's three ordinary steps and its capture come first: four more untimed steps.
  const warmups = o.cudaGraph ? 6 : 2;
  // Only the stages that will train are measured (a stage-2-only or one-stage run never takes a
  // real-valued step), each with its own optimizer, as the run builds one per stage: the measured
  // steps should cost what the run's steps will.
  const measure = async (options: StageOptions): Promise<number> => {
    using optimizer = createOptimizer(model, options);
    // Awaited here: the optimizer is disposed when this function returns.
    return await timeSteps(o.train, steps, train(optimizer, options.mixup ?? 0), finish, warmups);
  };
  model.train();
  const stage1 = stages === 2 ? 0 : await measure(o.stage1);
  let stage2 = 0;
  if (stages !== 1) {
    model.setBinaryWeights(true);
    stage2 = await measure(o.stage2);
  }
  // Evaluation is measured on the weights the run ends with (1-bit unless only stage 1 runs).
  model.eval();
  const evaluation = o.test ? await timeSteps(o.test, steps, (b) => evalStep(model, b.images, b.labels, { precision }), finish) : 0;
  let perStep = { stage1, stage2, eval: evaluation };
  if (o.group && o.group.worldSize > 1) {
    const sums = await o.group.sumNumbers([stage1, stage2, evaluation]);
    perStep = { stage1: sums[0]! / o.group.worldSize, stage2: sums[1]! / o.group.worldSize, eval: sums[2]! / o.group.worldSize };
  }
  const calibrationSeconds = (performance.now() - started) / 1000;

  const evalEpoch = o.test ? perStep.eval * o.test.batchesPerEpoch : 0;
  const stepsOf = (s: StageOptions): number => Math.min(s.stepsPerEpoch ?? Infinity, o.train.batchesPerEpoch);
  const predict = (s1: StageOptions, s2: StageOptions): number => {
    const one = stages === 2 ? 0 : s1.epochs * (perStep.stage1 * stepsOf(s1) + evalEpoch);
    const two = stages === 1 ? 0 : s2.epochs * (perStep.stage2 * stepsOf(s2) + evalEpoch);
    return one + two + evalEpoch; // the final evaluation
  };
  const available = o.budgetSeconds * fill - calibrationSeconds;
  // A budget above the preset's length adds whole epochs: the largest scale (in steps of 1%)
  // whose rounded schedule fits. Below it, the preset keeps its epochs and milestones (every
  // learning-rate drop happens, which a short run needs most) and each epoch takes a share of the
  // training set's batches (stepsPerEpoch); only when evaluation alone would eat most of the
  // budget do the epochs themselves shrink.
  let best: { scale: number; stage1: StageOptions; stage2: StageOptions } | undefined;
  if (predict(o.stage1, o.stage2) > available) {
    const e1 = stages === 2 ? 0 : o.stage1.epochs;
    const e2 = stages === 1 ? 0 : o.stage2.epochs;
    const trainSeconds = available - (e1 + e2 + 1) * evalEpoch;
    const share = trainSeconds / (e1 * perStep.stage1 * stepsOf(o.stage1) + e2 * perStep.stage2 * stepsOf(o.stage2));
    if (share >= MIN_EPOCH_SHARE) {
      const shorten = (s: StageOptions): StageOptions => ({ ...s, stepsPerEpoch: Math.max(1, Math.floor(share * stepsOf(s))) });
      best = { scale: Math.floor(share * 100) / 100, stage1: shorten(o.stage1), stage2: shorten(o.stage2) };
    }
  }
  if (!best) {
    best = { scale: 0.01, stage1: scaleStage(o.stage1, 0.01), stage2: scaleStage(o.stage2, 0.01) };
    for (let k = 1; k <= 2000; k++) {
      const scale = k / 100;
      const s1 = scaleStage(o.stage1, scale);
      const s2 = scaleStage(o.stage2, scale);
      if (predict(s1, s2) <= available) best = { scale, stage1: s1, stage2: s2 };
    }
  }
  const epochSeconds = {
    stage1: stages === 2 ? 0 : perStep.stage1 * stepsOf(best.stage1) + evalEpoch,
    stage2: stages === 1 ? 0 : perStep.stage2 * stepsOf(best.stage2) + evalEpoch,
    eval: evalEpoch,
  };
  return {
    budgetSeconds: o.budgetSeconds,
    scale: best.scale,
    stage1: { ...o.stage1, ...best.stage1 },
    stage2: { ...o.stage2, ...best.stage2 },
    secondsPerStep: perStep,
    epochSeconds,
    predictedSeconds: predict(best.stage1, best.stage2),
    calibrationSeconds,
  };
}

/** Parses a duration: '15m', '900s', '1.5h', '90' (minutes). */
export function parseDuration(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(s|m|h|min)?\s*$/i.exec(text);
  if (!m) throw new RangeError(`a duration looks like 15m, 900s or 1.5h, got ${JSON.stringify(text)}`);
  const value = Number(m[1]);
  const unit = (m[2] ?? 'm').toLowerCase();
  const seconds = value * (unit === 's' ? 1 : unit === 'h' ? 3600 : 60);
  if (!(seconds >= 1)) throw new RangeError(`a duration must be at least 1 s, got ${JSON.stringify(text)}`);
  return seconds;
}
