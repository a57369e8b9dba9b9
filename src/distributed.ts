// Data-parallel training over PyTorch's distributed engine (c10d): a process group joined through
// torchrun's rendezvous variables, and the DataParallel wrapper a training step takes.
import type { DataParallelHandle, ProcessGroupHandle } from './addon-types.js';
import { bnnError, rangeError, typeError } from './errors.js';
import type { Model } from './model.js';
import { native } from './native.js';
import { requireTensor, Tensor } from './tensor.js';

/** Which collective backend a process group uses: Gloo (CPU tensors) or NCCL (CUDA tensors). */
export type DistributedBackend = 'gloo' | 'nccl';

/** Where and how processes meet: the variables torchrun sets (`init_method="env://"`). */
export interface RendezvousOptions {
  /** Address of rank 0, which hosts the TCPStore. Default '127.0.0.1'. */
  masterAddr?: string;
  /** Port of the TCPStore. Default 29500. */
  masterPort?: number;
  /** This process's rank in [0, worldSize). */
  rank: number;
  /** Number of processes. */
  worldSize: number;
  /** This process's index on its machine (picks its GPU). Default: rank. */
  localRank?: number;
  /** Default 'gloo'. */
  backend?: DistributedBackend;
  /**
   * How long the rendezvous and each collective wait for the slowest process before failing with
   * BNN_DISTRIBUTED. A process that dies usually makes its peers fail at once (its sockets
   * close); the timeout bounds the rest. Default 300.
   */
  timeoutSeconds?: number;
}

function envInt(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const v = env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw rangeError(`${name} must be a non-negative integer, got '${v}'`);
  return n;
}

/**
 * The rendezvous a launcher set in the environment: torchrun's RANK, WORLD_SIZE, LOCAL_RANK,
 * MASTER_ADDR and MASTER_PORT, or SLURM's SLURM_PROCID, SLURM_NTASKS and SLURM_LOCALID (with
 * MASTER_ADDR and MASTER_PORT exported by the batch script). Undefined when none is set.
 */
export function rendezvousFromEnv(env: NodeJS.ProcessEnv = process.env): RendezvousOptions | undefined {
  let rank = envInt(env, 'RANK');
  let worldSize = envInt(env, 'WORLD_SIZE');
  let localRank = envInt(env, 'LOCAL_RANK');
  let source = 'RANK/WORLD_SIZE';
  if (rank === undefined && worldSize === undefined && env.SLURM_PROCID !== undefined && env.MASTER_ADDR !== undefined) {
    rank = envInt(env, 'SLURM_PROCID');
    worldSize = envInt(env, 'SLURM_NTASKS');
    localRank = envInt(env, 'SLURM_LOCALID');
    source = 'SLURM_PROCID/SLURM_NTASKS';
  }
  if (rank === undefined && worldSize === undefined) return undefined;
  if (rank === undefined || worldSize === undefined) throw rangeError(`${source}: both must be set for a distributed run`);
  if (worldSize < 1 || rank >= worldSize) throw rangeError(`${source}: rank ${rank} is not in [0, ${worldSize - 1}]`);
  const port = envInt(env, 'MASTER_PORT');
  if (worldSize > 1 && (env.MASTER_ADDR === undefined || port === undefined)) {
    throw rangeError('MASTER_ADDR and MASTER_PORT must be set for a distributed run (rank 0 listens there)');
  }
  return {
    rank,
    worldSize,
    localRank: localRank ?? rank,
    masterAddr: env.MASTER_ADDR ?? '127.0.0.1',
    masterPort: port ?? 29500,
  };
}

/** The collective backends this build of the addon can create. */
export function distributedBackends(): { gloo: boolean; nccl: boolean } {
  return native().distributedBackends();
}

/**
 * A group of processes that train together. {@link ProcessGroup.join} blocks (off the main
 * thread) until all `worldSize` processes have joined. Collectives are Promises that every rank
 * must call in the same order; one that fails (a peer died, the timeout passed) rejects with
 * code BNN_DISTRIBUTED, after which the group is unusable.
 */
export class ProcessGroup implements Disposable {
  readonly rank: number;
  readonly worldSize: number;
  readonly localRank: number;
  readonly backend: DistributedBackend;
  #handle: ProcessGroupHandle | null;

  private constructor(handle: ProcessGroupHandle, localRank: number, backend: DistributedBackend) {
    this.#handle = handle;
    this.rank = handle.rank();
    this.worldSize = handle.worldSize();
    this.localRank = localRank;
    this.backend = backend;
  }

  static async join(options: RendezvousOptions): Promise<ProcessGroup> {
    if (typeof options !== 'object' || options === null) throw typeError('join needs { rank, worldSize, ... }');
    const { rank, worldSize } = options;
    if (!Number.isInteger(worldSize) || worldSize < 1) throw rangeError(`worldSize must be a positive integer, got ${worldSize}`);
    if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize) throw rangeError(`rank must be an integer in [0, ${worldSize - 1}], got ${rank}`);
    const backend = options.backend ?? 'gloo';
    if (backend !== 'gloo' && backend !== 'nccl') throw rangeError(`backend must be 'gloo' or 'nccl', got '${String(backend)}'`);
    const timeoutSeconds = options.timeoutSeconds ?? 300;
    if (!(timeoutSeconds > 0 && timeoutSeconds <= 2_000_000)) throw rangeError(`timeoutSeconds must be positive, got ${timeoutSeconds}`);
    const masterPort = options.masterPort ?? 29500;
    if (!Number.isInteger(masterPort) || masterPort < 1 || masterPort > 65535) throw rangeError(`masterPort must be in [1, 65535], got ${masterPort}`);
    const handle = await native().joinProcessGroup({
      masterAddr: options.masterAddr ?? '127.0.0.1',
      masterPort,
      rank,
      worldSize,
      timeoutMs: Math.round(timeoutSeconds * 1000),
      backend,
    });
    return new ProcessGroup(handle, options.localRank ?? rank, backend);
  }

  /** True on rank 0, the process that writes files. */
  get isMain(): boolean {
    return this.rank === 0;
  }

  /** This process's part of a dataset: pass as the `shard` option of a DataLoader. */
  shard(): { rank: number; count: number } {
    return { rank: this.rank, count: this.worldSize };
  }

  /** @internal */
  get handle(): ProcessGroupHandle {
    if (this.#handle === null) throw bnnError('this process group has been disposed and can no longer be used', 'BNN_DISPOSED');
    return this.#handle;
  }

  /** Sums each tensor across ranks, in place. */
  async allReduceSum(tensors: readonly Tensor[]): Promise<void> {
    const handles = tensors.map((t, i) => requireTensor(t, `tensors[${i}]`).handle);
    await this.handle.allReduceSum(handles);
  }

  /** Copies rank `root`'s values into every rank's tensors, in place. */
  async broadcast(tensors: readonly Tensor[], root = 0): Promise<void> {
    if (!Number.isInteger(root) || root < 0 || root >= this.worldSize) throw rangeError(`root must be a rank in [0, ${this.worldSize - 1}], got ${root}`);
    const handles = tensors.map((t, i) => requireTensor(t, `tensors[${i}]`).handle);
    await this.handle.broadcast(handles, root);
  }

  /** Sums plain numbers across ranks (float64, exact for counts below 2^53). */
  async sumNumbers(values: readonly number[]): Promise<number[]> {
    const t = Tensor.fromArray(Float64Array.from(values), [values.length]);
    try {
      await this.allReduceSum([t]);
      return Array.from(t.toTypedArray() as Float64Array);
    } finally {
      t.dispose();
    }
  }

  /** Waits until every rank has reached this point. */
  async barrier(): Promise<void> {
    await this.handle.barrier();
  }

  /** Leaves the group (closes its connections). Safe to call twice. */
  dispose(): void {
    this.#handle?.dispose();
    this.#handle = null;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

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
export class DataParallel implements Disposable {
  readonly model: Model;
  readonly group: ProcessGroup;
  #handle: DataParallelHandle | null;

  constructor(model: Model, group: ProcessGroup, options: DataParallelOptions = {}) {
    if (!(group instanceof ProcessGroup)) throw typeError('group must be a ProcessGroup');
    if (options.bucketCapMb !== undefined && !(typeof options.bucketCapMb === 'number' && options.bucketCapMb > 0 && options.bucketCapMb <= 65536)) {
      throw rangeError(`bucketCapMb must be a number of MiB in (0, 65536], got ${options.bucketCapMb}`);
    }
    this.model = model;
    this.group = group;
    this.#handle = new (native().DataParallelHandle)(model.handle, group.handle, options);
  }

  /** @internal */
  get handle(): DataParallelHandle {
    if (this.#handle === null) throw bnnError('this DataParallel has been disposed and can no longer be used', 'BNN_DISPOSED');
    return this.#handle;
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
  dispose(): void {
    this.#handle?.dispose();
    this.#handle = null;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
