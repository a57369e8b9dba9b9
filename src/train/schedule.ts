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

/** Anything with a settable learning rate (an {@link Adam}). */
export interface HasLearningRate {
  lr: number;
}

/**
 * The recipe's step schedule: the learning rate at epoch e (0-based) is baseLr times the product of
 * the gammas whose milestone is <= e — the reference's `adjust_learning_rate`.
 */
export class MultiStepSchedule {
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
