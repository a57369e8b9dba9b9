// The raw binding of native/addon/model.cpp: the ResNet module. Only src/ imports it.
import type { TensorHandle } from './tensor.js';

/** A native ResNet18 module. */
export interface ModelHandle {
  forward(x: TensorHandle): TensorHandle;
  forwardAsync(x: TensorHandle): Promise<TensorHandle>;
  activationStatistics(x: TensorHandle): Promise<NativeActivationStats[]>;
  train(on: boolean): void;
  isTraining(): boolean;
  to(device: string): void;
  device(): string;
  namedParameters(): [string, TensorHandle][];
  namedBuffers(): [string, TensorHandle][];
  setBinaryWeights(on: boolean): void;
  config(): NativeModelConfig;
  loadState(entries: [string, TensorHandle][]): void;
  dispose(): void;
  isDisposed(): boolean;
}

/** Counts over one sign activation's input (native/nn/activation_probe.h). */
export interface NativeActivationStats {
  layer: string;
  values: number;
  saturated: number;
  positive: number;
  channels: number;
  constantChannels: number;
}

/** The config as the native side takes and returns it (all fields set). */
export interface NativeModelConfig {
  arch: 'resnet18';
  numClasses: number;
  inChannels: number;
  width: number;
  stem: 'small' | 'imagenet';
  doubleSkip: boolean;
  binaryActivations: boolean;
  binaryWeights: boolean;
  bnMomentum: number;
  blockOrder: 'bn-sign-conv' | 'sign-conv-bn';
  blockActivation: 'prelu' | 'relu' | 'none' | 'rprelu';
  downsample: 'avgpool' | 'strided' | 'binary';
  signGradient: 'ste' | 'approx-sign';
  learnableThresholds: boolean;
}

export interface ModelAddon {
  ModelHandle: new (config: NativeModelConfig) => ModelHandle;
}
