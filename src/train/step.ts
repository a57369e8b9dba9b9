import { native } from '../binding/native.js';
import type { StepMetricsHandle } from '../binding/train.js';
import { NativeResource } from '../core/handle.js';
import type { DataParallel } from '../distributed/data-parallel.js';
import type { Device } from '../core/device.js';
import { Model } from '../nn/model.js';
import type { Optimizer } from './optim.js';
import { rangeError, typeError } from '../errors.js';
import { checkDistillSettings } from './distill.js';
import { requireTensor, type Tensor } from '../core/tensor.js';
import { checkStepMixup, type StepMixup } from './mixup.js';

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

/**
 * Arithmetic of the forward pass. `'bfloat16'` and `'float16'` autocast convolutions and the
 * classifier on CUDA (as `torch.autocast`); weights, optimizer state, BatchNorm statistics and the
 * loss stay float32, so checkpoints are the same as a float32 run's. `'float16'` adds dynamic loss
 * scaling (as `torch.amp.GradScaler`) and needs {@link StepMetrics}. `'auto'` (where accepted) is
 * bfloat16 on GPUs that have it (compute capability 8.0+), float16 on older GPUs, float32 on the CPU.
 */
export type Precision = 'float32' | 'bfloat16' | 'float16';

const PRECISIONS: readonly string[] = ['float32', 'bfloat16', 'float16'];

/** @internal Checks a precision name ('auto' allowed where `allowAuto`). */
export function checkPrecision(p: unknown, name: string, allowAuto = false): asserts p is Precision | 'auto' {
  if (typeof p !== 'string') throw new TypeError(`${name} must be a string, got ${typeof p}`);
  if (!PRECISIONS.includes(p) && !(allowAuto && p === 'auto')) {
    throw rangeError(`${name} must be ${allowAuto ? "'auto', " : ''}'float32', 'bfloat16' or 'float16', got ${JSON.stringify(p)}`);
  }
}

/** Resolves `'auto'` for a model's device (see {@link Precision}). */
export function resolvePrecision(precision: Precision | 'auto', device: Device): Precision {
  checkPrecision(precision, 'precision', true);
  if (precision !== 'auto') return precision;
  if (!device.startsWith('cuda')) return 'float32';
  const index = device === 'cuda' ? 0 : Number(device.slice(5));
  return native().cudaBf16Supported(index) ? 'bfloat16' : 'float16';
}

/** Totals of the steps a {@link StepMetrics} has accumulated since its last reset. */
export interface StepTotals {
  /** Sum over steps of (mean loss of the batch x batch size); steps with a non-finite loss add 0. */
  lossSum: number;
  correct: number;
  count: number;
  steps: number;
  /** Index (from 0, since the reset) of the first step whose loss was NaN or infinite, or -1. */
  firstNonFinite: number;
  /** That step's loss. */
  nonFiniteLoss: number;
  /** Index of the first step with a label outside [0, classes), or -1. */
  firstBadLabel: number;
  /** float16: updates skipped because the scaled gradients overflowed (normal in moderation). */
  skipped: number;
}

/**
 * Loss, accuracy and the divergence check of many training steps, kept on the GPU so that a step
 * never waits for it: pass it as {@link TrainStepOptions.metrics} and {@link StepMetrics.read} once
 * per logging interval, the one point where the host waits for the device. A NaN or infinite loss
 * (or a label out of range) raises a flag on the device that turns this and every later update
 * into a no-op, so the weights stay as they were before that step until the host reads the flag.
 */
export class StepMetrics extends NativeResource<StepMetricsHandle> {
  constructor() {
    super('StepMetrics', new (native().StepMetricsHandle)());
  }

  /** Waits for the queued steps (off the main thread) and returns their totals. */
  read(): Promise<StepTotals> {
    return this.handle.read();
  }

  /** Starts the totals afresh (step indices restart at 0). */
  reset(): void {
    this.handle.reset();
  }
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
  /** Forward-pass arithmetic (see {@link Precision}). Default 'float32'. */
  precision?: Precision;
  /**
   * Accumulate loss, accuracy and the divergence check on the device instead of returning them,
   * so the step never synchronises with the host; the result's `loss` is then NaN and `correct`
   * -1. Meant for CUDA (the update is then the fused Adam or SGD, which skips on the device flag); it
   * works on the CPU as well. Needed by 'float16'. Not with `dataParallel`.
   */
  metrics?: StepMetrics;
  /**
   * Mixup for this batch (see {@link drawMixup}): `{ alpha, seed }` draws lambda and the
   * permutation natively, `{ lambda, index }` gives them. The model then sees lambda x images +
   * (1 - lambda) x images[index] and the loss is {@link mixupCrossEntropy} (with `labelSmoothing`);
   * `correct` counts hits on the label with the larger weight (labels where lambda >= 0.5, else
   * labels[index]). Default: none.
   */
  mixup?: StepMixup;
  /**
   * Knowledge distillation: the step also runs `teacher` on the batch, in eval mode (the step puts
   * it there) and without autograd, and the loss becomes `(1 - weight) * CE + weight * T² * KL`
   * (see {@link distillationLoss}). The teacher must have the student's classes and device.
   * Default: none (the cross-entropy alone).
   */
  distill?: StepDistillation;
  /**
   * Capture the step in a CUDA graph and replay it (CUDA, with `metrics`; not with `mixup`,
   * `distill` or `dataParallel`). The first steps of each setting run as usual (three: cuDNN's
   * algorithm search and the optimizer's state are made), the next is captured, and from then on
   * each step is one graph launch after copying the batch into the graph's inputs: the CPU no
   * longer launches every kernel, which is most of a small step's time. A new batch shape, learning
   * rate, precision, label smoothing, clipping, model mode or stage, or fusion setting gets its own
   * graph (a few are kept); loading the optimizer's state clears them. The graphs live with the
   * optimizer, and each holds the tensors it writes. After a replayed step the parameters have no
   * `.grad` (the gradients live in the graph's own buffers). A capture that fails is reported and
   * no further one is tried with that optimizer. Default false.
   */
  cudaGraph?: boolean;
}

/**
 * @internal Why a run cannot capture its steps (`cudaGraph`), or undefined when it can: the
 * Trainer and trainTwoStage refuse before anything trains, with this reason. `where` names what
 * is on `device` ("a CUDA model (this one ...)" or "a CUDA device (this run ...)").
 */
export function cudaGraphObstacle(device: string, where: 'model' | 'run', o: { dataParallel: boolean; distill: boolean; mixup: boolean }): string | undefined {
  if (!device.startsWith('cuda')) return where === 'model' ? `a CUDA model (this one is on ${device})` : `a CUDA device (this run is on ${device})`;
  if (o.dataParallel) return 'one process (not data parallelism)';
  if (o.distill) return 'no distillation';
  if (o.mixup) return 'no mixup';
  return undefined;
}

/** The teacher and settings of a distilling {@link trainStep}. */
export interface StepDistillation {
  /** A model on the student's device with its classes, normally its full-precision twin; never updated. */
  teacher: Model;
  /** Softening temperature T > 0. Default 1. */
  temperature?: number;
  /** Weight w in [0, 1] of the distillation term. Default 0.5. */
  weight?: number;
}

/**
 * One training step in one native call on a worker thread: forward, cross-entropy (or the
 * distillation loss, with `distill`), backward and the optimizer update. A NaN or infinite loss rejects with code BNN_NON_FINITE_LOSS before the
 * update, leaving the weights unchanged (on every rank, when data-parallel).
 */
export async function trainStep(model: Model, optimizer: Optimizer, images: Tensor, labels: Tensor, options: TrainStepOptions = {}): Promise<StepResult> {
  const labelSmoothing = options.labelSmoothing ?? 0;
  if (!(labelSmoothing >= 0 && labelSmoothing < 1)) throw rangeError(`labelSmoothing must be in [0, 1), got ${labelSmoothing}`);
  const x = requireTensor(images, 'images').handle;
  const y = requireTensor(labels, 'labels').handle;
  const dp = options.dataParallel;
  if (dp !== undefined && dp.model !== model) throw rangeError('dataParallel wraps another model');
  const dataParallel = dp?.handle ?? null;
  const precision = options.precision ?? 'float32';
  checkPrecision(precision, 'precision');
  if (options.metrics !== undefined && !(options.metrics instanceof StepMetrics)) throw new TypeError('metrics must be a StepMetrics');
  const metrics = options.metrics?.handle ?? null;
  const m = options.mixup === undefined ? null : checkStepMixup(options.mixup);
  const mixup = m === null ? null : 'index' in m ? { lambda: m.lambda, index: m.index.handle } : m;
  if (options.cudaGraph !== undefined && typeof options.cudaGraph !== 'boolean') throw typeError(`cudaGraph must be a boolean, got ${JSON.stringify(options.cudaGraph)}`);
  const common = {
    labelSmoothing,
    clipLatentWeights: options.clipLatentWeights ?? false,
    stop: options.stop ?? false,
    dataParallel,
    precision,
    metrics,
    mixup,
    cudaGraph: options.cudaGraph ?? false,
  };
  const d = options.distill;
  // The model and the optimizer are both in use on the worker thread until the step settles.
  if (d === undefined) return model.exclusive((h) => optimizer.exclusive((o) => native().trainStep(h, o, x, y, common)));
  if (typeof d !== 'object' || d === null || !(d.teacher instanceof Model)) throw typeError('distill.teacher must be a Model');
  if (d.teacher === model) throw rangeError('distill.teacher must be another model than the student');
  const { temperature, weight } = checkDistillSettings(d.temperature, d.weight);
  // Both models are in use on the worker thread: neither may be touched until the step settles.
  return model.exclusive((h) =>
    d.teacher.exclusive((teacher) => optimizer.exclusive((o) => native().trainStep(h, o, x, y, { ...common, distill: { teacher, temperature, weight } }))),
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
export async function evalStep(model: Model, images: Tensor, labels: Tensor, options: { precision?: Precision } = {}): Promise<EvalStepResult> {
  const x = requireTensor(images, 'images').handle;
  const y = requireTensor(labels, 'labels').handle;
  const precision = options.precision ?? 'float32';
  checkPrecision(precision, 'precision');
  return model.exclusive((h) => native().evalStep(h, x, y, { precision }));
}
