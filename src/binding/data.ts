// The raw binding of native/addon/data.cpp: datasets, loaders and epochs. Only src/ imports it.
import type { NativeTransform } from './image.js';
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
  /** True when the samples are decoded from disk per batch (an image dataset with a transform). */
  streamed: boolean;
}

/** Options of datasetFromImages (all fields set by the TypeScript side). */
export interface NativeImageDatasetOptions {
  kind: 'folder' | 'list' | 'store';
  path: string;
  name: string;
  classNames: string[];
  channels: number;
  /** Null: decode every image once into memory (they must share one size). */
  transform: NativeTransform | null;
  /** Empty: measured (in-memory) or required (streamed). */
  mean: number[];
  std: number[];
  skipBad: boolean;
  workers: number;
  limit: number;
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
  skippedWhileReading(): [string, string][];
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
  /** Random rotation in degrees (0: off). */
  rotation: number;
  device: string;
  prefetch: number;
  /** Decoder threads of a streamed dataset (0: one per core). */
  workers: number;
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
  imageFiles(kind: 'folder' | 'list', path: string, classNames: string[]): Promise<{ paths: string[]; labels: number[]; classNames: string[]; skipped: [string, string][] }>;
  datasetFromImages(options: NativeImageDatasetOptions): Promise<{ dataset: DatasetHandle; skipped: [string, string][] }>;
}
