// The recipe's full run: stage 1 (real weights, binary activations) then stage 2 (1-bit weights),
// with per-epoch checkpoints that resume bit for bit on the CPU.
import fs from 'node:fs';
import path from 'node:path';

import { checkBoolean, checkDevice, checkInteger, checkNumber } from '../core/check.js';
import type { Device } from '../core/device.js';
import { cpuRngState, manualSeed, setCpuRngState } from '../core/runtime.js';
import { scope } from '../core/scope.js';
import type { Tensor } from '../core/tensor.js';
import { VERSION } from '../core/version.js';
import type { BatchSource } from '../data/batches.js';
import { DataParallel, type DataParallelOptions } from '../distributed/data-parallel.js';
import type { ProcessGroup } from '../distributed/process-group.js';
import { bnnError, isBnnError, rangeError, typeError } from '../errors.js';
import { createModel, Model } from '../nn/model.js';
import { resolveModelConfig, type ModelConfig } from '../nn/model-config.js';
import { CHECKPOINT_FORMAT, configDifferences, loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import { checkDistillSettings, checkTeacherConfig, distillIdentity, loadTeacher, teacherConfig, type DistillOptions } from './distill.js';
import { checkPrecision, cudaGraphObstacle, type Precision } from './step.js';
import { planTimeBudget, type TimeBudgetPlan } from './time-budget.js';
import { checkStage, evaluate, Trainer } from './trainer.js';
import type { EpochLog, EvalMetrics, PartialEpoch, StageOptions, TrainerCallbacks } from './types.js';

/** Options of {@link trainTwoStage}. */
export interface TwoStageConfig {
  /** The network. `binaryWeights` is managed by the stages. */
  model: ModelConfig;
  stage1: StageOptions;
  stage2: StageOptions;
  train: BatchSource;
  test?: BatchSource;
  device?: Device;
  /** Seeds LibTorch's generator before the model is built. Default 0. */
  seed?: number;
  /**
   * Folder for `checkpoint.safetensors` (every epoch), `stage1.safetensors` and `final.safetensors`.
   * Required for `resume`.
   */
  outDir?: string;
  /** Continue from `outDir/checkpoint.safetensors` if it exists. */
  resume?: boolean;
  /** Which stages to run. Default 'both'. */
  stages?: 'both' | 1 | 2;
  /**
   * The ablation of the two-stage trick: one run with 1-bit weights (and binary activations) from
   * the first step, from scratch, for stage 1's plus stage 2's epochs, with the options
   * {@link oneStageOptions} lays out from `stage1` and `stage2` (the learning rate of every epoch is
   * the one the two-stage run uses in that epoch). Its epochs are logged, checkpointed and reported
   * as stage 2 (the binary-weight stage) and it writes `final.safetensors` only; the time budget
   * and `resume` treat it as that one stage. Needs `stages: 'both'` and no `init`. Default false.
   */
  oneStage?: boolean;
  /** Weights to start stage 2 from when only stage 2 runs (a stage-1 result). */
  init?: string;
  /** Extra fields identifying the run (dataset, batch size, ...): a checkpoint must match them to resume. */
  runInfo?: Record<string, unknown>;
  callbacks?: TrainerCallbacks;
  /** Abort to stop after the current batch, saving a checkpoint that `resume` continues exactly. */
  signal?: AbortSignal;
  /**
   * Data-parallel training across this group (see {@link DataParallel}). `train` and `test` must
   * be this rank's shards (DataLoader option `shard: group.shard()`). Every rank builds the model
   * and reads a checkpoint to resume (`outDir` on a shared file system for several machines);
   * only rank 0 writes files.
   */
  group?: ProcessGroup;
  /** Options of the DataParallel made for `group`. */
  dataParallel?: DataParallelOptions;
  /** Forward-pass arithmetic of both stages and evaluation (see the Trainer option of that name). Default 'auto'. */
  precision?: Precision | 'auto';
  /** CUDA: steps between reads of the loss and accuracy (see the Trainer option of that name). Default 50. */
  syncInterval?: number;
  /** CUDA: capture each step in a CUDA graph and replay it (see the Trainer option of that name). Default false. */
  cudaGraph?: boolean;
  /**
   * Wall-clock seconds for the whole run, evaluation included: before training, a few batches
   * measure this machine's speed ({@link planTimeBudget}) and both stages' epochs and milestones
   * are scaled by one factor to fit. A resumed run keeps the plan its checkpoint was made with.
   */
  timeBudget?: number;
  /**
   * Called with the time-budget plan before training starts (not on resume), and again if stage 2
   * is shortened because stage 1's epochs took longer than measured.
   */
  onTimeBudget?(plan: TimeBudgetPlan): void | Promise<void>;
  /**
   * Knowledge distillation from a full-precision teacher in every training step (see
   * {@link DistillOptions}). A teacher to train (`{ train }`) is stage 0 of the run: it trains
   * first, in `<outDir>/teacher/` (its own `checkpoint.safetensors`, and `stage1.safetensors`: the
   * teacher's weights), from the same seed, data and precision; with `resume` it continues from its
   * checkpoint, so an interrupted run never retrains a finished teacher (it is only evaluated
   * again). Its time counts against `timeBudget`, which then sizes the student's stages to the time
   * left. The teacher is part of the run's identity: a checkpoint resumes only with the same
   * teacher (file path or training options), temperature and weight. Default: none.
   */
  distill?: DistillOptions;
}

export interface TwoStageResult {
  model: Model;
  history: EpochLog[];
  /** Test metrics of the final model (when a test source was given). */
  test?: EvalMetrics;
  stage1WeightsPath?: string;
  finalWeightsPath?: string;
  /** The schedule the time budget chose (when `timeBudget` was given and the run did not resume). */
  timeBudget?: TimeBudgetPlan;
  /**
   * With `distill`: the teacher's test metrics and, for a teacher the run trained, its weights file
   * and training seconds over all its epochs (from its history, so a resumed run counts them all).
   */
  teacher?: { test?: EvalMetrics; weightsPath?: string; seconds?: number };
}

/**
 * The single stage a one-stage run ({@link TwoStageConfig.oneStage}) trains: 1-bit weights from
 * scratch for `stage1.epochs + stage2.epochs` epochs, with stage 1's optimizer, weight decay, label
 * smoothing, mixup, warm-up and steps per epoch (stage 2's `clipLatentWeights`, a setting of binary weights,
 * when it has one), and one optimizer throughout. The learning rate is the two-stage run's, epoch
 * for epoch, as the fairest "same schedule in one stage":
 *
 * - `lrSchedule: 'step'`: stage 1's milestones and gammas, then a milestone at stage 1's last epoch
 *   whose gamma moves the rate to stage 2's base rate (stage 2's lr divided by the rate stage 1
 *   ends with; none when they are equal), then stage 2's milestones shifted by stage 1's epochs
 *   with their gammas. Milestones a stage never reaches (at or past its epochs) are left out.
 *   For the recipe (2e-3, x0.1 at 3, 4 epochs; 5e-4, x0.2 at 1, 2 epochs): 2e-3, x0.1 at 3, x2.5
 *   at 4, x0.2 at 5, 6 epochs. Only what stage 2 restarts is left out: its warm-up, its weight
 *   decay (the recipe's stage 2 has none) and its fresh optimizer state.
 * - `lrSchedule: 'cosine'`: one cosine from stage 1's rate over all the epochs (a cosine has no
 *   milestones to lay end to end; a restart at stage 1's end would put back the split the
 *   ablation removes).
 */
export function oneStageOptions(stage1: StageOptions, stage2: StageOptions): StageOptions {
  checkStage(stage1, 'stage1');
  checkStage(stage2, 'stage2');
  // A cosine stage 1 becomes one anneal over all the epochs; a step stage 1 lays both stages'
  // milestones end to end, which has no equivalent for a cosine stage 2: refuse rather than
  // silently drop stage 2's schedule.
  if ((stage1.lrSchedule ?? 'step') === 'step' && stage2.lrSchedule === 'cosine') {
    throw rangeError("one stage with a step stage 1 cannot follow stage 2's cosine schedule: give both stages the same lrSchedule");
  }
  const { clipLatentWeights: clip1, ...base } = stage1;
  const clipLatentWeights = stage2.clipLatentWeights ?? clip1;
  const epochs = stage1.epochs + stage2.epochs;
  const out: StageOptions = { ...base, epochs, ...(clipLatentWeights !== undefined ? { clipLatentWeights } : {}) };
  if (stage1.lrSchedule === 'cosine') return out;
  const milestones: number[] = [];
  const gammas: number[] = [];
  let endLr = stage1.lr;
  stage1.milestones.forEach((m, i) => {
    if (m >= stage1.epochs) return;
    milestones.push(m);
    gammas.push(stage1.gammas[i]!);
    endLr *= stage1.gammas[i]!;
  });
  if (stage2.lr !== endLr) {
    milestones.push(stage1.epochs);
    gammas.push(stage2.lr / endLr);
  }
  stage2.milestones.forEach((m, i) => {
    if (m >= stage2.epochs) return;
    milestones.push(stage1.epochs + m);
    gammas.push(stage2.gammas[i]!);
  });
  return { ...out, milestones, gammas };
}

/**
 * The recipe's two-stage training: stage 1 trains real-valued weights with binary activations; its
 * weights are saved; stage 2 starts from them with 1-bit weights and a fresh Adam with its own
 * learning rate, weight decay and schedule.
 */
export async function trainTwoStage(config: TwoStageConfig): Promise<TwoStageResult> {
  checkStage(config.stage1, 'stage1');
  checkStage(config.stage2, 'stage2');
  if (config.precision !== undefined) checkPrecision(config.precision, 'precision', true);
  if (config.syncInterval !== undefined) checkInteger(config.syncInterval, 'syncInterval', 1);
  if (config.cudaGraph !== undefined) checkBoolean(config.cudaGraph, 'cudaGraph');
  if (config.timeBudget !== undefined) checkNumber(config.timeBudget, 'timeBudget', { min: 1 });
  const stages = config.stages ?? 'both';
  if (stages !== 'both' && stages !== 1 && stages !== 2) throw rangeError(`stages must be 'both', 1 or 2, got ${JSON.stringify(stages)}`);
  const oneStage = config.oneStage === undefined ? false : checkBoolean(config.oneStage, 'oneStage');
  if (oneStage && stages !== 'both') throw rangeError(`oneStage trains both stages' epochs in one run: stages must be 'both', got ${JSON.stringify(stages)}`);
  if (oneStage && config.init !== undefined) throw rangeError('oneStage trains 1-bit weights from scratch: init (stage-1 weights for stage 2 alone) does not apply');
  // What runs: a one-stage run is the binary-weight stage alone, with the laid-out options.
  const run: 'both' | 1 | 2 = oneStage ? 2 : stages;
  if (config.resume && !config.outDir) throw rangeError('resume needs outDir (where the checkpoint lives)');
  if (stages === 2 && !config.init && !config.resume) throw rangeError('stage 2 alone needs init: the stage-1 weights to start from');
  // The network's settings too, before the output folder is made.
  resolveModelConfig({ ...config.model, binaryWeights: false });
  const device = checkDevice(config.device ?? 'cpu');
  if (config.cudaGraph) {
    // Refused before anything trains (a teacher first, say), as each Trainer would refuse it.
    const why = cudaGraphObstacle(device, 'run', {
      dataParallel: config.group !== undefined && config.group.worldSize > 1,
      distill: config.distill !== undefined,
      mixup: (config.stage1.mixup ?? 0) > 0 || (config.stage2.mixup ?? 0) > 0,
    });
    if (why !== undefined) throw rangeError(`cudaGraph needs ${why}`);
  }
  const seed = config.seed ?? 0;
  const outDir = config.outDir;
  const group = config.group;
  const writes = group === undefined || group.isMain;
  if (outDir && writes) fs.mkdirSync(outDir, { recursive: true });
  const checkpointPath = outDir ? path.join(outDir, 'checkpoint.safetensors') : undefined;
  const stage1 = config.stage1;
  const stage2 = oneStage ? oneStageOptions(config.stage1, config.stage2) : config.stage2;
  const budgetStart = performance.now();
  const resuming = config.resume === true && checkpointPath !== undefined && fs.existsSync(checkpointPath);
  const distill = config.distill === undefined ? undefined : checkDistill(config.distill, config.model);
  // Stage 0: the teacher, loaded or trained, before the student's budget is planned (its training
  // time is the budget's too) and before the student's seed is set (its own random numbers then
  // leave the student's initialisation as it would be without a teacher).
  let teacher: Model | undefined;
  let ownTeacher = false;
  let teacherResult: TwoStageResult['teacher'];
  let teacherSeconds = 0;
  if (distill) {
    const t = config.distill!.teacher;
    if (typeof t === 'string') {
      teacher = await loadTeacher(t, config.model, device);
      ownTeacher = true;
    } else if (t instanceof Model) {
      if (t.device !== device) throw rangeError(`distill.teacher is on ${t.device}, the run on ${device}`);
      teacher = t;
    } else {
      const r = await trainTwoStage({
        model: teacherConfig(config.model),
        stage1: t.train,
        stage2: t.train,
        stages: 1,
        train: config.train,
        ...(config.test ? { test: config.test } : {}),
        device,
        seed,
        ...(outDir ? { outDir: path.join(outDir, 'teacher') } : {}),
        resume: config.resume === true,
        ...(config.runInfo ? { runInfo: config.runInfo } : {}),
        ...(t.callbacks ? { callbacks: t.callbacks } : {}),
        ...(config.signal ? { signal: config.signal } : {}),
        ...(group ? { group } : {}),
        ...(config.dataParallel ? { dataParallel: config.dataParallel } : {}),
        ...(config.precision !== undefined ? { precision: config.precision } : {}),
        ...(config.syncInterval !== undefined ? { syncInterval: config.syncInterval } : {}),
        ...(config.cudaGraph ? { cudaGraph: true } : {}),
      }).catch((e: unknown) => {
        // Said of the teacher, not of the student's stage 1.
        if (e instanceof Error && isBnnError(e) && (e.code === 'BNN_INTERRUPTED' || e.code === 'BNN_NON_FINITE_LOSS')) e.message = `the teacher: ${e.message}`;
        throw e;
      });
      teacher = r.model;
      ownTeacher = true;
      teacherSeconds = (performance.now() - budgetStart) / 1000;
      teacherResult = {
        ...(r.test ? { test: r.test } : {}),
        ...(r.stage1WeightsPath ? { weightsPath: r.stage1WeightsPath } : {}),
        seconds: r.history.reduce((sum, h) => sum + h.seconds, 0),
      };
    }
    teacher.eval();
  }
  try {
    return await trainStudent(config, { stage1, stage2, oneStage, run, stages, device, seed, outDir, group, writes, checkpointPath, resuming, budgetStart, teacherSeconds }, distill && teacher ? { teacher, ...distill } : undefined, teacherResult);
  } finally {
    if (ownTeacher) teacher?.dispose();
  }
}

/** The validated distillation settings and the teacher's identity in the run's config. */
function checkDistill(d: DistillOptions, student: ModelConfig): { temperature: number; weight: number; identity: Record<string, unknown> } {
  if (typeof d !== 'object' || d === null) throw typeError('distill must be an object { teacher, temperature, weight }');
  const settings = checkDistillSettings(d.temperature, d.weight);
  const t = d.teacher;
  if (t instanceof Model) checkTeacherConfig(t.config, student, 'distill.teacher');
  else if (typeof t === 'object' && t !== null) checkStage(t.train, 'distill.teacher.train');
  else if (typeof t !== 'string' || t === '') throw typeError('distill.teacher must be a weights file path, a Model or { train: StageOptions }');
  return { ...settings, identity: distillIdentity(d, settings) };
}

interface StudentPlan {
  stage1: StageOptions;
  stage2: StageOptions;
  oneStage: boolean;
  run: 'both' | 1 | 2;
  stages: 'both' | 1 | 2;
  device: Device;
  seed: number;
  outDir: string | undefined;
  group: ProcessGroup | undefined;
  writes: boolean;
  checkpointPath: string | undefined;
  resuming: boolean;
  budgetStart: number;
  /** Seconds a teacher trained first took (0 without one). */
  teacherSeconds: number;
}

/** Stages 1 and 2 (the recipe's run), after any teacher is ready. */
async function trainStudent(
  config: TwoStageConfig,
  p: StudentPlan,
  distill: { teacher: Model; temperature: number; weight: number; identity: Record<string, unknown> } | undefined,
  teacherResult: TwoStageResult['teacher'],
): Promise<TwoStageResult> {
  let { stage1, stage2 } = p;
  const { oneStage, run, stages, device, seed, outDir, group, writes, checkpointPath, resuming, budgetStart, teacherSeconds } = p;
  let budgetPlan: TimeBudgetPlan | undefined;
  if (config.timeBudget !== undefined && !resuming) {
    // Before seeding: the measurement's throwaway model must not shift the run's random numbers.
    const plan = await planTimeBudget({
      model: config.model,
      stage1,
      stage2,
      train: config.train,
      ...(config.test ? { test: config.test } : {}),
      device,
      precision: config.precision ?? 'auto',
      // A teacher trained first has spent part of the budget (without one, the budget as given).
      budgetSeconds: teacherSeconds > 0 ? Math.max(1, config.timeBudget - teacherSeconds) : config.timeBudget,
      stages: run,
      ...(config.cudaGraph ? { cudaGraph: true } : {}),
      ...(group ? { group } : {}),
      ...(distill ? { distill: { teacher: distill.teacher, temperature: distill.temperature, weight: distill.weight } } : {}),
    });
    stage1 = plan.stage1;
    stage2 = plan.stage2;
    budgetPlan = plan;
    await config.onTimeBudget?.(plan);
  }
  const runConfig: Record<string, unknown> = {
    model: runModelConfig(config.model),
    stage1,
    stage2,
    stages,
    ...(oneStage ? { oneStage: true } : {}),
    ...(distill ? { distill: distill.identity } : {}),
    seed,
    ...(config.runInfo ?? {}),
  };
  const history: EpochLog[] = [];

  manualSeed(seed);
  const model = createModel({ ...config.model, binaryWeights: false }).to(device);
  let startStage: 1 | 2 = run === 2 ? 2 : 1;
  let startEpoch = 0;
  let partial: PartialEpoch | undefined;
  let optimizerState: Map<string, Tensor> | undefined;

  if (config.resume && checkpointPath && fs.existsSync(checkpointPath)) {
    const ckpt = await loadCheckpoint(checkpointPath);
    try {
      if (config.timeBudget !== undefined) {
        // The schedule was sized when the run started; the same budget continues it.
        const saved = ckpt.meta.runConfig as { stage1?: StageOptions; stage2?: StageOptions };
        if (saved.stage1 && saved.stage2) {
          stage1 = saved.stage1;
          stage2 = saved.stage2;
          runConfig.stage1 = stage1;
          runConfig.stage2 = stage2;
        }
      }
      // Both models resolved: a checkpoint written before a config field existed holds the field's
      // default, and a config given with or without its defaults is the same network.
      const savedRun = { ...ckpt.meta.runConfig, model: runModelConfig((ckpt.meta.runConfig.model ?? {}) as ModelConfig) };
      const diffs = configDifferences(JSON.parse(JSON.stringify(savedRun)) as Record<string, unknown>, JSON.parse(JSON.stringify(runConfig)) as Record<string, unknown>);
      if (diffs.length) {
        throw bnnError(`${checkpointPath} belongs to a different run configuration:\n  - ${diffs.join('\n  - ')}`, 'BNN_INVALID_ARGUMENT');
      }
      model.setBinaryWeights(ckpt.meta.stage === 2);
      model.loadStateDict(ckpt.model);
      setCpuRngState(ckpt.rng);
      startStage = ckpt.meta.stage;
      startEpoch = ckpt.meta.epochsDone;
      partial = ckpt.meta.partial as PartialEpoch | undefined;
      history.push(...(ckpt.meta.history as EpochLog[]));
      optimizerState = ckpt.optimizer;
    } finally {
      ckpt.model.forEach((t) => t.dispose());
      ckpt.rng.dispose();
    }
  }

  const result: TwoStageResult = { model, history, ...(budgetPlan ? { timeBudget: budgetPlan } : {}), ...(distill ? { teacher: teacherResult ?? {} } : {}) };
  let dataParallel: DataParallel | undefined;
  const runStage = async (stage: 1 | 2): Promise<void> => {
    const options = stage === 1 ? stage1 : stage2;
    const epochsDone = stage === startStage ? startEpoch : 0;
    const save = async (t: Trainer, epochsDone: number, position?: PartialEpoch): Promise<void> => {
      if (!checkpointPath || !writes) return;
      await scope(async () => {
        await saveCheckpoint(checkpointPath, {
          meta: { format: CHECKPOINT_FORMAT, version: VERSION, stage, epochsDone, runConfig, history, ...(position ? { partial: position } : {}) },
          model: model.stateDict(),
          optimizer: t.optimizer.stateDict(),
          rng: cpuRngState(),
        });
      });
    };
    const trainer = new Trainer({
      model,
      stage,
      options,
      train: config.train,
      test: config.test,
      callbacks: config.callbacks,
      ...(config.signal ? { signal: config.signal } : {}),
      ...(dataParallel ? { dataParallel } : {}),
      ...(config.precision !== undefined ? { precision: config.precision } : {}),
      ...(config.syncInterval !== undefined ? { syncInterval: config.syncInterval } : {}),
      ...(config.cudaGraph ? { cudaGraph: true } : {}),
      seed,
      ...(distill ? { distill: { teacher: distill.teacher, temperature: distill.temperature, weight: distill.weight } } : {}),
      afterEpoch: async (log, t) => {
        history.push(log);
        measured.push({ stage, seconds: log.seconds, steps: stepsOf(t.options) });
        await refit(stage, t);
        await save(t, log.epoch + 1);
      },
      onInterrupt: async (position, t) => save(t, position.epoch, position),
    });
    try {
      if (optimizerState && stage === startStage) {
        trainer.optimizer.loadStateDict(optimizerState);
        optimizerState.forEach((t) => t.dispose());
        optimizerState = undefined;
      }
      if (epochsDone < options.epochs) await trainer.fit(epochsDone, stage === startStage ? partial : undefined);
      let weightsPath: string | undefined;
      if (outDir) {
        weightsPath = path.join(outDir, stage === 1 ? 'stage1.safetensors' : 'final.safetensors');
        if (writes) await model.saveWeights(weightsPath);
        if (stage === 1) result.stage1WeightsPath = weightsPath;
        else result.finalWeightsPath = weightsPath;
      }
      await config.callbacks?.onStageEnd?.({ stage, history: history.filter((h) => h.stage === stage), ...(weightsPath ? { weightsPath } : {}) });
    } finally {
      trainer.dispose();
    }
  };

  // The run measured against its plan after every epoch: if its epochs take longer than the
  // measurement predicted (a CPU that slows under sustained load, a busier machine), the epochs
  // still to come, this stage's and stage 2's, are shortened (stepsPerEpoch) so that the run still
  // ends within the budget. Never lengthened: the plan already used the spare time. Distributed,
  // the ranks agree on the mean of their measurements, so they shorten alike.
  const measured: { stage: 1 | 2; seconds: number; steps: number }[] = [];
  const batches = config.train.batchesPerEpoch;
  const stepsOf = (s: StageOptions): number => Math.min(s.stepsPerEpoch ?? batches, batches);
  const refit = async (stage: 1 | 2, trainer: Trainer): Promise<void> => {
    const plan = budgetPlan;
    if (!plan || config.timeBudget === undefined) return;
    const perStep = stage === 1 ? plan.secondsPerStep.stage1 : plan.secondsPerStep.stage2;
    const evalEpoch = plan.epochSeconds.eval;
    const mine = measured.filter((m) => m.stage === stage);
    let actual = mine.reduce((a, m) => a + m.seconds, 0);
    const predicted = mine.reduce((a, m) => a + perStep * m.steps + evalEpoch, 0);
    let elapsed = (performance.now() - budgetStart) / 1000;
    if (group && group.worldSize > 1) [actual, elapsed] = (await group.sumNumbers([actual, elapsed])).map((v) => v / group.worldSize) as [number, number];
    const slower = Math.max(1, actual / predicted);
    const left = config.timeBudget * 0.97 - elapsed;
    // (A plan exists only when this process started the run, so its measurements are all epochs.)
    const remaining1 = stage === 1 ? stage1.epochs - mine.length : 0;
    const remaining2 = run === 1 ? 0 : stage === 1 ? stage2.epochs : stage2.epochs - mine.length;
    if (remaining1 + remaining2 <= 0) return;
    const evals = (remaining1 + remaining2 + 1) * evalEpoch * slower;
    const training = (): number => (remaining1 * plan.secondsPerStep.stage1 * stepsOf(stage1) + remaining2 * plan.secondsPerStep.stage2 * stepsOf(stage2)) * slower;
    if (evals + training() <= left) return;
    const share = Math.max(0, (left - evals) / training());
    const shorten = (s: StageOptions): StageOptions => ({ ...s, stepsPerEpoch: Math.max(1, Math.min(stepsOf(s), Math.floor(share * stepsOf(s)))) });
    if (remaining1 > 0) {
      stage1 = shorten(stage1);
      trainer.setStepsPerEpoch(stage1.stepsPerEpoch);
      runConfig.stage1 = stage1;
    }
    if (remaining2 > 0) {
      stage2 = shorten(stage2);
      if (stage === 2) trainer.setStepsPerEpoch(stage2.stepsPerEpoch);
      runConfig.stage2 = stage2;
    }
    const predictedEnd = elapsed + evals + training();
    budgetPlan = { ...plan, stage1, stage2, predictedSeconds: predictedEnd };
    result.timeBudget = budgetPlan;
    await config.onTimeBudget?.(budgetPlan);
  };

  try {
    if (group && group.worldSize > 1) {
      if (run === 2 && config.init && startEpoch === 0 && !optimizerState) await model.loadWeights(config.init);
      dataParallel = new DataParallel(model, group, config.dataParallel ?? {});
      // Every rank starts from rank 0's weights and buffers (and fails here if the ranks differ).
      await dataParallel.broadcastState();
    }
    if (startStage === 1 && run !== 2) {
      await runStage(1);
      startStage = 2;
      startEpoch = 0;
      // A stage-1 partial epoch is spent: stage 2 must not resume "its" epoch at that batch.
      partial = undefined;
    }
    if (run !== 1) {
      if (startEpoch === 0 && !optimizerState) {
        // Stage 2 starts from stage 1's saved result (--init when only stage 2 runs). Distributed,
        // every replica already holds it (and only rank 0 wrote the file).
        const init = dataParallel ? undefined : run === 2 ? config.init : result.stage1WeightsPath;
        if (init) await model.loadWeights(init);
      }
      model.setBinaryWeights(true);
      await runStage(2);
    }
    if (config.test) result.test = await evaluate(model, config.test, dataParallel?.group, config.precision ?? 'auto');
  } catch (e) {
    optimizerState?.forEach((t) => t.dispose());
    throw e;
  } finally {
    dataParallel?.dispose();
  }
  return result;
}

/** The network part of a run's identity: every field resolved, the stage's binaryWeights left out. */
function runModelConfig(model: ModelConfig): Record<string, unknown> {
  return { ...resolveModelConfig({ ...model, binaryWeights: false }), binaryWeights: undefined };
}
