// Pieces shared by the commands: user errors, dataset resolution, device and thread flags.
import fs from 'node:fs';

import { Dataset, datasetSpec, type DatasetName, type DatasetSplit } from '../data/datasets.js';
import type { Device } from '../core/device.js';
import { checkDevice } from '../core/check.js';
import { cudaAvailable, setNumThreads } from '../core/runtime.js';

/** An error the CLI reports as one line (no stack) with a non-zero exit code. */
export class UsageError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.name = 'UsageError';
    this.exitCode = exitCode;
  }
}

export const DATASETS = ['fashion-mnist', 'mnist', 'cifar10', 'cifar100'] as const;

const INSTALL_HINT: Record<DatasetName, string> = {
  'fashion-mnist': "install Debian's dataset-fashion-mnist package (sudo apt-get install dataset-fashion-mnist) or pass --data <dir>",
  mnist: 'pass --data <dir> with train-images-idx3-ubyte[.gz] and the other three MNIST files',
  cifar10: 'pass --data <dir> holding the CIFAR-10 binary version (data_batch_1.bin ... test_batch.bin)',
  cifar100: 'pass --data <dir> holding the CIFAR-100 binary version (train.bin, test.bin)',
};

/** Loads a split, turning a missing folder into a one-line hint. */
export async function loadSplit(name: DatasetName, root: string | undefined, split: DatasetSplit, limit?: number): Promise<Dataset> {
  const spec = datasetSpec(name);
  const dir = root ?? spec.defaultRoot;
  if (!dir) throw new UsageError(`${name}: no data folder given; ${INSTALL_HINT[name]}`);
  if (!fs.existsSync(dir)) throw new UsageError(`${name} not found: ${dir} does not exist; ${INSTALL_HINT[name]}`);
  try {
    return await Dataset.load(name, { root: dir, split, ...(limit !== undefined ? { limit } : {}) });
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    if (/ENOENT|no such file|not found|missing/i.test(msg)) throw new UsageError(`${name} could not be read from ${dir}: ${msg}; ${INSTALL_HINT[name]}`);
    throw e;
  }
}

/** Validates --device, failing with a one-line reason when CUDA is asked for and absent. */
export function resolveDevice(device: string): Device {
  let d: Device;
  try {
    d = checkDevice(device, '--device');
  } catch (e) {
    throw new UsageError((e as Error).message, 2);
  }
  if (d !== 'cpu' && !cudaAvailable()) {
    throw new UsageError(`--device ${d}: CUDA is not available (this LibTorch build or machine has no CUDA device); use --device cpu`);
  }
  return d;
}

export function applyThreads(threads: number | undefined): void {
  if (threads === undefined) return;
  if (!Number.isInteger(threads) || threads < 1) throw new UsageError(`--threads must be a positive integer, got ${threads}`, 2);
  setNumThreads(threads);
}

/** Parses a comma- or space-separated number list flag (`--schedule 40,60,70`). */
export function numberList(value: unknown, flag: string): number[] | undefined {
  if (value === undefined) return undefined;
  const parts = (Array.isArray(value) ? value : [value]).flatMap((v) => String(v).split(',')).map((v) => v.trim()).filter(Boolean);
  const nums = parts.map(Number);
  if (nums.some((n) => !Number.isFinite(n))) throw new UsageError(`${flag} must be numbers, got '${parts.join(',')}'`, 2);
  return nums;
}
