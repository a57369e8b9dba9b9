// Data parallelism over a process group, as torch.nn.parallel.DistributedDataParallel: rank 0's
// state broadcast at the start, gradients averaged in buckets between backward and the update.
import type { DataParallelHandle } from '../binding/addon.js';
import { native } from '../binding/native.js';
import { checkBoolean } from '../core/check.js';
import { NativeResource } from '../core/handle.js';
import { rangeError, typeError } from '../errors.js';
import type { Model } from '../nn/model.js';
import { ProcessGroup } from './process-group.js';

/** Options of {@link DataParallel}. */
export interface DataParallelOptions {
  /** Gradient bucket size in MiB, fractions allowed (DistributedDataParallel's bucket_cap_mb). Default 25. */
  bucketCapMb?: number;
  /** Copy rank 0's BatchNorm running statistics to all ranks before every forward, as DDP does by default. Default true. */
  broadcastBuffers?: boolean;
  /**
   * SyncBatchNorm (torch.nn.SyncBatchNorm): in training mode every BatchNorm normalises with the
   * mean and variance of all ranks' batches together and updates its running statistics with them
   * (the same on every rank), so N processes of batch B train as one process of batch N x B does,
   * BatchNorm included. Without it each rank normalises its own B samples and the running
   * statistics are rank 0's, from rank 0's shard (DistributedDataParallel's default). Costs two
   * all-reduces of 2 x channels numbers per BatchNorm and step; every rank must then run each
   * training-mode forward and backward together. Default false.
   */
  syncBatchNorm?: boolean;
}

/**
 * Makes training steps of `model` data-parallel across `group`, the way PyTorch's
 * DistributedDataParallel does by default: call {@link DataParallel.broadcastState} once so every
 * replica starts from rank 0's weights, then pass it to each `trainStep` (the Trainer does both).
 * Gradients are averaged across ranks in buckets, overlapping backward; BatchNorm normalises with
 * each replica's own batch and rank 0's running statistics are shared, or with the global batch
 * (`syncBatchNorm`).
 */
export class DataParallel extends NativeResource<DataParallelHandle> {
  readonly model: Model;
  readonly group: ProcessGroup;
  /** Whether BatchNorm uses the global batch's statistics ({@link DataParallelOptions.syncBatchNorm}). */
  readonly syncBatchNorm: boolean;

  constructor(model: Model, group: ProcessGroup, options: DataParallelOptions = {}) {
    super('DataParallel');
    if (!(group instanceof ProcessGroup)) throw typeError('group must be a ProcessGroup');
    if (options.bucketCapMb !== undefined && !(typeof options.bucketCapMb === 'number' && options.bucketCapMb > 0 && options.bucketCapMb <= 65536)) {
      throw rangeError(`bucketCapMb must be a number of MiB in (0, 65536], got ${options.bucketCapMb}`);
    }
    const syncBatchNorm = checkBoolean(options.syncBatchNorm, 'syncBatchNorm', false);
    this.model = model;
    this.group = group;
    this.syncBatchNorm = syncBatchNorm;
    this.attach(new (native().DataParallelHandle)(model.handle, group.handle, { ...options, syncBatchNorm }));
  }

  /** Checks that all ranks built the same network and copies rank 0's parameters and buffers to all. */
  async broadcastState(): Promise<void> {
    const handle = this.handle;
    await this.model.exclusive(() => handle.broadcastState());
  }

  /** Gradient buckets in use (made at the first training step; 0 for a single process). */
  get bucketCount(): number {
    return this.handle.bucketCount();
  }

  /**
   * Copies rank 0's buffers (BatchNorm running statistics) to every rank. Training-mode forwards
   * update each replica's own statistics, so do this after the last step before evaluating or
   * saving (the Trainer does, after every epoch).
   */
  async syncBuffers(): Promise<void> {
    const handle = this.handle;
    await this.model.exclusive(() => handle.broadcastBuffers());
  }

  /** Removes the gradient hooks. Safe to call twice. */
}
