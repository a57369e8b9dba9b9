import { native } from '../binding/native.js';
import type { DataParallel } from '../distributed/data-parallel.js';
import type { Model } from '../nn/model.js';
import type { Adam } from './optim.js';
import { rangeError } from '../errors.js';
import { requireTensor, type Tensor } from '../core/tensor.js';

/** Result of one training step. */
export interface StepResult {
  /** Mean loss of the batch. */
  loss: number;
  /** Top-1 hits in the batch. */
  correct: number;
  /** Batch size. */
  count: number;
  /** Some process voted `stop` in this step (always this process's vote when not distributed). */
  stop: boolean;
}

/** Options of {@link trainStep}. */
export interface TrainStepOptions {
  /** Cross-entropy label smoothing in [0, 1). Default 0. */
  labelSmoothing?: number;
  /** Clamp binary convolutions' latent weights to [-1, 1] after the update. Default false. */
  clipLatentWeights?: boolean;
  /**
   * Average gradients across a process group before the update (and share BatchNorm running
   * statistics). The returned `loss` is then the mean over all processes.
   */
  dataParallel?: DataParallel;
  /**
   * This process's vote to stop after this step. Distributed, the votes travel with the gradients
   * and `stop` in the result is true on every rank when any voted, so all stop at the same step.
   */
  stop?: boolean;
}

/**
 * One training step in one native call on a worker thread: forward, cross-entropy, backward and
 * the optimizer update. A NaN or infinite loss rejects with code BNN_NON_FINITE_LOSS before the
 * update, leaving the weights unchanged (on every rank, when data-parallel).
 */
export async function trainStep(model: Model, optimizer: Adam, images: Tensor, labels: Tensor, options: TrainStepOptions = {}): Promise<StepResult> {
  const labelSmoothing = options.labelSmoothing ?? 0;
  if (!(labelSmoothing >= 0 && labelSmoothing < 1)) throw rangeError(`labelSmoothing must be in [0, 1), got ${labelSmoothing}`);
  const x = requireTensor(images, 'images').handle;
  const y = requireTensor(labels, 'labels').handle;
  const dp = options.dataParallel;
  if (dp !== undefined && dp.model !== model) throw rangeError('dataParallel wraps another model');
  const dataParallel = dp?.handle ?? null;
  return model.exclusive((h) =>
    native().trainStep(h, optimizer.handle, x, y, { labelSmoothing, clipLatentWeights: options.clipLatentWeights ?? false, stop: options.stop ?? false, dataParallel }),
  );
}

/** Result of one evaluation batch. */
export interface EvalStepResult {
  /** Summed (not mean) loss, so batches add up. */
  lossSum: number;
  correct: number;
  count: number;
  classCorrect: number[];
  classCount: number[];
}

/** Forward and loss under inference mode, on a worker thread, in the model's current mode. */
export async function evalStep(model: Model, images: Tensor, labels: Tensor): Promise<EvalStepResult> {
  const x = requireTensor(images, 'images').handle;
  const y = requireTensor(labels, 'labels').handle;
  return model.exclusive((h) => native().evalStep(h, x, y));
}
