// Datasets: the named image-classification sets read from their files (MNIST, Fashion-MNIST,
// CIFAR-10, CIFAR-100), sets built from tensors, and image datasets (a folder in torchvision's
// ImageFolder layout, a list file, a prepared store) streamed from disk through a transform. The
// readers check every file against its own header before trusting it; problems are errors with
// code 'BNN_IO'.
import fs from 'node:fs';
import path from 'node:path';

import { checkInteger, checkNumbers } from '../core/check.js';
import { NativeResource } from '../core/handle.js';
import type { DatasetHandle, NativeDatasetInfo } from '../binding/addon.js';
import { bnnError, rangeError, typeError } from '../errors.js';
import { native } from '../binding/native.js';
import { requireTensor, Tensor } from '../core/tensor.js';
import { isStoreFile } from '../image/store.js';
import { checkChannels, IMAGENET_MEAN, IMAGENET_STD, resolveTransform, type ImageTransformOptions } from '../image/transforms.js';

/** The named datasets bnn-torch can read. */
export type DatasetName = 'mnist' | 'fashion-mnist' | 'cifar10' | 'cifar100';

/** Which part of a named dataset to read. */
export type DatasetSplit = 'train' | 'test';

/** What is known about a named dataset before its files are read. */
export interface DatasetSpec {
  readonly name: DatasetName;
  /** The standard sample shape [C, H, W] (IDX files may hold other sizes; the files decide). */
  readonly shape: readonly [number, number, number];
  readonly numClasses: number;
  readonly classNames: readonly string[];
  /** Per-channel mean of pixel/255 over the training split. */
  readonly mean: readonly number[];
  /** Per-channel standard deviation of pixel/255 over the training split. */
  readonly std: readonly number[];
  /** The folder read when no `root` is given, if the dataset has one. */
  readonly defaultRoot?: string;
}

/** Options for {@link Dataset.load}. */
export interface LoadDatasetOptions {
  /**
   * The folder holding the files. MNIST / Fashion-MNIST: `train-images-idx3-ubyte`,
   * `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`, each raw or
   * gzipped (`.gz`). CIFAR-10: `data_batch_1.bin`..`data_batch_5.bin`, `test_batch.bin`; CIFAR-100:
   * `train.bin`, `test.bin` (or the archives' `cifar-10-batches-bin/` / `cifar-100-binary/` inside
   * it). Defaults to the spec's `defaultRoot` (Fashion-MNIST: `/usr/share/datasets/fashion-mnist`).
   */
  root?: string;
  /** Defaults to `'train'`. */
  split?: DatasetSplit;
  /** Keep only the first `limit` samples (the whole file is still checked). */
  limit?: number;
}

/** Describes a dataset built with {@link Dataset.fromTensors}. */
export interface DatasetFromTensorsInfo {
  /** Defaults to `'custom'`. */
  name?: string;
  /** Class names; defaults to '0', '1', ... for `numClasses` classes. */
  classNames?: readonly string[];
  /** Number of classes when `classNames` is not given; defaults to the largest label + 1. */
  numClasses?: number;
  /** Per-channel mean of pixel/255; defaults to 0 (normalisation then only scales to [0, 1]). */
  mean?: readonly number[];
  /** Per-channel std of pixel/255; defaults to 1. */
  std?: readonly number[];
}

/** Options of {@link Dataset.fromImages}. */
export interface ImageDatasetOptions {
  /**
   * Which split: a folder with `train/` and `val/` (or `test/`) sub-folders, as ImageNet's, is
   * read from `train/` or `val/`; other folders are one split. Default 'train'.
   */
  split?: DatasetSplit;
  /** 3: RGB (default); 1: grey, as Pillow's `convert('L')`. */
  channels?: 1 | 3;
  /**
   * How each file becomes a sample, decoded per batch on the loader's decoder threads (memory does
   * not grow with the dataset). Default: the ImageNet train transform for split 'train'
   * (RandomResizedCrop 224 + flip), the eval transform for 'test' (resize 256, centre crop 224).
   * `false`: decode every image once into memory without a transform (small images that all share
   * one size, such as MNIST written out as PNGs; the loader's `augment` then applies).
   */
  transform?: ImageTransformOptions | false;
  /** Normalisation statistics of pixel / 255; default ImageNet's (streamed) or measured (in memory). */
  mean?: readonly number[];
  std?: readonly number[];
  /**
   * Leave out unreadable files instead of failing: a header that is not a readable JPEG or PNG when
   * the dataset is built, and a body found corrupt while decoding (that sample is replaced by the
   * next one that decodes, the same on every run). All are listed in `skipped`. Default false.
   */
  skipBad?: boolean;
  /** Threads that check and (without a transform) decode the files; default one per core. */
  workers?: number;
  /** Keep only `limit` images, evenly spread over the dataset's order (which is sorted by class, so every class keeps its share). */
  limit?: number;
  /** List files only: class names, label i naming class i (default '0', '1', ...). */
  classNames?: readonly string[];
}

/** How to carve a validation split; give `size` or `fraction`. */
export interface ValidationSplitOptions {
  /** Number of validation samples. */
  size?: number;
  /** Fraction of the samples (rounded), in (0, 1). */
  fraction?: number;
  /** Which samples are chosen; the same seed always gives the same split. Defaults to 0. */
  seed?: number;
}

const DATASET_NAMES: readonly DatasetName[] = ['mnist', 'fashion-mnist', 'cifar10', 'cifar100'];

function checkDatasetName(name: unknown): DatasetName {
  if (typeof name !== 'string') throw typeError('the dataset name must be a string');
  if (!(DATASET_NAMES as readonly string[]).includes(name)) {
    throw rangeError(`unknown dataset '${name}': expected one of ${DATASET_NAMES.map((n) => `'${n}'`).join(', ')}`);
  }
  return name as DatasetName;
}

/** The spec of a named dataset: shape, classes, normalisation statistics, default folder. */
export function datasetSpec(name: DatasetName): DatasetSpec {
  const checked = checkDatasetName(name);
  const spec = native().datasetCatalog().find((s) => s.name === checked);
  if (spec === undefined) throw bnnError(`the native addon does not know dataset '${checked}'`, 'BNN_INTERNAL_ERROR');
  const { defaultRoot, ...rest } = spec;
  return { ...rest, name: checked, ...(defaultRoot === '' ? {} : { defaultRoot }) };
}

/**
 * An image-classification dataset in native memory: uint8 images [N, C, H, W] and int64 labels
 * [N]. Free it with {@link Dataset.dispose} (or `using`); a loader built on it keeps the data alive
 * on its own, so the dataset may be disposed while the loader is still in use.
 */
export class Dataset extends NativeResource<DatasetHandle> {
  readonly #info: NativeDatasetInfo;

  /** @internal Use {@link Dataset.load} or {@link Dataset.fromTensors}. */
  readonly #skipped: readonly { file: string; reason: string }[];

  constructor(handle: DatasetHandle, /** @internal */ skipped: readonly { file: string; reason: string }[] = []) {
    super('dataset', handle);
    this.#info = handle.info();
    this.#skipped = skipped;
  }

  /**
   * An image dataset: `source` is a folder in torchvision's ImageFolder layout
   * (`root/<class>/<image>`, classes sorted as torchvision sorts them, so class indices match;
   * `train/` and `val/` sub-folders are picked up as splits), a list file ("path label" per line,
   * paths relative to the list), or a store written by {@link prepareStore}. JPEG and PNG (grey,
   * CMYK, progressive, 16-bit, palette, alpha) are decoded natively. Scans and checks the headers
   * on worker threads.
   */
  static async fromImages(source: string, options: ImageDatasetOptions = {}): Promise<Dataset> {
    if (typeof source !== 'string') throw typeError('the image source must be a path');
    if (typeof options !== 'object' || options === null) throw typeError('image dataset options must be an object');
    const split = options.split ?? 'train';
    if (split !== 'train' && split !== 'test') throw rangeError(`unknown split '${String(split)}': expected 'train' or 'test'`);
    const channels = checkChannels(options.channels);
    const stat = fs.statSync(source, { throwIfNoEntry: false });
    if (!stat) throw bnnError(`${source} does not exist`, 'BNN_IO');
    let kind: 'folder' | 'list' | 'store' = 'folder';
    let where = source;
    if (stat.isDirectory()) {
      const sub = (n: string): string | undefined => (fs.statSync(path.join(source, n), { throwIfNoEntry: false })?.isDirectory() ? path.join(source, n) : undefined);
      const train = sub('train');
      const test = sub('val') ?? sub('test');
      if (train && test) where = split === 'train' ? train : test;
    } else {
      kind = isStoreFile(source) ? 'store' : 'list';
    }
    const transform =
      options.transform === false ? null : resolveTransform(options.transform ?? {}, split === 'train' ? 'train' : 'eval', channels);
    if (transform === null && kind === 'store') throw rangeError('a prepared store is read through a transform: leave transform unset or give one');
    const imagenet = (v: readonly number[]): number[] => (channels === 3 ? [...v] : [v.reduce((a, b) => a + b, 0) / v.length]);
    const mean = options.mean !== undefined ? checkNumbers(options.mean, 'mean', channels) : transform ? imagenet(IMAGENET_MEAN) : [];
    const std = options.std !== undefined ? checkNumbers(options.std, 'std', channels) : transform ? imagenet(IMAGENET_STD) : [];
    const classNames = options.classNames === undefined ? [] : [...options.classNames];
    if (classNames.some((n) => typeof n !== 'string')) throw typeError('classNames must be an array of strings');
    const r = await native().datasetFromImages({
      kind,
      path: where,
      name: path.basename(path.resolve(source)),
      classNames,
      channels,
      transform,
      mean,
      std,
      skipBad: options.skipBad ?? false,
      workers: checkInteger(options.workers ?? 0, 'workers', 0, 1024),
      limit: options.limit === undefined ? 0 : checkInteger(options.limit, 'limit', 1),
    });
    return new Dataset(r.dataset, r.skipped.map(([file, reason]) => ({ file, reason })));
  }

  /**
   * Reads one split of a named dataset from its files, on a worker thread.
   * Rejects with a `BNN_IO` error naming the file and what is wrong when a file is missing,
   * truncated, corrupt or inconsistent.
   */
  static async load(name: DatasetName, options: LoadDatasetOptions = {}): Promise<Dataset> {
    const checked = checkDatasetName(name);
    const root = options.root ?? '';
    if (typeof root !== 'string') throw typeError('root must be a string');
    const split = options.split ?? 'train';
    if (split !== 'train' && split !== 'test') throw rangeError(`unknown split '${String(split)}': expected 'train' or 'test'`);
    const limit = options.limit === undefined ? 0 : checkInteger(options.limit, 'limit', 1);
    return new Dataset(await native().datasetLoad(checked, root, split, limit));
  }

  /**
   * A dataset from tensors: `images` uint8 [N, C, H, W] (pixel values 0..255) and `labels` int64
   * [N] in [0, numClasses). Both are copied.
   */
  static fromTensors(images: Tensor, labels: Tensor, info: DatasetFromTensorsInfo = {}): Dataset {
    const imagesHandle = requireTensor(images, 'images').handle;
    const labelsHandle = requireTensor(labels, 'labels').handle;
    const shape = imagesHandle.shape();
    if (shape.length !== 4) throw rangeError(`images must be [N, C, H, W], got shape [${shape.join(', ')}]`);
    const channels = shape[1]!;
    let classNames: string[];
    if (info.classNames !== undefined) {
      if (!Array.isArray(info.classNames) || info.classNames.some((n) => typeof n !== 'string')) {
        throw typeError('classNames must be an array of strings');
      }
      classNames = [...info.classNames];
    } else {
      let count = info.numClasses;
      if (count === undefined) {
        const data = labelsHandle.data();
        let max = -1;
        for (const v of data) max = Math.max(max, Number(v));
        count = max + 1;
      }
      checkInteger(count, 'numClasses', 1, 65536);
      classNames = Array.from({ length: count }, (_, i) => String(i));
    }
    const mean = info.mean === undefined ? new Array<number>(channels).fill(0) : checkNumbers(info.mean, 'mean');
    const std = info.std === undefined ? new Array<number>(channels).fill(1) : checkNumbers(info.std, 'std');
    const name = info.name ?? 'custom';
    if (typeof name !== 'string') throw typeError('name must be a string');
    return new Dataset(native().datasetFromTensors(imagesHandle, labelsHandle, { name, classNames, mean, std }));
  }

  /** The dataset's name ('fashion-mnist', ..., or the one given to fromTensors). */
  get name(): string {
    return this.#info.name;
  }

  /** Number of samples. */
  get size(): number {
    return this.#info.size;
  }

  /** Sample shape [C, H, W]. */
  get shape(): readonly [number, number, number] {
    return this.#info.shape;
  }

  get numClasses(): number {
    return this.#info.numClasses;
  }

  get classNames(): readonly string[] {
    return this.#info.classNames;
  }

  /** Per-channel normalisation mean (of pixel/255). */
  get mean(): readonly number[] {
    return this.#info.mean;
  }

  /** Per-channel normalisation std (of pixel/255). */
  get std(): readonly number[] {
    return this.#info.std;
  }

  /** True when the samples are decoded from disk per batch (an image dataset with a transform). */
  get streamed(): boolean {
    return this.#info.streamed;
  }

  /**
   * Files an image dataset left out, with why: other formats and (with skipBad) unreadable headers
   * when it was built, and (with skipBad) files found corrupt while a loader decoded them, each
   * of which was replaced by the next sample that decodes.
   */
  get skipped(): readonly { file: string; reason: string }[] {
    const later = this.handle.skippedWhileReading().map(([file, reason]) => ({ file, reason }));
    return later.length === 0 ? this.#skipped : [...this.#skipped, ...later];
  }

  /** The images as a uint8 tensor [N, C, H, W] that shares the dataset's memory (dispose it). */
  images(): Tensor {
    return new Tensor(this.handle.images());
  }

  /** The labels as an int64 tensor [N] that shares the dataset's memory (dispose it). */
  labels(): Tensor {
    return new Tensor(this.handle.labels());
  }

  /** A new dataset of the first `n` samples (a copy). */
  take(n: number): Dataset {
    return new Dataset(this.handle.take(checkInteger(n, 'n', 1)));
  }

  /**
   * Splits off a held-out validation set chosen by `seed`: two new datasets (copies), each keeping
   * the original order of its samples. The same dataset size, split size and seed always give the
   * same split, on any machine.
   */
  splitValidation(options: ValidationSplitOptions): { train: Dataset; validation: Dataset } {
    if (typeof options !== 'object' || options === null) throw typeError('splitValidation takes { size | fraction, seed }');
    const seed = options.seed === undefined ? 0 : checkInteger(options.seed, 'seed', 0);
    let size: number;
    if (options.size !== undefined && options.fraction !== undefined) throw rangeError('give the validation size or fraction, not both');
    if (options.size !== undefined) {
      size = checkInteger(options.size, 'validation size', 1);
    } else if (options.fraction !== undefined) {
      const f = options.fraction;
      if (typeof f !== 'number' || !(f > 0 && f < 1)) throw rangeError(`the validation fraction must be in (0, 1), got ${String(f)}`);
      size = Math.max(1, Math.round(f * this.size));
    } else {
      throw typeError('splitValidation needs a size or a fraction');
    }
    const [train, validation] = this.handle.splitValidation(size, seed);
    return { train: new Dataset(train), validation: new Dataset(validation) };
  }

  override toString(): string {
    return `Dataset(${this.name}, ${this.size} x [${this.shape.join(', ')}], ${this.numClasses} classes)`;
  }
}
