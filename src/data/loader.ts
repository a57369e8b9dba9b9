// The input pipeline: a DataLoader turns a Dataset into batches of ready tensors. The native side
// shuffles, crops, flips and normalises on a background thread, a few batches ahead of the
// consumer; each batch arrives through a Promise, so the event loop never waits on data.
import { NativeResource } from '../core/handle.js';
import type { EpochHandle, LoaderHandle, NativeLoaderOptions } from '../binding/addon.js';
import { Dataset } from './datasets.js';
import { checkBoolean, checkDevice, checkInteger, checkNumber } from '../core/check.js';
import type { Device } from '../core/device.js';
import { rangeError, typeError } from '../errors.js';
import { native } from '../binding/native.js';
import { Tensor } from '../core/tensor.js';
import { makeBatch, type Batch, type BatchSource } from './batches.js';

export type { Batch } from './batches.js';

/** Random augmentation, drawn per sample from (seed, epoch, sample) and so reproducible. */
export interface AugmentOptions {
  /**
   * Random crop with zero padding: the image is padded by this many pixels on every side (pixel
   * value 0) and a window of the original size is cut at a random offset. 0 turns it off. Typical:
   * 4 for 32 px CIFAR images, 2 for 28 px MNIST-style images.
   */
  cropPadding?: number;
  /** Mirror each image left-right with probability 1/2. */
  hflip?: boolean;
  /**
   * Rotate by an angle uniform in [-rotation, rotation] degrees after the crop and flip, as
   * torchvision's RandomRotation (nearest neighbour, fill 0): the tricks' CIFAR-100 recipe uses 15.
   * Default 0 (off).
   */
  rotation?: number;
}

/** Options for a {@link DataLoader}. */
export interface DataLoaderOptions {
  /** Samples per batch; defaults to 128. */
  batchSize?: number;
  /** Visit the samples in a new seeded order every epoch; defaults to true. */
  shuffle?: boolean;
  /** Skip the last batch when it would be smaller than batchSize; defaults to false. */
  dropLast?: boolean;
  /** Seeds the shuffle and the augmentation; defaults to 0. */
  seed?: number;
  /**
   * Normalise pixels as (v/255 - mean) / std per channel: `true` (default) with the dataset's
   * statistics, an object with others, or `false` for v/255 only.
   */
  normalize?: boolean | { mean: readonly number[]; std: readonly number[] };
  /** Augmentation (default: none). */
  augment?: AugmentOptions | false;
  /** Where batches are delivered; defaults to 'cpu'. CUDA batches use pinned memory and async copies. */
  device?: Device;
  /** Batches prepared ahead on the background thread (1..64); defaults to 3. */
  prefetch?: number;
  /**
   * Decoder threads of a streamed image dataset (its samples are decoded and transformed per
   * batch); defaults to one per core. Ignored for in-memory datasets.
   */
  workers?: number;
  /**
   * Data parallelism (as PyTorch's DistributedSampler): this process reads only positions
   * `rank, rank + count, ...` of every epoch's order, which every process computes alike from
   * the seed. A training loader pads the order with its own beginning so that every shard has the
   * same number of batches; {@link DataLoader.forEval} does not, so each sample is counted once.
   * `batchSize` is then the per-process batch. See {@link ProcessGroup.shard}.
   */
  shard?: { rank: number; count: number };
}

/** Options for {@link DataLoader.forEval}: no shuffle, no augmentation, no dropped batch. */
export type EvalLoaderOptions = Pick<DataLoaderOptions, 'batchSize' | 'normalize' | 'device' | 'prefetch' | 'workers' | 'shard'>;

/** A loader's options with every default filled in. */
export interface ResolvedDataLoaderOptions {
  readonly batchSize: number;
  readonly shuffle: boolean;
  readonly dropLast: boolean;
  readonly seed: number;
  readonly normalize: boolean;
  /** The normalisation statistics in use. */
  readonly mean: readonly number[];
  readonly std: readonly number[];
  readonly augment: Readonly<Required<AugmentOptions>>;
  readonly device: Device;
  readonly prefetch: number;
  /** Decoder threads of a streamed dataset (0: one per core). */
  readonly workers: number;
  /** This process's shard: positions rank, rank + count, ... of each epoch's order (padded or not). */
  readonly shard: Readonly<{ rank: number; count: number; pad: boolean }>;
}

/** Options for {@link DataLoader.epoch}. */
export interface EpochOptions {
  /** Resume: start at this batch of the epoch (same order and augmentation as a full run). */
  startBatch?: number;
}

/**
 * One pass over the data: an async iterator of {@link Batch}. The background thread starts on the
 * first `next()`; leaving a `for await` loop early (break, return, throw) stops it and waits for it
 * to exit. Not restartable: call {@link DataLoader.epoch} again for another pass.
 */
export class Epoch implements AsyncIterator<Batch, undefined>, AsyncIterable<Batch>, AsyncDisposable {
  readonly #loader: DataLoader;
  /** The epoch number, which with the loader's seed fixes the order and augmentation. */
  readonly epoch: number;
  /** The first batch this pass delivers. */
  readonly startBatch: number;
  #native: EpochHandle | null = null;
  #done = false;
  #queue: Promise<unknown> = Promise.resolve();
  /** @internal How the loader refers to this pass without keeping it alive. */
  readonly _ref = new WeakRef(this);

  /** @internal Use {@link DataLoader.epoch}. */
  constructor(loader: DataLoader, epoch: number, startBatch: number) {
    this.#loader = loader;
    this.epoch = epoch;
    this.startBatch = startBatch;
  }

  /** The next batch; calls are served in order even when not awaited one by one. */
  next(): Promise<IteratorResult<Batch, undefined>> {
    const result = this.#queue.then(() => this.#pull());
    this.#queue = result.catch(() => undefined);
    return result;
  }

  async #pull(): Promise<IteratorResult<Batch, undefined>> {
    if (this.#done) return { done: true, value: undefined };
    try {
      this.#native ??= this.#loader.handle.startEpoch(this.epoch, this.startBatch);
      const batch = await this.#native.next();
      if (batch === null) {
        this.close();
        return { done: true, value: undefined };
      }
      if (this.#done) {
        // Closed while this batch was in flight: nobody will consume it.
        batch.images.dispose();
        batch.labels.dispose();
        return { done: true, value: undefined };
      }
      return { done: false, value: makeBatch(new Tensor(batch.images), new Tensor(batch.labels), batch.index) };
    } catch (e) {
      this.close();
      throw e;
    }
  }

  /** Ends the pass early (what `break` in `for await` calls): stops the background thread. */
  async return(): Promise<IteratorResult<Batch, undefined>> {
    this.close();
    return { done: true, value: undefined };
  }

  /** Stops the background thread now and drops prepared batches. Safe to call twice. */
  close(): void {
    this.#done = true;
    if (this.#native !== null) {
      this.#native.close();
      this.#native = null;
    }
    this.#loader._forget(this);
  }

  /** True once the pass has ended or was closed. */
  get isClosed(): boolean {
    return this.#done;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }
}

/**
 * Batches from a {@link Dataset}, prepared natively on a background thread.
 *
 * The visiting order of epoch `e` is a pure function of (seed, e, dataset size) — see
 * {@link DataLoader.epochOrder} — and so is each sample's crop and flip, so a run resumed with
 * `loader.epoch(e, { startBatch: k })` sees exactly the batches an uninterrupted run would have.
 *
 * @example
 * const train = await Dataset.load('fashion-mnist');
 * const loader = new DataLoader(train, { batchSize: 128, seed: 1, augment: { cropPadding: 2, hflip: true } });
 * for (let e = 0; e < epochs; e++) {
 *   for await (const batch of loader.epoch(e)) {
 *     await scope(async () => { ...train on batch.images, batch.labels... });
 *     batch.dispose();
 *   }
 * }
 */
export class DataLoader extends NativeResource<LoaderHandle> implements BatchSource {
  readonly #options: ResolvedDataLoaderOptions;
  readonly #size: number;
  readonly #numClasses: number;
  // Weak, so that an epoch abandoned without break or close() can still be collected: its native
  // handle's finalizer then stops the background thread.
  readonly #open = new Set<WeakRef<Epoch>>();

  constructor(dataset: Dataset, options: DataLoaderOptions = {}, /** @internal */ padShards = true) {
    super('data loader');
    if (!(dataset instanceof Dataset)) throw typeError('dataset must be a Dataset');
    if (typeof options !== 'object' || options === null) throw typeError('loader options must be an object');
    const resolved = resolveOptions(dataset, options, padShards);
    const nativeOptions: NativeLoaderOptions = {
      batchSize: resolved.batchSize,
      shuffle: resolved.shuffle,
      dropLast: resolved.dropLast,
      seed: resolved.seed,
      normalize: resolved.normalize,
      mean: [...resolved.mean],
      std: [...resolved.std],
      cropPadding: resolved.augment.cropPadding,
      hflip: resolved.augment.hflip,
      rotation: resolved.augment.rotation,
      device: resolved.device,
      prefetch: resolved.prefetch,
      workers: resolved.workers,
      shardRank: resolved.shard.rank,
      shardCount: resolved.shard.count,
      shardPad: resolved.shard.pad,
    };
    this.attach(new (native().LoaderHandle)(dataset.handle, nativeOptions));
    this.#options = resolved;
    this.#size = dataset.size;
    this.#numClasses = dataset.numClasses;
  }

  /** A loader for evaluation: dataset order, no augmentation, every sample exactly once. */
  static forEval(dataset: Dataset, options: EvalLoaderOptions = {}): DataLoader {
    return new DataLoader(dataset, { ...options, shuffle: false, augment: false, dropLast: false }, false);
  }

  /** The options in use, defaults filled in. */
  get options(): ResolvedDataLoaderOptions {
    return this.#options;
  }

  /** Samples in the dataset. */
  get size(): number {
    return this.#size;
  }

  /** Classes of the dataset's labels. */
  get numClasses(): number {
    return this.#numClasses;
  }

  get batchSize(): number {
    return this.#options.batchSize;
  }

  /** Batches one epoch delivers (the last may be smaller unless dropLast). */
  get batchesPerEpoch(): number {
    return this.handle.batchesPerEpoch();
  }

  /** The dataset indices in the order epoch `epoch` visits them. */
  epochOrder(epoch: number): Int32Array {
    return this.handle.epochOrder(checkInteger(epoch, 'epoch', 0));
  }

  /** One pass over the data, optionally resumed at a batch. */
  epoch(epoch: number, options: EpochOptions = {}): Epoch {
    checkInteger(epoch, 'epoch', 0);
    const startBatch = options.startBatch === undefined ? 0 : checkInteger(options.startBatch, 'startBatch', 0);
    const batches = this.batchesPerEpoch;
    if (startBatch > batches) throw rangeError(`startBatch must be between 0 and ${batches} (batches per epoch), got ${startBatch}`);
    const pass = new Epoch(this, epoch, startBatch);
    this.#open.add(pass._ref);
    return pass;
  }

  /** @internal Called by an Epoch when it closes. */
  _forget(pass: Epoch): void {
    this.#open.delete(pass._ref);
  }

  /** Closes open epochs (stopping their threads) before the loader is freed. */
  protected override released(): void {
    for (const ref of [...this.#open]) ref.deref()?.close();
    this.#open.clear();
  }
}

function checkStats(value: unknown, what: string, channels: number, positive: boolean): number[] {
  if (!Array.isArray(value)) throw typeError(`normalize.${what} must be an array of numbers`);
  if (value.length !== channels) throw rangeError(`normalize.${what} needs one value per channel (${channels}), got ${value.length}`);
  return value.map((v, i) => {
    if (typeof v !== 'number' || !Number.isFinite(v)) throw typeError(`normalize.${what}[${i}] must be a finite number`);
    if (positive && !(v > 0)) throw rangeError(`normalize.${what}[${i}] must be positive, got ${v}`);
    return v;
  });
}

function resolveShard(o: DataLoaderOptions['shard'], pad: boolean): ResolvedDataLoaderOptions['shard'] {
  if (o === undefined) return { rank: 0, count: 1, pad };
  if (typeof o !== 'object' || o === null) throw typeError('shard must be { rank, count }');
  const count = checkInteger(o.count, 'shard.count', 1);
  const rank = checkInteger(o.rank, 'shard.rank', 0);
  if (rank >= count) throw rangeError(`shard.rank must be in [0, ${count - 1}], got ${rank}`);
  return { rank, count, pad };
}

function resolveOptions(dataset: Dataset, o: DataLoaderOptions, padShards: boolean): ResolvedDataLoaderOptions {
  const channels = dataset.shape[0];
  let normalize = true;
  let mean: readonly number[] = dataset.mean;
  let std: readonly number[] = dataset.std;
  if (typeof o.normalize === 'object' && o.normalize !== null) {
    mean = checkStats(o.normalize.mean, 'mean', channels, false);
    std = checkStats(o.normalize.std, 'std', channels, true);
  } else {
    normalize = checkBoolean(o.normalize, 'normalize', true);
  }
  let augment: Required<AugmentOptions> = { cropPadding: 0, hflip: false, rotation: 0 };
  if (o.augment !== undefined && o.augment !== false) {
    if (typeof o.augment !== 'object' || o.augment === null) throw typeError('augment must be an object or false');
    augment = {
      cropPadding: o.augment.cropPadding === undefined ? 0 : checkInteger(o.augment.cropPadding, 'augment.cropPadding', 0, 1024),
      hflip: checkBoolean(o.augment.hflip, 'augment.hflip', false),
      rotation: checkNumber(o.augment.rotation ?? 0, 'augment.rotation', { min: 0, max: 180 }),
    };
  }
  return {
    batchSize: o.batchSize === undefined ? 128 : checkInteger(o.batchSize, 'batchSize', 1, 0x7fffffff),
    shuffle: checkBoolean(o.shuffle, 'shuffle', true),
    dropLast: checkBoolean(o.dropLast, 'dropLast', false),
    seed: o.seed === undefined ? 0 : checkInteger(o.seed, 'seed', 0),
    normalize,
    mean,
    std,
    augment,
    device: o.device === undefined ? 'cpu' : checkDevice(o.device),
    prefetch: o.prefetch === undefined ? 3 : checkInteger(o.prefetch, 'prefetch', 1, 64),
    workers: o.workers === undefined ? 0 : checkInteger(o.workers, 'workers', 0, 1024),
    shard: resolveShard(o.shard, padShards),
  };
}
