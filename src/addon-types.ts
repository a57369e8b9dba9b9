// The raw binding's shape, exactly as native/addon/ exports it. Only src/ files import this; users
// see the typed classes built on top of it.

/** Element types the native side understands. */
export type DTypeName = 'float32' | 'float64' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'uint8' | 'bool';

export type NativeTypedArray = Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array;

export interface TensorHandle {
  dispose(): void;
  isDisposed(): boolean;
  shape(): number[];
  dtype(): DTypeName;
  device(): string;
  requiresGrad(): boolean;
  setRequiresGrad(on: boolean): void;
  grad(): TensorHandle | null;
  data(): NativeTypedArray;
  item(): number;
  to(device: string, dtype?: DTypeName): TensorHandle;
  backward(gradient?: TensorHandle): void;
  backwardAsync(gradient?: TensorHandle): Promise<void>;
}

export interface RuntimeInfo {
  torchVersion: string;
  libtorchSource: string;
  libtorchRoot: string;
  cudaKernels: boolean;
  cudaAvailable: boolean;
  cudaDeviceCount: number;
  numThreads: number;
}

export type UnaryOp =
  | 'neg' | 'abs' | 'sign' | 'relu' | 'exp' | 'log' | 'sqrt' | 'square' | 'sigmoid' | 'tanh'
  | 'sum' | 'mean' | 'max' | 'min' | 'clone' | 'detach' | 'contiguous' | 't';
export type BinaryOp = 'add' | 'sub' | 'mul' | 'div' | 'pow' | 'matmul' | 'maximum' | 'minimum';
export type CreateKind = 'zeros' | 'ones' | 'rand' | 'randn';

/** A native ResNet18 module. */
export interface ModelHandle {
  forward(x: TensorHandle): TensorHandle;
  forwardAsync(x: TensorHandle): Promise<TensorHandle>;
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
}

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

// ---- distributed (native/addon/distributed.cpp) ----------------------------------------------

export interface NativeRendezvous {
  masterAddr: string;
  masterPort: number;
  rank: number;
  worldSize: number;
  timeoutMs: number;
  backend: 'gloo' | 'nccl';
}

export interface ProcessGroupHandle {
  rank(): number;
  worldSize(): number;
  backend(): string;
  broadcast(tensors: TensorHandle[], root: number): Promise<void>;
  allReduceSum(tensors: TensorHandle[]): Promise<void>;
  barrier(): Promise<void>;
  dispose(): void;
}

export interface DataParallelHandle {
  broadcastState(): Promise<void>;
  broadcastBuffers(): Promise<void>;
  bucketCount(): number;
  dispose(): void;
}

export interface NativeEvalResult {
  lossSum: number;
  correct: number;
  count: number;
  classCorrect: number[];
  classCount: number[];
}

// ---- data (native/addon/data.cpp) ------------------------------------------------------------

/** What the native side knows about a dataset (named or built from tensors). */
export interface NativeDatasetInfo {
  name: string;
  size: number;
  shape: [number, number, number];
  numClasses: number;
  classNames: string[];
  mean: number[];
  std: number[];
}

/** A catalogue entry: a named dataset before any file is read. */
export interface NativeDatasetSpec {
  name: string;
  shape: [number, number, number];
  numClasses: number;
  classNames: string[];
  mean: number[];
  std: number[];
  /** Empty when the dataset has no default folder. */
  defaultRoot: string;
}

/** An in-memory dataset: uint8 images [N, C, H, W] and int64 labels [N]. */
export interface DatasetHandle {
  info(): NativeDatasetInfo;
  images(): TensorHandle;
  labels(): TensorHandle;
  take(n: number): DatasetHandle;
  splitValidation(size: number, seed: number): [DatasetHandle, DatasetHandle];
  dispose(): void;
  isDisposed(): boolean;
}

/** Loader options as the native side takes them (all fields set). */
export interface NativeLoaderOptions {
  batchSize: number;
  shuffle: boolean;
  dropLast: boolean;
  seed: number;
  normalize: boolean;
  /** Empty arrays: the dataset's own statistics. */
  mean: number[];
  std: number[];
  cropPadding: number;
  hflip: boolean;
  device: string;
  prefetch: number;
  shardRank: number;
  shardCount: number;
  shardPad: boolean;
}

export interface NativeBatch {
  images: TensorHandle;
  labels: TensorHandle;
  index: number;
}

/** One epoch being produced on a background thread. */
export interface EpochHandle {
  /** The next batch, or null once the epoch is over or closed. */
  next(): Promise<NativeBatch | null>;
  close(): void;
  isClosed(): boolean;
}

export interface LoaderHandle {
  batchesPerEpoch(): number;
  epochOrder(epoch: number): Int32Array;
  startEpoch(epoch: number, startBatch: number): EpochHandle;
  dispose(): void;
  isDisposed(): boolean;
}

export interface DataAddon {
  DatasetHandle: new () => DatasetHandle;
  EpochHandle: new () => EpochHandle;
  LoaderHandle: new (dataset: DatasetHandle, options: NativeLoaderOptions) => LoaderHandle;
  datasetLoad(name: string, root: string, split: 'train' | 'test', limit: number): Promise<DatasetHandle>;
  datasetFromTensors(
    images: TensorHandle,
    labels: TensorHandle,
    info: { name: string; classNames: string[]; mean: number[]; std: number[] },
  ): DatasetHandle;
  datasetCatalog(): NativeDatasetSpec[];
}
// ---- end data ------------------------------------------------------------------------------

export interface Addon extends DataAddon {
  TensorHandle: new () => TensorHandle;
  ModelHandle: new (config: NativeModelConfig) => ModelHandle;
  OptimizerHandle: new (params: [string, TensorHandle][], options: NativeAdamOptions) => OptimizerHandle;
  trainStep(
    model: ModelHandle,
    optimizer: OptimizerHandle,
    images: TensorHandle,
    labels: TensorHandle,
    options: { labelSmoothing: number; clipLatentWeights: boolean; stop?: boolean; dataParallel?: DataParallelHandle | null },
  ): Promise<NativeStepResult>;
  joinProcessGroup(options: NativeRendezvous): Promise<ProcessGroupHandle>;
  distributedBackends(): { gloo: boolean; nccl: boolean };
  DataParallelHandle: new (model: ModelHandle, group: ProcessGroupHandle, options: { bucketCapMb?: number; broadcastBuffers?: boolean }) => DataParallelHandle;
  evalStep(model: ModelHandle, images: TensorHandle, labels: TensorHandle): Promise<NativeEvalResult>;
  cpuRngState(): TensorHandle;
  setCpuRngState(state: TensorHandle): void;
  tensorFromData(
    data: NativeTypedArray,
    shape: readonly number[],
    dtype: DTypeName | undefined,
    device: string | undefined,
    requiresGrad: boolean,
  ): TensorHandle;
  tensorCreate(
    kind: CreateKind,
    shape: readonly number[],
    dtype: DTypeName | undefined,
    device: string | undefined,
    requiresGrad: boolean,
  ): TensorHandle;
  tensorUnary(input: TensorHandle, op: UnaryOp): TensorHandle;
  tensorBinary(input: TensorHandle, other: TensorHandle | number, op: BinaryOp): TensorHandle;
  tensorReshape(input: TensorHandle, shape: readonly number[]): TensorHandle;
  liveTensors(): number;
  binaryActivation(x: TensorHandle): TensorHandle;
  binaryActivationAsync(x: TensorHandle): Promise<TensorHandle>;
  binaryActivationReference(x: TensorHandle): TensorHandle;
  crossEntropy(logits: TensorHandle, labels: TensorHandle, labelSmoothing?: number): TensorHandle;
  runtimeInfo(): RuntimeInfo;
  setNumThreads(n: number): void;
  manualSeed(seed: number): void;
  setAllowTF32(on: boolean): void;
}
