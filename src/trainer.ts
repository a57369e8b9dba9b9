// The recipe's training loop: one stage (Trainer) and the two-stage run (trainTwoStage), with
// per-epoch checkpoints that resume bit for bit on the CPU.
import fs from 'node:fs';
import path from 'node:path';

import type { Batch, BatchSource } from './batches.js';
import { configDifferences, loadCheckpoint, saveCheckpoint, CHECKPOINT_FORMAT } from './checkpoint.js';
import { checkDevice, type Device } from './device.js';
import { bnnError, isBnnError, rangeError, typeError } from './errors.js';
import { DataParallel, type DataParallelOptions, type ProcessGroup } from './distributed.js';
import { createModel, type Model } from './model.js';
import type { ModelConfig } from './model-config.js';
import { native } from './native.js';
import { Adam, type NoDecayKind } from './optim.js';
import type { StageSchedule } from './presets.js';
import { manualSeed } from './runtime.js';
import { MultiStepSchedule } from './schedule.js';
import { scope } from './scope.js';
import { evalStep, trainStep } from './step.js';
import { Tensor } from './tensor.js';
import { VERSION } from './version.js';

/** One stage's settings: its schedule plus optimizer and step options. */
export interface StageOptions extends StageSchedule {
  /** AdamW instead of Adam's coupled L2. Default false (the recipe). */
  decoupled?: boolean;
  /** Parameters trained without weight decay. Default none (the recipe). */
  noDecayOn?: NoDecayKind[];
  /**
   * Clamp binary convolutions' latent weights to [-1, 1] after each step. Off by default. Worth
   * turning on in the binary-weight stage with a large learning rate: a latent weight that leaves
   * [-1, 1] gets no gradient from the straight-through estimator and can never come back.
   */
  clipLatentWeights?: boolean;
  /** Cross-entropy label smoothing. Default 0. */
  labelSmoothing?: number;
}

/** Metrics of one epoch. */
export interface EpochLog {
  stage: 1 | 2;
  /** 0-based epoch within the stage. */
  epoch: number;
  lr: number;
  trainLoss: number;
  trainAccuracy: number;
  testLoss?: number;
  testAccuracy?: number;
  /** Wall time of the epoch (training and evaluation). */
  seconds: number;
  trainImagesPerSecond: number;
}

/** Result of an evaluation pass. */
export interface EvalMetrics {
  loss: number;
  accuracy: number;
  count: number;
  /** Accuracy per true class (NaN for a class with no samples). */
  classAccuracy: number[];
}

export interface BatchEndInfo {
  stage: 1 | 2;
  epoch: number;
  batch: number;
  batches: number;
  /** Images in this batch. */
  batchSize: number;
  loss: number;
  accuracy: number;
  lr: number;
  imagesPerSecond: number;
}

/** Awaited hooks, in the style of TensorFlow.js callbacks. */
export interface TrainerCallbacks {
  onTrainBegin?(info: { stage: 1 | 2; epochs: number; startEpoch: number }): void | Promise<void>;
  onEpochBegin?(info: { stage: 1 | 2; epoch: number; epochs: number; lr: number }): void | Promise<void>;
  onBatchEnd?(info: BatchEndInfo): void | Promise<void>;
  onEpochEnd?(log: EpochLog): void | Promise<void>;
  onStageEnd?(info: { stage: 1 | 2; history: EpochLog[]; weightsPath?: string }): void | Promise<void>;
}

function checkStage(s: StageOptions, name: string): void {
  if (typeof s !== 'object' || s === null) throw typeError(`${name} must be an object`);
  if (!Number.isInteger(s.epochs) || s.epochs < 1) throw rangeError(`${name}.epochs must be a positive integer, got ${s.epochs}`);
  if (typeof s.weightDecay !== 'number' || !(s.weightDecay >= 0)) throw rangeError(`${name}.weightDecay must be >= 0, got ${s.weightDecay}`);
  if (s.labelSmoothing !== undefined && !(s.labelSmoothing >= 0 && s.labelSmoothing < 1)) {
    throw rangeError(`${name}.labelSmoothing must be in [0, 1), got ${s.labelSmoothing}`);
  }
  try {
    // Validates lr, milestones and gammas with the schedule's own rules.
    new MultiStepSchedule({ baseLr: s.lr, milestones: s.milestones, gammas: s.gammas, warmupEpochs: s.warmupEpochs ?? 0 });
  } catch (e) {
    if (e instanceof Error) e.message = `${name}: ${e.message}`;
    throw e;
  }
}

/**
 * Evaluates a model on every batch of a source (epoch 0 order), under inference mode. With a
 * process group, each rank evaluates its own shard (a DataLoader made with `shard`) and the
 * counts are summed across ranks, so every rank returns the metrics of the whole set.
 */
export async function evaluate(model: Model, source: BatchSource, group?: ProcessGroup): Promise<EvalMetrics> {
  const wasTraining = model.training;
  model.eval();
  let lossSum = 0;
  let correct = 0;
  let count = 0;
  const classCorrect = new Array<number>(source.numClasses).fill(0);
  const classCount = new Array<number>(source.numClasses).fill(0);
  try {
    for await (const batch of source.epoch(0)) {
      try {
        const r = await evalStep(model, batch.images, batch.labels);
        lossSum += r.lossSum;
        correct += r.correct;
        count += r.count;
        r.classCorrect.forEach((v, i) => (classCorrect[i] = (classCorrect[i] ?? 0) + v));
        r.classCount.forEach((v, i) => (classCount[i] = (classCount[i] ?? 0) + v));
      } finally {
        disposeBatch(batch);
      }
    }
  } finally {
    model.train(wasTraining);
  }
  if (group && group.worldSize > 1) {
    const k = source.numClasses;
    const sums = await group.sumNumbers([lossSum, correct, count, ...classCorrect, ...classCount]);
    [lossSum, correct, count] = [sums[0]!, sums[1]!, sums[2]!];
    for (let i = 0; i < k; i++) {
      classCorrect[i] = sums[3 + i]!;
      classCount[i] = sums[3 + k + i]!;
    }
  }
  return {
    loss: count ? lossSum / count : NaN,
    accuracy: count ? correct / count : NaN,
    count,
    classAccuracy: classCount.map((n, i) => (n ? classCorrect[i]! / n : NaN)),
  };
}

function disposeBatch(batch: Batch): void {
  batch.images.dispose();
  batch.labels.dispose();
}

/** Options of {@link Trainer}. */
export interface TrainerOptions {
  model: Model;
  stage: 1 | 2;
  options: StageOptions;
  train: BatchSource;
  test?: BatchSource;
  callbacks?: TrainerCallbacks;
  /** Called after every epoch with the epoch's log: where the run saves its checkpoint. */
  afterEpoch?(log: EpochLog, trainer: Trainer): Promise<void>;
  /** Stops training after the current batch (Ctrl-C): `onInterrupt` runs, then fit rejects with BNN_INTERRUPTED. */
  signal?: AbortSignal;
  /** Called when `signal` stops training mid-epoch, with where it stopped: where the run saves its checkpoint. */
  onInterrupt?(position: PartialEpoch, trainer: Trainer): Promise<void>;
  /**
   * Data-parallel training: gradients are averaged across the group, a stop (signal) on any rank
   * stops all after the same batch, and epoch metrics and evaluation cover all ranks. The train
   * and test sources must be this rank's shards. Call `broadcastState()` before `fit`.
   */
  dataParallel?: DataParallel;
}

/**
 * Where an interrupted epoch stopped, and its running totals, so a resumed run continues it
 * exactly. Data-parallel, the totals are those of all ranks (rank 0 resumes with them, the
 * others from zero, so the epoch's sums come out the same).
 */
export interface PartialEpoch {
  epoch: number;
  batchesDone: number;
  lossSum: number;
  correct: number;
  count: number;
  seconds: number;
}

/**
 * Trains one stage: Adam with the stage's weight decay, the multi-step schedule, one native call per
 * batch. Use {@link trainTwoStage} for the recipe's full run.
 */
export class Trainer {
  readonly model: Model;
  readonly stage: 1 | 2;
  readonly options: Readonly<StageOptions>;
  readonly optimizer: Adam;
  readonly schedule: MultiStepSchedule;
  readonly history: EpochLog[] = [];
  readonly #train: BatchSource;
  readonly #test: BatchSource | undefined;
  readonly #callbacks: TrainerCallbacks;
  readonly #afterEpoch: TrainerOptions['afterEpoch'];
  readonly #signal: AbortSignal | undefined;
  readonly #onInterrupt: TrainerOptions['onInterrupt'];
  readonly #dataParallel: DataParallel | undefined;

  constructor(o: TrainerOptions) {
    checkStage(o.options, `stage${o.stage}`);
    this.model = o.model;
    this.stage = o.stage;
    this.options = { ...o.options };
    this.schedule = new MultiStepSchedule({ baseLr: o.options.lr, milestones: o.options.milestones, gammas: o.options.gammas, warmupEpochs: o.options.warmupEpochs ?? 0 });
    this.optimizer = new Adam(o.model, {
      lr: o.options.lr,
      weightDecay: o.options.weightDecay,
      decoupled: o.options.decoupled ?? false,
      noDecayOn: o.options.noDecayOn ?? [],
    });
    this.#train = o.train;
    this.#test = o.test;
    this.#callbacks = o.callbacks ?? {};
    this.#afterEpoch = o.afterEpoch;
    this.#signal = o.signal;
    this.#onInterrupt = o.onInterrupt;
    if (o.dataParallel !== undefined && o.dataParallel.model !== o.model) throw rangeError('dataParallel wraps another model');
    this.#dataParallel = o.dataParallel;
  }

  #group(): ProcessGroup | undefined {
    const g = this.#dataParallel?.group;
    return g && g.worldSize > 1 ? g : undefined;
  }

  /**
   * Trains epochs [startEpoch, epochs). `resume` continues an interrupted epoch (from a checkpoint)
   * at the batch where it stopped, with its running totals.
   */
  async fit(startEpoch = 0, resume?: PartialEpoch): Promise<EpochLog[]> {
    const { epochs } = this.options;
    const cb = this.#callbacks;
    await cb.onTrainBegin?.({ stage: this.stage, epochs, startEpoch });
    const group = this.#group();
    const stepOptions = {
      labelSmoothing: this.options.labelSmoothing ?? 0,
      clipLatentWeights: this.options.clipLatentWeights ?? false,
      ...(this.#dataParallel ? { dataParallel: this.#dataParallel } : {}),
    };
    for (let epoch = startEpoch; epoch < epochs; epoch++) {
      const lr = this.schedule.step(epoch, this.optimizer);
      await cb.onEpochBegin?.({ stage: this.stage, epoch, epochs, lr });
      this.model.train();
      const partial = resume && resume.epoch === epoch ? resume : undefined;
      const started = performance.now() - (partial?.seconds ?? 0) * 1000;
      // Distributed, the saved totals cover all ranks: only rank 0 carries them on.
      const carry = partial && (!group || group.isMain) ? partial : undefined;
      let lossSum = carry?.lossSum ?? 0;
      let correct = carry?.correct ?? 0;
      let count = carry?.count ?? 0;
      let batchIndex = partial?.batchesDone ?? 0;
      for await (const batch of this.#train.epoch(epoch, { startBatch: batchIndex })) {
        let r;
        try {
          r = await trainStep(this.model, this.optimizer, batch.images, batch.labels, { ...stepOptions, stop: this.#signal?.aborted ?? false });
        } catch (e) {
          if (isBnnError(e) && e.code === 'BNN_NON_FINITE_LOSS') {
            throw Object.assign(
              bnnError(`training diverged in stage ${this.stage}, epoch ${epoch + 1}, step ${batchIndex + 1}: ${e.message}; the last checkpoint is left as it was`, 'BNN_NON_FINITE_LOSS'),
              { stage: this.stage, epoch, step: batchIndex },
            );
          }
          throw e;
        } finally {
          disposeBatch(batch);
        }
        lossSum += r.loss * r.count;
        correct += r.correct;
        count += r.count;
        batchIndex++;
        await cb.onBatchEnd?.({
          stage: this.stage,
          epoch,
          batch: batchIndex,
          batches: this.#train.batchesPerEpoch,
          batchSize: r.count,
          loss: lossSum / count,
          accuracy: correct / count,
          lr,
          imagesPerSecond: count / ((performance.now() - started) / 1000),
        });
        // Distributed, only the agreed vote counts: every rank must stop after the same batch.
        const stop = r.stop || (!group && this.#signal?.aborted === true);
        if (stop && batchIndex < this.#train.batchesPerEpoch) {
          const totals = group ? await group.sumNumbers([lossSum, correct, count]) : [lossSum, correct, count];
          const position = { epoch, batchesDone: batchIndex, lossSum: totals[0]!, correct: totals[1]!, count: totals[2]!, seconds: (performance.now() - started) / 1000 };
          await this.#onInterrupt?.(position, this);
          throw Object.assign(bnnError(`training was interrupted in stage ${this.stage}, epoch ${epoch + 1}, after batch ${batchIndex}`, 'BNN_INTERRUPTED'), {
            stage: this.stage,
            epoch,
            step: batchIndex,
          });
        }
      }
      if (group) {
        [lossSum, correct, count] = (await group.sumNumbers([lossSum, correct, count])) as [number, number, number];
        // Replicas evaluate and save the same model: rank 0's running statistics.
        await this.#dataParallel!.syncBuffers();
      }
      const trainSeconds = (performance.now() - started) / 1000;
      const log: EpochLog = {
        stage: this.stage,
        epoch,
        lr,
        trainLoss: lossSum / count,
        trainAccuracy: correct / count,
        seconds: 0,
        trainImagesPerSecond: count / trainSeconds,
      };
      if (this.#test) {
        const m = await evaluate(this.model, this.#test, group);
        log.testLoss = m.loss;
        log.testAccuracy = m.accuracy;
      }
      log.seconds = (performance.now() - started) / 1000;
      this.history.push(log);
      await this.#afterEpoch?.(log, this);
      await cb.onEpochEnd?.(log);
    }
    return this.history;
  }

  /** Releases the optimizer (the model belongs to the caller). */
  dispose(): void {
    this.optimizer.dispose();
  }
}

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
}

export interface TwoStageResult {
  model: Model;
  history: EpochLog[];
  /** Test metrics of the final model (when a test source was given). */
  test?: EvalMetrics;
  stage1WeightsPath?: string;
  finalWeightsPath?: string;
}

/**
 * The recipe's two-stage training: stage 1 trains real-valued weights with binary activations; its
 * weights are saved; stage 2 starts from them with 1-bit weights and a fresh Adam with its own
 * learning rate, weight decay and schedule.
 */
export async function trainTwoStage(config: TwoStageConfig): Promise<TwoStageResult> {
  checkStage(config.stage1, 'stage1');
  checkStage(config.stage2, 'stage2');
  const stages = config.stages ?? 'both';
  if (stages !== 'both' && stages !== 1 && stages !== 2) throw rangeError(`stages must be 'both', 1 or 2, got ${JSON.stringify(stages)}`);
  if (config.resume && !config.outDir) throw rangeError('resume needs outDir (where the checkpoint lives)');
  if (stages === 2 && !config.init && !config.resume) throw rangeError('stage 2 alone needs init: the stage-1 weights to start from');
  const device = checkDevice(config.device ?? 'cpu');
  const seed = config.seed ?? 0;
  const outDir = config.outDir;
  const group = config.group;
  const writes = group === undefined || group.isMain;
  if (outDir && writes) fs.mkdirSync(outDir, { recursive: true });
  const checkpointPath = outDir ? path.join(outDir, 'checkpoint.safetensors') : undefined;
  const runConfig: Record<string, unknown> = {
    model: { ...config.model, binaryWeights: undefined },
    stage1: config.stage1,
    stage2: config.stage2,
    stages,
    seed,
    ...(config.runInfo ?? {}),
  };
  const history: EpochLog[] = [];

  manualSeed(seed);
  const model = createModel({ ...config.model, binaryWeights: false }).to(device);
  let startStage: 1 | 2 = stages === 2 ? 2 : 1;
  let startEpoch = 0;
  let partial: PartialEpoch | undefined;
  let optimizerState: Map<string, Tensor> | undefined;

  if (config.resume && checkpointPath && fs.existsSync(checkpointPath)) {
    const ckpt = await loadCheckpoint(checkpointPath);
    try {
      const diffs = configDifferences(ckpt.meta.runConfig, JSON.parse(JSON.stringify(runConfig)) as Record<string, unknown>);
      if (diffs.length) {
        throw bnnError(`${checkpointPath} belongs to a different run configuration:\n  - ${diffs.join('\n  - ')}`, 'BNN_INVALID_ARGUMENT');
      }
      model.setBinaryWeights(ckpt.meta.stage === 2);
      model.loadStateDict(ckpt.model);
      native().setCpuRngState(ckpt.rng.handle);
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

  const result: TwoStageResult = { model, history };
  let dataParallel: DataParallel | undefined;
  const runStage = async (stage: 1 | 2): Promise<void> => {
    const options = stage === 1 ? config.stage1 : config.stage2;
    const epochsDone = stage === startStage ? startEpoch : 0;
    const save = async (t: Trainer, epochsDone: number, position?: PartialEpoch): Promise<void> => {
      if (!checkpointPath || !writes) return;
      await scope(async () => {
        await saveCheckpoint(checkpointPath, {
          meta: { format: CHECKPOINT_FORMAT, version: VERSION, stage, epochsDone, runConfig, history, ...(position ? { partial: position } : {}) },
          model: model.stateDict(),
          optimizer: t.optimizer.stateDict(),
          rng: new Tensor(native().cpuRngState()),
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
      afterEpoch: async (log, t) => {
        history.push(log);
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

  try {
    if (group && group.worldSize > 1) {
      if (stages === 2 && config.init && startEpoch === 0 && !optimizerState) await model.loadWeights(config.init);
      dataParallel = new DataParallel(model, group, config.dataParallel ?? {});
      // Every rank starts from rank 0's weights and buffers (and fails here if the ranks differ).
      await dataParallel.broadcastState();
    }
    if (startStage === 1 && stages !== 2) {
      await runStage(1);
      startStage = 2;
      startEpoch = 0;
      // A stage-1 partial epoch is spent: stage 2 must not resume "its" epoch at that batch.
      partial = undefined;
    }
    if (stages !== 1) {
      if (startEpoch === 0 && !optimizerState) {
        // Stage 2 starts from stage 1's saved result (--init when only stage 2 runs). Distributed,
        // every replica already holds it (and only rank 0 wrote the file).
        const init = dataParallel ? undefined : stages === 2 ? config.init : result.stage1WeightsPath;
        if (init) await model.loadWeights(init);
      }
      model.setBinaryWeights(true);
      await runStage(2);
    }
    if (config.test) result.test = await evaluate(model, config.test, dataParallel?.group);
  } catch (e) {
    optimizerState?.forEach((t) => t.dispose());
    throw e;
  } finally {
    dataParallel?.dispose();
  }
  return result;
}
