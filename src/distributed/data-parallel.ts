// Data parallelism over a process group, as torch.nn.parallel.DistributedDataParallel: rank 0's
// state broadcast at the start, gradients averaged in buckets between backward and the update.
import type { DataParallelHandle } from '../binding/addon.js';
import { native } from '../binding/native.js';
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
}

/**
 * Makes training steps of `model` data-parallel across `group`, the way PyTorch's
 * DistributedDataParallel does by default: call {@link DataParallel.broadcastState} once so every
 * replica starts from rank 0's weights, then pass it to each `trainStep` (the Trainer does both).
 * Gradients are averaged across ranks in buckets, overlapping backward; BatchNorm normalises with
 * each replica's own batch and rank 0's running statistics are shared.
 */
export class DataParallel extends NativeResource<DataParallelHandle> {
  readonly model: Model;
  readonly group: ProcessGroup;

  constructor(model: Model, group: ProcessGroup, options: DataParallelOptions = {}) {
    super('DataParallel');
    if (!(group instanceof ProcessGroup)) throw typeError('group must be a ProcessGroup');
    if (options.bucketCapMb !== undefined && !(typeof options.bucketCapMb === 'number' && options.bucketCapMb > 0 && options.bucketCapMb <= 65536)) {
      throw rangeError(`bucketCapMb must be a number of MiB in (0, 65536], got ${options.bucketCapMb}`);
    }
    this.model = model;
    this.group = group;
    this.attach(new (native().DataParallelHandle)(model.handle, group.handle, options));
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
