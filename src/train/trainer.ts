// One stage of training (Trainer: Adam or SGD, the step or cosine schedule, one native call per batch) and
// evaluation over a batch source.
import { checkBoolean, checkInteger, checkNumber, checkOneOf } from '../core/check.js';
import type { BatchSource } from '../data/batches.js';
import type { DataParallel } from '../distributed/data-parallel.js';
import type { ProcessGroup } from '../distributed/process-group.js';
import { bnnError, isBnnError, rangeError, typeError } from '../errors.js';
import { Model } from '../nn/model.js';
import { checkDistillSettings } from './distill.js';
import { Adam, OPTIMIZER_KINDS, type Optimizer, SGD } from './optim.js';
import { CosineSchedule, LR_SCHEDULE_KINDS, type LrSchedule, MultiStepSchedule } from './schedule.js';
import { mixupSeed } from './mixup.js';
import { checkPrecision, cudaGraphObstacle, evalStep, type Precision, resolvePrecision, type StepDistillation, StepMetrics, type StepResult, trainStep } from './step.js';
import type { EpochLog, EvalMetrics, PartialEpoch, StageOptions, TrainerCallbacks } from './types.js';

/** @internal Checks one stage's options, naming the stage in the error. */
export function checkStage(s: StageOptions, name: string): void {
  if (typeof s !== 'object' || s === null) throw typeError(`${name} must be an object`);
  checkInteger(s.epochs, `${name}.epochs`, 1);
  checkNumber(s.weightDecay, `${name}.weightDecay`, { min: 0 });
  if (s.stepsPerEpoch !== undefined) checkInteger(s.stepsPerEpoch, `${name}.stepsPerEpoch`, 1);
  if (s.labelSmoothing !== undefined) checkNumber(s.labelSmoothing, `${name}.labelSmoothing`, { min: 0, below: 1 });
  if (s.mixup !== undefined) checkNumber(s.mixup, `${name}.mixup`, { min: 0 });
  const kind = s.optimizer === undefined ? 'adam' : checkOneOf(s.optimizer, `${name}.optimizer`, OPTIMIZER_KINDS);
  if (s.momentum !== undefined) checkNumber(s.momentum, `${name}.momentum`, { min: 0, below: 1 });
  if (s.nesterov !== undefined) checkBoolean(s.nesterov, `${name}.nesterov`);
  if (kind !== 'sgd' && (s.momentum !== undefined || s.nesterov !== undefined)) {
    throw rangeError(`${name}.momentum and ${name}.nesterov are SGD's: set ${name}.optimizer to 'sgd'`);
  }
  if (s.nesterov === true && s.momentum === 0) throw rangeError(`${name}.nesterov needs a ${name}.momentum > 0`);
  if (kind === 'sgd' && s.decoupled === true) throw rangeError(`${name}.decoupled is AdamW's: SGD's weight decay is coupled`);
  if (s.lrSchedule !== undefined) checkOneOf(s.lrSchedule, `${name}.lrSchedule`, LR_SCHEDULE_KINDS);
  if (s.warmupEpochs !== undefined && Number.isInteger(s.warmupEpochs) && s.warmupEpochs > s.epochs) {
    throw rangeError(`${name}.warmupEpochs must be at most the stage's epochs (${s.epochs}), got ${s.warmupEpochs}`);
  }
  try {
    // Validates lr, milestones, gammas and warmupEpochs with the schedule's own rules.
    new MultiStepSchedule({ baseLr: s.lr, milestones: s.milestones, gammas: s.gammas, warmupEpochs: s.warmupEpochs ?? 0 });
  } catch (e) {
    if (e instanceof Error) e.message = `${name}: ${e.message}`;
    throw e;
  }
}

/** @internal The optimizer a stage's options ask for, over the model's named parameters. */
export function createOptimizer(model: Model, s: StageOptions): Optimizer {
  const common = { lr: s.lr, weightDecay: s.weightDecay, noDecayOn: s.noDecayOn ?? [] };
  if (s.optimizer === 'sgd') return new SGD(model, { ...common, momentum: s.momentum ?? 0.9, nesterov: s.nesterov ?? false });
  return new Adam(model, { ...common, decoupled: s.decoupled ?? false });
}

/** @internal The learning-rate schedule a stage's options ask for. */
export function createSchedule(s: StageOptions): LrSchedule {
  const warmupEpochs = s.warmupEpochs ?? 0;
  if (s.lrSchedule === 'cosine') return new CosineSchedule({ baseLr: s.lr, epochs: s.epochs, warmupEpochs });
  return new MultiStepSchedule({ baseLr: s.lr, milestones: s.milestones, gammas: s.gammas, warmupEpochs });
}

/**
 * Evaluates a model on every batch of a source (epoch 0 order), under inference mode. With a
 * process group, each rank evaluates its own shard (a DataLoader made with `shard`) and the
 * counts are summed across ranks, so every rank returns the metrics of the whole set.
 */
export async function evaluate(model: Model, source: BatchSource, group?: ProcessGroup, precision: Precision | 'auto' = 'float32'): Promise<EvalMetrics> {
  const arithmetic = resolvePrecision(precision, model.device);
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
        const r = await evalStep(model, batch.images, batch.labels, { precision: arithmetic });
        lossSum += r.lossSum;
        correct += r.correct;
        count += r.count;
        r.classCorrect.forEach((v, i) => (classCorrect[i] = (classCorrect[i] ?? 0) + v));
        r.classCount.forEach((v, i) => (classCount[i] = (classCount[i] ?? 0) + v));
      } finally {
        batch.dispose();
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
  /**
   * Forward-pass arithmetic (see {@link Precision}); evaluation uses it too. Default 'auto':
   * bfloat16 autocast on GPUs that have it, float16 with loss scaling on older GPUs, float32 on the CPU.
   */
  precision?: Precision | 'auto';
  /**
   * CUDA: steps between reads of the loss and accuracy, which stay on the GPU in between so the
   * GPU never waits for the host (see {@link StepMetrics}); the last batch of an epoch and an
   * interrupt read too. `onBatchEnd` reports the figures of the last read. A NaN loss stops the
   * run at the next read, naming the step where it happened; no update was applied from that step
   * on. Default 50 on CUDA. On the CPU, reading every step costs nothing and the default keeps
   * LibTorch's Adam or SGD (the golden tests pin them); giving syncInterval there runs the same
   * sync-free path as CUDA (fused Adam or SGD). Data-parallel training reads every step (its processes agree on
   * the loss before each update).
   */
  syncInterval?: number;
  /**
   * The seed of the stage's mixup draws (`options.mixup`): each step's lambda and permutation come
   * from ({@link mixupSeed} of this seed, the stage, the epoch and the step), so a resumed run
   * draws what the uninterrupted one did. Default 0. Data-parallel, every rank draws the same
   * lambda and the same permutation of its own part of the batch.
   */
  seed?: number;
  /**
   * Knowledge distillation from a teacher in every step (see {@link StepDistillation}); the
   * teacher's weights and BatchNorm statistics never change. Default: none.
   */
  distill?: StepDistillation;
  /**
   * CUDA: capture the training step in a CUDA graph and replay it (see the `trainStep` option of
   * that name): for small, launch-bound steps. Not with mixup, distillation or data parallelism.
   * Default false.
   */
  cudaGraph?: boolean;
}

/**
 * Trains one stage: Adam (or SGD) with the stage's weight decay, the multi-step (or cosine)
 * schedule, one native call per batch. Use {@link trainTwoStage} for the recipe's full run.
 */
export class Trainer {
  readonly model: Model;
  readonly stage: 1 | 2;
  #options: StageOptions;
  /** Adam or SGD, as the stage's `optimizer` option says. */
  readonly optimizer: Optimizer;
  /** The step schedule or the cosine one, as the stage's `lrSchedule` option says. */
  readonly schedule: LrSchedule;
  readonly history: EpochLog[] = [];
  readonly #train: BatchSource;
  readonly #test: BatchSource | undefined;
  readonly #callbacks: TrainerCallbacks;
  readonly #afterEpoch: TrainerOptions['afterEpoch'];
  readonly #signal: AbortSignal | undefined;
  readonly #onInterrupt: TrainerOptions['onInterrupt'];
  readonly #dataParallel: DataParallel | undefined;
  readonly #precision: Precision | 'auto';
  readonly #syncInterval: number | undefined;
  readonly #seed: number;
  readonly #distill: StepDistillation | undefined;
  readonly #cudaGraph: boolean;

  constructor(o: TrainerOptions) {
    checkStage(o.options, `stage${o.stage}`);
    this.#precision = o.precision ?? 'auto';
    checkPrecision(this.#precision, 'precision', true);
    if (o.syncInterval !== undefined) checkInteger(o.syncInterval, 'syncInterval', 1);
    this.#syncInterval = o.syncInterval;
    this.#seed = o.seed === undefined ? 0 : checkInteger(o.seed, 'seed', 0);
    this.model = o.model;
    this.stage = o.stage;
    this.#options = { ...o.options };
    this.schedule = createSchedule(o.options);
    this.optimizer = createOptimizer(o.model, o.options);
    this.#train = o.train;
    this.#test = o.test;
    this.#callbacks = o.callbacks ?? {};
    this.#afterEpoch = o.afterEpoch;
    this.#signal = o.signal;
    this.#onInterrupt = o.onInterrupt;
    if (o.dataParallel !== undefined && o.dataParallel.model !== o.model) throw rangeError('dataParallel wraps another model');
    this.#dataParallel = o.dataParallel;
    if (o.distill !== undefined) {
      if (typeof o.distill !== 'object' || o.distill === null || !(o.distill.teacher instanceof Model)) throw typeError('distill.teacher must be a Model');
      if (o.distill.teacher === o.model) throw rangeError('distill.teacher must be another model than the student');
      this.#distill = { teacher: o.distill.teacher, ...checkDistillSettings(o.distill.temperature, o.distill.weight) };
    }
    if (o.cudaGraph !== undefined && typeof o.cudaGraph !== 'boolean') throw typeError(`cudaGraph must be a boolean, got ${JSON.stringify(o.cudaGraph)}`);
    this.#cudaGraph = o.cudaGraph === true;
    if (this.#cudaGraph) {
      const why = cudaGraphObstacle(o.model.device, 'model', { dataParallel: o.dataParallel !== undefined, distill: this.#distill !== undefined, mixup: (o.options.mixup ?? 0) > 0 });
      if (why !== undefined) throw rangeError(`cudaGraph needs ${why}`);
    }
  }

  /** The stage's options (a copy of those given, with any later {@link setStepsPerEpoch}). */
  get options(): Readonly<StageOptions> {
    return this.#options;
  }

  /**
   * Training batches per epoch from the next epoch on (undefined: the whole training set). The
   * time budget shortens the epochs still to come with it when a run falls behind its plan.
   */
  setStepsPerEpoch(steps: number | undefined): void {
    if (steps !== undefined) checkInteger(steps, 'stepsPerEpoch', 1);
    const { stepsPerEpoch: _, ...rest } = this.#options;
    this.#options = steps === undefined ? rest : { ...rest, stepsPerEpoch: steps };
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
      ...(this.#distill ? { distill: this.#distill } : {}),
      ...(this.#cudaGraph ? { cudaGraph: true } : {}),
    };
    const precision = resolvePrecision(this.#precision, this.model.device);
    const mixup = this.options.mixup ?? 0;
    // Sync-free steps: CUDA, one process (the data-parallel hooks agree on the loss every step).
    const onDevice = (this.model.device.startsWith('cuda') || this.#syncInterval !== undefined) && this.#dataParallel === undefined;
    const syncInterval = this.#syncInterval ?? 50;
    if (precision === 'float16' && !onDevice) throw rangeError("precision 'float16' is not available with data parallelism yet (use 'bfloat16' or 'float32')");
    using metrics = onDevice ? new StepMetrics() : undefined;
    for (let epoch = startEpoch; epoch < epochs; epoch++) {
      const batches = Math.min(this.#options.stepsPerEpoch ?? Infinity, this.#train.batchesPerEpoch);
      // The rate of the epoch's first step; a warm-up epoch sets each step's below.
      const lr = this.schedule.step(epoch, this.optimizer, Math.max(1, batches));
      const warming = epoch < this.schedule.warmupEpochs;
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
      // Time between asking the source for a batch and having it, summed (the input pipeline's stall).
      const carriedWait = partial?.dataWaitSeconds;
      let dataWait = typeof carriedWait === 'number' && carriedWait >= 0 && Number.isFinite(carriedWait) ? carriedWait * 1000 : 0;
      let asked = performance.now();
      const diverged = (step: number, why: string) =>
        Object.assign(
          bnnError(`training diverged in stage ${this.stage}, epoch ${epoch + 1}, step ${step + 1}: ${why}; the last checkpoint is left as it was`, 'BNN_NON_FINITE_LOSS'),
          { stage: this.stage, epoch, step },
        );
      // Device-side totals: the batch index where they were last read, and images queued since.
      let readAt = batchIndex;
      let pending = 0;
      const drain = async (): Promise<void> => {
        if (!metrics || batchIndex === readAt) return;
        const t = await metrics.read();
        metrics.reset();
        if (t.firstBadLabel >= 0) {
          throw bnnError(`stage ${this.stage}, epoch ${epoch + 1}, step ${readAt + t.firstBadLabel + 1}: a label is outside [0, ${this.#train.numClasses - 1}]; no update was applied from that step on`, 'BNN_INVALID_ARGUMENT');
        }
        if (t.firstNonFinite >= 0) throw diverged(readAt + t.firstNonFinite, `the loss is ${t.nonFiniteLoss}`);
        lossSum += t.lossSum;
        correct += t.correct;
        count += t.count;
        pending = 0;
        readAt = batchIndex;
      };
      for await (const batch of this.#train.epoch(epoch, { startBatch: batchIndex })) {
        dataWait += performance.now() - asked;
        let r: StepResult;
        // A resume may start past a since-shortened epoch (stepsPerEpoch): its steps take the last step's rate.
        const stepLr = warming ? this.schedule.lrAtStep(epoch, Math.min(batchIndex, batches - 1), batches) : lr;
        if (warming) this.optimizer.lr = stepLr;
        try {
          r = await trainStep(this.model, this.optimizer, batch.images, batch.labels, {
            ...stepOptions,
            stop: this.#signal?.aborted ?? false,
            precision,
            ...(metrics ? { metrics } : {}),
            ...(mixup > 0 ? { mixup: { alpha: mixup, seed: mixupSeed(this.#seed, this.stage, epoch, batchIndex) } } : {}),
          });
        } catch (e) {
          if (isBnnError(e) && e.code === 'BNN_NON_FINITE_LOSS') throw diverged(batchIndex, e.message);
          throw e;
        } finally {
          batch.dispose();
        }
        batchIndex++;
        if (metrics) {
          pending += r.count;
          if (batchIndex - readAt >= syncInterval || batchIndex >= batches) await drain();
        } else {
          lossSum += r.loss * r.count;
          correct += r.correct;
          count += r.count;
        }
        await cb.onBatchEnd?.({
          stage: this.stage,
          epoch,
          batch: batchIndex,
          batches,
          batchSize: r.count,
          loss: count ? lossSum / count : NaN,
          accuracy: count ? correct / count : NaN,
          lr: stepLr,
          imagesPerSecond: (count + pending) / ((performance.now() - started) / 1000),
        });
        // Distributed, only the agreed vote counts: every rank must stop after the same batch.
        const stop = r.stop || (!group && this.#signal?.aborted === true);
        if (stop && batchIndex < batches) {
          await drain();
          const totals = group ? await group.sumNumbers([lossSum, correct, count]) : [lossSum, correct, count];
          const position = { epoch, batchesDone: batchIndex, lossSum: totals[0]!, correct: totals[1]!, count: totals[2]!, seconds: (performance.now() - started) / 1000, dataWaitSeconds: dataWait / 1000 };
          await this.#onInterrupt?.(position, this);
          throw Object.assign(bnnError(`training was interrupted in stage ${this.stage}, epoch ${epoch + 1}, after batch ${batchIndex}`, 'BNN_INTERRUPTED'), {
            stage: this.stage,
            epoch,
            step: batchIndex,
          });
        }
        if (batchIndex >= batches) break;
        asked = performance.now();
      }
      await drain();
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
        dataWaitSeconds: dataWait / 1000,
      };
      if (this.#test) {
        const m = await evaluate(this.model, this.#test, group, precision);
        log.testLoss = m.loss;
        log.testAccuracy = m.accuracy;
      }
      log.seconds = (performance.now() - started) / 1000;
      this.history.push(log);
      await this.#afterEpoch?.(log, this);
      await cb.onEpochEnd?.(log, { model: this.model });
    }
    return this.history;
  }

  /** Releases the optimizer (the model belongs to the caller). */
  dispose(): void {
    this.optimizer.dispose();
  }
}

