// The raw binding of native/addon/train.cpp: the optimizer and the one-call training and evaluation steps. Only src/ imports it.
import type { DataParallelHandle } from './distributed.js';
import type { ModelHandle } from './model.js';
import type { TensorHandle } from './tensor.js';

/** A native Adam/AdamW optimizer bound to one model. */
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

export interface NativeAdamOptions {
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
  decoupled: boolean;
  noDecayOn: string[];
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

export interface TrainAddon {
  OptimizerHandle: new (params: [string, TensorHandle][], options: NativeAdamOptions) => OptimizerHandle;
  trainStep(
    model: ModelHandle,
    optimizer: OptimizerHandle,
    images: TensorHandle,
    labels: TensorHandle,
    options: { labelSmoothing: number; clipLatentWeights: boolean; stop?: boolean; dataParallel?: DataParallelHandle | null },
  ): Promise<NativeStepResult>;
  evalStep(model: ModelHandle, images: TensorHandle, labels: TensorHandle): Promise<NativeEvalResult>;
}
