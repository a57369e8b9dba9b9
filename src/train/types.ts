// The vocabulary of training shared by the one-stage Trainer, the two-stage run and their callers:
// stage options, per-epoch and per-batch records, callbacks.
import type { Model } from '../nn/model.js';
import type { NoDecayKind, OptimizerKind } from './optim.js';
import type { StageSchedule } from './presets.js';
import type { LrScheduleKind } from './schedule.js';

/** One stage's settings: its schedule plus optimizer and step options. */
export interface StageOptions extends StageSchedule {
  /**
   * The optimizer: 'adam' (the recipe: `torch.optim.Adam`, coupled L2 weight decay) or 'sgd'
   * (`torch.optim.SGD` with `momentum`, dampening 0, coupled weight decay). Default 'adam'. A run
   * resumes only with the optimizer it started with.
   */
  optimizer?: OptimizerKind;
  /** SGD's momentum, in [0, 1). Default 0.9. Only with `optimizer: 'sgd'`. */
  momentum?: number;
  /** SGD's Nesterov momentum. Default false. Only with `optimizer: 'sgd'`. */
  nesterov?: boolean;
  /**
   * The learning rate per epoch: 'step' (the recipe: multiplied by `gammas` at `milestones`) or
   * 'cosine' (PyTorch's `CosineAnnealingLR` with `T_max` = `epochs` and `eta_min` 0; `milestones`
   * and `gammas` are then not used). Warm-up applies to either. Default 'step'.
   */
  lrSchedule?: LrScheduleKind;
  /** AdamW instead of Adam's coupled L2. Default false (the recipe). Adam only. */
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
  /**
   * Mixup's alpha (Zhang et al. 2018): every training step draws lambda ~ Beta(alpha, alpha) and a
   * permutation of the batch, trains on lambda x images + (1 - lambda) x the permuted images, and
   * learns lambda x CE(labels) + (1 - lambda) x CE(permuted labels), each term with the label
   * smoothing. The draws follow from the run's seed, the stage, the epoch and the step (see the
   * Trainer's `seed`). Training accuracy counts a hit on the label with the larger weight.
   * 0: off (default). The tricks' CIFAR-100 recipe uses mixup; 0.2 is a common alpha.
   */
  mixup?: number;
  /**
   * Training batches per epoch (Keras's `steps_per_epoch`): each epoch takes the first this many
   * batches of that epoch's shuffle, so successive epochs see different images. Default: the whole
   * training set. The time budget uses it to shorten epochs without moving the schedule's
   * milestones.
   */
  stepsPerEpoch?: number;
}

/** Metrics of one epoch. */
export interface EpochLog {
  /** Training stage (1: binary activations, 2: binary weights too). */
  stage: 1 | 2;
  /** 0-based epoch within the stage. */
  epoch: number;
  /** Learning rate of the epoch's first step (every step's, outside a warm-up). */
  lr: number;
  /** Mean training loss over the epoch. */
  trainLoss: number;
  /** Training accuracy in [0, 1]. */
  trainAccuracy: number;
  /** Test loss after the epoch, when there is a test source. */
  testLoss?: number;
  /** Test accuracy in [0, 1] after the epoch, when there is a test source. */
  testAccuracy?: number;
  /** Wall time of the epoch (training and evaluation), in seconds. */
  seconds: number;
  /** Training throughput of the epoch, images per second. */
  trainImagesPerSecond: number;
  /**
   * Seconds of the epoch's training spent waiting for the next batch from the data source: the
   * input pipeline's stall (PyTorch Lightning's and timm's "data time"). Near 0 when loading keeps
   * ahead. On CUDA the steps are queued without waiting for the GPU, so a wait while the GPU still
   * works through queued steps does not idle it: this is the host's view, an upper bound on the
   * GPU's idle time due to input.
   */
  dataWaitSeconds?: number;
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
  /** The learning rate this step trained at. */
  lr: number;
  imagesPerSecond: number;
}

/** What {@link TrainerCallbacks.onEpochEnd} can reach besides the epoch's figures. */
export interface EpochEndContext {
  /**
   * The model being trained, between two epochs: free for reads and async calls (e.g.
   * `Model.activationStatistics`), which must settle before the callback returns. Changing its
   * weights or mode changes the run.
   */
  model: Model;
}

/** Awaited hooks, in the style of TensorFlow.js callbacks. */
export interface TrainerCallbacks {
  onTrainBegin?(info: { stage: 1 | 2; epochs: number; startEpoch: number }): void | Promise<void>;
  onEpochBegin?(info: { stage: 1 | 2; epoch: number; epochs: number; lr: number }): void | Promise<void>;
  onBatchEnd?(info: BatchEndInfo): void | Promise<void>;
  onEpochEnd?(log: EpochLog, context: EpochEndContext): void | Promise<void>;
  onStageEnd?(info: { stage: 1 | 2; history: EpochLog[]; weightsPath?: string }): void | Promise<void>;
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
  /** The data wait so far (see {@link EpochLog.dataWaitSeconds}); absent in checkpoints of older versions. */
  dataWaitSeconds?: number;
}
