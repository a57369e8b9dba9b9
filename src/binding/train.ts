// The raw binding of native/addon/train.cpp: the optimizer and the one-call training and evaluation steps. Only src/ imports it.
import type { DataParallelHandle } from './distributed.js';
import type { ModelHandle } from './model.js';
import type { TensorHandle } from './tensor.js';

/** A native Adam/AdamW or SGD optimizer bound to one model. */
export interface OptimizerHandle {
  step(): void;
  zeroGrad(): void;
  getLr(): number;
  setLr(lr: number): void;
  noDecayNames(): string[];
  state(): [string, TensorHandle][];
  loadState(entries: [string, TensorHandle][]): void;
  dispose(): void;
}

/** Options of either kind; the other kind's fields are absent. */
export interface NativeOptimizerOptions {
  kind: 'adam' | 'sgd';
  lr: number;
  weightDecay: number;
  noDecayOn: string[];
  /** Adam */
  betas?: [number, number];
  eps?: number;
  decoupled?: boolean;
  /** SGD */
  momentum?: number;
  nesterov?: boolean;
}

export interface NativeStepResult {
  loss: number;
  correct: number;
  count: number;
  stop: boolean;
}

export interface NativeEvalResult {
  lossSum: number;
  correct: number;
  count: number;
  classCorrect: number[];
  classCount: number[];
}

/** Autocast dtype of a step's forward pass. */
export type NativePrecision = 'float32' | 'bfloat16' | 'float16';

/** Totals of device-side step metrics since their last reset (one host synchronisation). */
export interface NativeStepTotals {
  lossSum: number;
  correct: number;
  count: number;
  steps: number;
  /** Index (since the reset) of the first step whose loss was not finite, or -1. */
  firstNonFinite: number;
  nonFiniteLoss: number;
  /** Index of the first step with a label outside [0, classes), or -1. */
  firstBadLabel: number;
  /** float16: updates skipped for overflowing gradients. */
  skipped: number;
}

/** Running sums of training steps kept on the device. */
export interface StepMetricsHandle {
  read(): Promise<NativeStepTotals>;
  reset(): void;
  dispose(): void;
}

export interface TrainAddon {
  StepMetricsHandle: new () => StepMetricsHandle;
  cudaBf16Supported(device: number): boolean;
  OptimizerHandle: new (params: [string, TensorHandle][], options: NativeOptimizerOptions) => OptimizerHandle;
  trainStep(
    model: ModelHandle,
    optimizer: OptimizerHandle,
    images: TensorHandle,
    labels: TensorHandle,
    options: {
      labelSmoothing: number;
      clipLatentWeights: boolean;
      stop?: boolean;
      dataParallel?: DataParallelHandle | null;
      precision?: NativePrecision;
      metrics?: StepMetricsHandle | null;
      mixup?: { alpha: number; seed: number } | { lambda: number; index: TensorHandle } | null;
      /** Knowledge distillation: the teacher's forward runs in the step (eval mode, no autograd). */
      distill?: { teacher: ModelHandle; temperature: number; weight: number } | null;
      /** Capture the step in a CUDA graph held by the optimizer, and replay it. */
      cudaGraph?: boolean;
    },
  ): Promise<NativeStepResult>;
  /** Process-wide counts of captured-step graphs: captures, replays, and warm-up steps before a capture. */
  stepGraphCounts(): { captures: number; replays: number; warmups: number };
  evalStep(model: ModelHandle, images: TensorHandle, labels: TensorHandle, options?: { precision?: NativePrecision }): Promise<NativeEvalResult>;
}
