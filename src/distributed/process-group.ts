// Processes that train together over PyTorch's distributed engine (c10d): a process group joined
// through torchrun's rendezvous variables, with the collectives the trainer needs.
import { checkInteger, checkNumber, checkOneOf } from '../core/check.js';
import { NativeResource } from '../core/handle.js';
import type { ProcessGroupHandle } from '../binding/addon.js';
import { rangeError, typeError } from '../errors.js';
import { native } from '../binding/native.js';
import { requireTensor, Tensor } from '../core/tensor.js';

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
export class ProcessGroup extends NativeResource<ProcessGroupHandle> {
  readonly rank: number;
  readonly worldSize: number;
  readonly localRank: number;
  readonly backend: DistributedBackend;

  private constructor(handle: ProcessGroupHandle, localRank: number, backend: DistributedBackend) {
    super('process group', handle);
    this.rank = handle.rank();
    this.worldSize = handle.worldSize();
    this.localRank = localRank;
    this.backend = backend;
  }

  static async join(options: RendezvousOptions): Promise<ProcessGroup> {
    if (typeof options !== 'object' || options === null) throw typeError('join needs { rank, worldSize, ... }');
    const { rank, worldSize } = options;
    checkInteger(worldSize, 'worldSize', 1);
    checkInteger(rank, 'rank', 0, worldSize - 1);
    const backend = checkOneOf(options.backend ?? 'gloo', 'backend', ['gloo', 'nccl'] as const);
    const timeoutSeconds = checkNumber(options.timeoutSeconds ?? 300, 'timeoutSeconds', { above: 0, max: 2_000_000 });
    const masterPort = checkInteger(options.masterPort ?? 29500, 'masterPort', 1, 65535);
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
}
