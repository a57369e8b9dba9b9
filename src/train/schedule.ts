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
  /** Linear warm-up over the first N epochs, step by step (see {@link warmupFactor}). Default 0. */
  warmupEpochs?: number;
}

/** Anything with a settable learning rate (an {@link Adam} or {@link SGD}). */
export interface HasLearningRate {
  lr: number;
}

/**
 * A learning rate per epoch, and per step during a warm-up: what the {@link Trainer} asks at the
 * start of every epoch (and before every step of a warm-up epoch).
 */
export interface LrSchedule {
  readonly baseLr: number;
  readonly warmupEpochs: number;
  /**
   * The scheduled rate of a 0-based epoch, before any warm-up: what every step of the epoch trains
   * at once the warm-up is over. Pure (a resumed run asks again and gets the same).
   */
  lrAt(epoch: number): number;
  /**
   * The rate of batch `step` (0-based) of `epoch` in an epoch of `steps` batches: `lrAt(epoch)`
   * times {@link warmupFactor}. Pure, so a run resumed mid-warm-up gets the same rates.
   */
  lrAtStep(epoch: number, step: number, steps: number): number;
  /** Sets the optimizer's rate for the first step of `epoch` (of `steps` batches; 1 if not given) and returns it. */
  step(epoch: number, optimizer: HasLearningRate, steps?: number): number;
}

/**
 * The linear warm-up's factor at batch `step` (0-based) of `epoch`, epochs of `steps` batches:
 * with T = warmupEpochs x steps and i = epoch x steps + step the global step, 1/T + (1 - 1/T) x i / T
 * for i < T, then 1. That is PyTorch's `LinearLR(start_factor=1/T, end_factor=1, total_iters=T)`
 * stepped after every batch: the first step trains at 1/T of the rate and step T (the first of
 * epoch `warmupEpochs`) at the full rate. It multiplies the epoch's scheduled rate, so milestones
 * and the cosine's T_max count from the stage's epoch 0, warm-up included (as LinearLR stepped per
 * batch together with MultiStepLR or CosineAnnealingLR stepped per epoch on one optimizer, not as
 * SequentialLR, which would start the main schedule after the warm-up and push its milestones
 * back). Should an epoch's batch count change during the warm-up (the time budget shortening
 * epochs), the ramp follows the fraction of the warm-up done, (epoch + step / steps) / warmupEpochs.
 */
export function warmupFactor(warmupEpochs: number, epoch: number, step: number, steps: number): number {
  checkInteger(warmupEpochs, 'warmupEpochs', 0);
  checkInteger(epoch, 'epoch', 0);
  checkInteger(steps, 'steps', 1);
  checkInteger(step, 'step', 0, steps - 1);
  if (epoch >= warmupEpochs) return 1;
  const total = warmupEpochs * steps;
  const start = 1 / total;
  return start + ((1 - start) * (epoch * steps + step)) / total;
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
    return lr;
  }

  /** The rate of one step (see {@link LrSchedule.lrAtStep}). */
  lrAtStep(epoch: number, step: number, steps: number): number {
    return stepRate(this, epoch, step, steps);
  }

  /** Sets the optimizer's rate for the first step of `epoch` and returns it. */
  step(epoch: number, optimizer: HasLearningRate, steps = 1): number {
    const lr = this.lrAtStep(epoch, 0, steps);
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
  /** Linear warm-up over the first N epochs, step by step, multiplying the cosine's rate as it does the step schedule's ({@link warmupFactor}). Default 0. */
  warmupEpochs?: number;
}

/**
 * PyTorch's `CosineAnnealingLR(T_max=epochs, eta_min=0)` stepped once per epoch, in its closed
 * form: the rate at epoch e is baseLr * (1 + cos(pi * e / epochs)) / 2, so epoch 0 trains at
 * baseLr and the last at a small positive rate (never 0: e < epochs). PyTorch's `step()` computes
 * the same curve recursively, which agrees to rounding. A warm-up multiplies it step by step
 * ({@link warmupFactor}), as it does the step schedule. The time budget keeps a stage's epoch count when it
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
    return (this.baseLr * (1 + Math.cos((Math.PI * epoch) / this.epochs))) / 2;
  }

  /** The rate of one step (see {@link LrSchedule.lrAtStep}). */
  lrAtStep(epoch: number, step: number, steps: number): number {
    return stepRate(this, epoch, step, steps);
  }

  /** Sets the optimizer's rate for the first step of `epoch` and returns it. */
  step(epoch: number, optimizer: HasLearningRate, steps = 1): number {
    const lr = this.lrAtStep(epoch, 0, steps);
    optimizer.lr = lr;
    return lr;
  }
}

/** A schedule's epoch rate times the warm-up factor; exactly `lrAt(epoch)` once the warm-up is over. */
function stepRate(s: LrSchedule, epoch: number, step: number, steps: number): number {
  const lr = s.lrAt(epoch);
  // Past the warm-up, lrAt itself: a stage without warm-up keeps its rates bit for bit (and an
  // epoch with no batches still gets its rate).
  return epoch >= s.warmupEpochs ? lr : lr * warmupFactor(s.warmupEpochs, epoch, step, steps);
}
