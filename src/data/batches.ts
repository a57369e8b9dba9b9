// What the trainer consumes: batches of ready tensors, epoch by epoch, in a reproducible order.
import { rangeError, typeError } from '../errors.js';
import { Tensor } from '../core/tensor.js';
import type { Device } from '../core/device.js';

/**
 * One batch: float32 images [B, C, H, W] and int64 labels [B] on the source's device. The consumer
 * owns both tensors: call `dispose()` (or use the batch inside `scope`).
 */
export interface Batch {
  readonly images: Tensor;
  readonly labels: Tensor;
  /** Position of the batch in its epoch (0-based), counting skipped batches when resumed. */
  readonly index: number;
  /** Disposes both tensors. */
  dispose(): void;
  [Symbol.dispose](): void;
}

/** @internal A batch over two tensors it owns. */
export function makeBatch(images: Tensor, labels: Tensor, index: number): Batch {
  const dispose = (): void => {
    images.dispose();
    labels.dispose();
  };
  // A plain object, so that keep() and scope() see the tensors inside it.
  return { images, labels, index, dispose, [Symbol.dispose]: dispose };
}

/**
 * A source of batches. The order of epoch e must depend only on (seed, e), so that a resumed run
 * sees exactly the batches an uninterrupted one would. The consumer disposes each batch.
 */
export interface BatchSource {
  /** Samples per epoch. */
  readonly size: number;
  /** Batches per epoch. */
  readonly batchesPerEpoch: number;
  /** Class count of the labels. */
  readonly numClasses: number;
  /** Batches of a 0-based epoch, optionally starting at batch `startBatch`. */
  epoch(epoch: number, options?: { startBatch?: number }): AsyncIterable<Batch>;
}

/** Options of {@link InMemoryBatches}. */
export interface InMemoryBatchesOptions {
  batchSize: number;
  /** Shuffle each epoch with an order derived from (seed, epoch). Default true. */
  shuffle?: boolean;
  seed?: number;
  /** Drop the last incomplete batch. Default false. */
  dropLast?: boolean;
  device?: Device;
}

/** A small deterministic PRNG (mulberry32): per-epoch orders must not depend on global state. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * The order in which {@link InMemoryBatches} visits `size` samples in epoch `epoch`: a
 * Fisher–Yates shuffle seeded by (seed, epoch) with mulberry32. It is not the order of a
 * {@link DataLoader} with the same seed: the native loader shuffles with its own generator
 * (SplitMix64, the same on every platform); ask the loader itself with `DataLoader#epochOrder`.
 */
export function epochOrder(size: number, seed: number, epoch: number): Uint32Array {
  const order = new Uint32Array(size);
  for (let i = 0; i < size; i++) order[i] = i;
  const rand = mulberry32((Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(epoch + 1, 0x85ebca6b)) >>> 0);
  for (let i = size - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const t = order[i]!;
    order[i] = order[j]!;
    order[j] = t;
  }
  return order;
}

/**
 * Batches from arrays held in JavaScript memory: for synthetic data, tests and small experiments.
 * Real datasets use the native `DataLoader`, which also augments and prefetches.
 */
export class InMemoryBatches implements BatchSource {
  readonly size: number;
  readonly batchesPerEpoch: number;
  readonly numClasses: number;
  readonly #images: Float32Array;
  readonly #labels: Int32Array;
  readonly #sampleShape: number[];
  readonly #options: Required<InMemoryBatchesOptions>;

  constructor(images: Float32Array, labels: Int32Array | number[], sampleShape: number[], numClasses: number, options: InMemoryBatchesOptions) {
    const per = sampleShape.reduce((a, b) => a * b, 1);
    const labelArray = labels instanceof Int32Array ? labels : Int32Array.from(labels);
    if (!(images instanceof Float32Array)) throw typeError('images must be a Float32Array');
    if (images.length !== labelArray.length * per) {
      throw rangeError(`images hold ${images.length / per} samples of shape [${sampleShape.join(', ')}] but there are ${labelArray.length} labels`);
    }
    if (!Number.isInteger(options.batchSize) || options.batchSize < 1) throw rangeError(`batchSize must be a positive integer, got ${options.batchSize}`);
    for (const l of labelArray) if (l < 0 || l >= numClasses) throw rangeError(`label ${l} is outside [0, ${numClasses - 1}]`);
    this.#images = images;
    this.#labels = labelArray;
    this.#sampleShape = sampleShape;
    this.numClasses = numClasses;
    this.#options = { shuffle: true, seed: 0, dropLast: false, device: 'cpu', ...options };
    this.size = labelArray.length;
    this.batchesPerEpoch = this.#options.dropLast ? Math.floor(this.size / options.batchSize) : Math.ceil(this.size / options.batchSize);
  }

  async *epoch(epoch: number, options: { startBatch?: number } = {}): AsyncIterable<Batch> {
    const { batchSize, shuffle, seed, device } = this.#options;
    const order = shuffle ? epochOrder(this.size, seed, epoch) : Uint32Array.from({ length: this.size }, (_, i) => i);
    const per = this.#sampleShape.reduce((a, b) => a * b, 1);
    for (let b = options.startBatch ?? 0; b < this.batchesPerEpoch; b++) {
      const idx = order.subarray(b * batchSize, Math.min(this.size, (b + 1) * batchSize));
      const images = new Float32Array(idx.length * per);
      const labels = new BigInt64Array(idx.length);
      idx.forEach((s, i) => {
        images.set(this.#images.subarray(s * per, (s + 1) * per), i * per);
        labels[i] = BigInt(this.#labels[s]!);
      });
      yield makeBatch(
        Tensor.fromArray(images, [idx.length, ...this.#sampleShape], { device }),
        Tensor.fromArray(labels, [idx.length], { device }),
        b,
      );
    }
  }
}
