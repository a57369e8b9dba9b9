import { checkInteger, checkNumber } from '../core/check.js';
import { rangeError, typeError } from '../errors.js';

/** Options of {@link MultiStepSchedule}. */
export interface MultiStepScheduleOptions {
  /** Learning rate before the first milestone. */
  baseLr: number;
  /** Epochs (0-based) at which the rate is multiplied by the matching gamma; strictly increasing. */
  milestones: number[];
  /** One factor per milestone, e.g. [0.1, 0.1, 0.1]. */
  gammas: number[];
  /** Linear warm-up over the first N epochs: epoch e < N uses baseLr * (e + 1) / N. Default 0. */
  warmupEpochs?: number;
}

/** Anything with a settable learning rate (an {@link Adam} or {@link SGD}). */
export interface HasLearningRate {
  lr: number;
}

/** A learning rate per epoch: what the {@link Trainer} asks at the start of every epoch. */
export interface LrSchedule {
  readonly baseLr: number;
  readonly warmupEpochs: number;
  /** The learning rate for a 0-based epoch. Pure (a resumed run asks again and gets the same). */
  lrAt(epoch: number): number;
  /** Sets the optimizer's rate for `epoch` and returns it. */
  step(epoch: number, optimizer: HasLearningRate): number;
}

/** The per-epoch learning-rate schedules a stage can use: 'step' (the recipe's milestones) or 'cosine'. */
export type LrScheduleKind = 'step' | 'cosine';

/** The schedule kinds, for validation and CLI choices. */
export const LR_SCHEDULE_KINDS: readonly LrScheduleKind[] = Object.freeze(['step', 'cosine']);

/**
 * The recipe's step schedule: the learning rate at epoch e (0-based) is baseLr times the product of
 * the gammas whose milestone is <= e — the reference's `adjust_learning_rate`.
 */
export class MultiStepSchedule implements LrSchedule {
  readonly baseLr: number;
  readonly milestones: readonly number[];
  readonly gammas: readonly number[];
  readonly warmupEpochs: number;

  constructor(options: MultiStepScheduleOptions) {
    if (typeof options !== 'object' || options === null) throw typeError('schedule options must be an object');
    const { baseLr, milestones, gammas, warmupEpochs = 0 } = options;
    checkNumber(baseLr, 'baseLr', { above: 0 });
    if (!Array.isArray(milestones) || !Array.isArray(gammas)) throw typeError('milestones and gammas must be arrays of numbers');
    if (milestones.length !== gammas.length) {
      throw rangeError(`milestones and gammas must have the same length, got ${milestones.length} milestones and ${gammas.length} gammas`);
    }
    milestones.forEach((m, i) => {
      checkInteger(m, `milestones[${i}]`, 1);
      if (i > 0 && m <= milestones[i - 1]!) throw rangeError(`milestones must be strictly increasing, got ${milestones.join(', ')}`);
    });
    gammas.forEach((g, i) => {
      checkNumber(g, `gammas[${i}]`, { above: 0 });
    });
    checkInteger(warmupEpochs, 'warmupEpochs', 0);
    this.baseLr = baseLr;
    this.milestones = Object.freeze([...milestones]);
    this.gammas = Object.freeze([...gammas]);
    this.warmupEpochs = warmupEpochs;
  }

  /** The learning rate for a 0-based epoch. Pure. */
  lrAt(epoch: number): number {
    checkInteger(epoch, 'epoch', 0);
    let lr = this.baseLr;
    for (let i = 0; i < this.milestones.length; i++) if (epoch >= this.milestones[i]!) lr *= this.gammas[i]!;
    if (epoch < this.warmupEpochs) lr *= (epoch + 1) / this.warmupEpochs;
    return lr;
  }

  /** Sets the optimizer's rate for `epoch` and returns it. */
  step(epoch: number, optimizer: HasLearningRate): number {
    const lr = this.lrAt(epoch);
    optimizer.lr = lr;
    return lr;
  }
}

/** Options of {@link CosineSchedule}. */
export interface CosineScheduleOptions {
  /** Learning rate at epoch 0. */
  baseLr: number;
  /** Epochs of the half cosine (PyTorch's `T_max`): the stage's epochs. */
  epochs: number;
  /** Linear warm-up over the first N epochs, multiplying the cosine's rate as it does the step schedule's. Default 0. */
  warmupEpochs?: number;
}

/**
 * PyTorch's `CosineAnnealingLR(T_max=epochs, eta_min=0)` stepped once per epoch, in its closed
 * form: the rate at epoch e is baseLr * (1 + cos(pi * e / epochs)) / 2, so epoch 0 trains at
 * baseLr and the last at a small positive rate (never 0: e < epochs). PyTorch's `step()` computes
 * the same curve recursively, which agrees to rounding. Warm-up multiplies it by (e + 1) / N for
 * e < N, as it does the step schedule. The time budget keeps a stage's epoch count when it
 * shortens epochs (stepsPerEpoch), so the curve is unchanged; when it scales the epochs, T_max
 * follows them.
 */
export class CosineSchedule implements LrSchedule {
  readonly baseLr: number;
  readonly epochs: number;
  readonly warmupEpochs: number;

  constructor(options: CosineScheduleOptions) {
    if (typeof options !== 'object' || options === null) throw typeError('schedule options must be an object');
    const { baseLr, epochs, warmupEpochs = 0 } = options;
    checkNumber(baseLr, 'baseLr', { above: 0 });
    checkInteger(epochs, 'epochs', 1);
    checkInteger(warmupEpochs, 'warmupEpochs', 0);
    this.baseLr = baseLr;
    this.epochs = epochs;
    this.warmupEpochs = warmupEpochs;
  }

  /** The learning rate for a 0-based epoch. Pure. */
  lrAt(epoch: number): number {
    checkInteger(epoch, 'epoch', 0);
    let lr = (this.baseLr * (1 + Math.cos((Math.PI * epoch) / this.epochs))) / 2;
    if (epoch < this.warmupEpochs) lr *= (epoch + 1) / this.warmupEpochs;
    return lr;
  }

  /** Sets the optimizer's rate for `epoch` and returns it. */
  step(epoch: number, optimizer: HasLearningRate): number {
    const lr = this.lrAt(epoch);
    optimizer.lr = lr;
    return lr;
  }
}
