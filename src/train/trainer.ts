// One stage of training (Trainer: Adam, the step schedule, one native call per batch) and
// evaluation over a batch source.
import { checkInteger, checkNumber } from '../core/check.js';
import type { BatchSource } from '../data/batches.js';
import type { DataParallel } from '../distributed/data-parallel.js';
import type { ProcessGroup } from '../distributed/process-group.js';
import { bnnError, isBnnError, rangeError, typeError } from '../errors.js';
import type { Model } from '../nn/model.js';
import { Adam } from './optim.js';
import { MultiStepSchedule } from './schedule.js';
import { evalStep, trainStep } from './step.js';
import type { EpochLog, EvalMetrics, PartialEpoch, StageOptions, TrainerCallbacks } from './types.js';

/** @internal Checks one stage's options, naming the stage in the error. */
export function checkStage(s: StageOptions, name: string): void {
  if (typeof s !== 'object' || s === null) throw typeError(`${name} must be an object`);
  checkInteger(s.epochs, `${name}.epochs`, 1);
  checkNumber(s.weightDecay, `${name}.weightDecay`, { min: 0 });
  if (s.labelSmoothing !== undefined) checkNumber(s.labelSmoothing, `${name}.labelSmoothing`, { min: 0, below: 1 });
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
          batch.dispose();
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

