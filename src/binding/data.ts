// The raw binding of native/addon/data.cpp: datasets, loaders and epochs. Only src/ imports it.
import type { TensorHandle } from './tensor.js';

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
