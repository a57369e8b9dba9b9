// Pieces shared by the commands: user errors, dataset resolution, device and thread flags.
import fs from 'node:fs';
import path from 'node:path';

import { Dataset, datasetSpec, type DatasetName, type DatasetSplit } from '../data/datasets.js';
import type { Device } from '../core/device.js';
import { checkDevice } from '../core/check.js';
import { cudaAvailable, setNumThreads } from '../core/runtime.js';
import { imageInfo } from '../image/decode.js';
import type { ModelConfig } from '../nn/model-config.js';
import type { Preset } from '../train/presets.js';

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

/** Image-data flags shared by train and eval. */
export interface ImageFlags {
  imageSize?: number;
  channels?: number;
  skipBad?: boolean;
  workers?: number;
}

// Files by which a folder is recognised as a named dataset's (IDX or CIFAR binaries), not images.
const NAMED_FILES = /^(train-images-idx3-ubyte|t10k-images-idx3-ubyte|data_batch_1\.bin|train\.bin|cifar-10-batches-bin|cifar-100-binary)/;

/**
 * True when `--data` names image data: a prepared store or a list file, or a folder of class
 * folders (ImageFolder layout, maybe with train/ and val/ splits) rather than a named dataset's
 * IDX or CIFAR files.
 */
export function isImageData(dir: string): boolean {
  const stat = fs.statSync(dir, { throwIfNoEntry: false });
  if (!stat) return false;
  if (!stat.isDirectory()) return true;
  return !fs.readdirSync(dir).some((n) => NAMED_FILES.test(n));
}

// Images up to this size are decoded once into memory and augmented like MNIST or CIFAR.
const SMALL_IMAGE = 64;

/** The first image file below `dir` (depth-first, sorted), to learn the images' size. */
function firstImage(dir: string, depth = 0): string | undefined {
  if (depth > 8) return undefined;
  for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      const found = firstImage(p, depth + 1);
      if (found) return found;
    } else if (/\.(jpe?g|png)$/i.test(e.name)) {
      return p;
    }
  }
  return undefined;
}

/**
 * Loads image data for a split: small images (at most 64 px a side, e.g. MNIST or CIFAR written out
 * as PNGs) are decoded into memory and augmented by the loader as the named datasets are; larger
 * ones, and stores, stream from disk through the preset's transform (train) or resize and centre
 * crop (test).
 */
export async function loadImages(source: string, split: DatasetSplit, preset: Preset, flags: ImageFlags, limit?: number): Promise<Dataset> {
  const stat = fs.statSync(source);
  let inMemory = false;
  if (stat.isDirectory() && flags.imageSize === undefined) {
    const first = firstImage(source);
    if (first === undefined) throw new UsageError(`${source}: no JPEG or PNG files below it`);
    const info = imageInfo(fs.readFileSync(first));
    inMemory = Math.max(info.width, info.height) <= SMALL_IMAGE;
  }
  const size = flags.imageSize ?? preset.images.size ?? 224;
  return Dataset.fromImages(source, {
    split,
    ...(flags.channels !== undefined ? { channels: flags.channels as 1 | 3 } : {}),
    transform: inMemory ? false : split === 'train' ? { ...preset.images, size, mode: 'train' } : { size, mode: 'eval' },
    skipBad: flags.skipBad ?? false,
    ...(flags.workers !== undefined ? { workers: flags.workers } : {}),
    ...(limit !== undefined ? { limit } : {}),
  });
}

/** A named dataset's split, or image data when `--data` names some. */
export async function loadData(name: DatasetName, root: string | undefined, split: DatasetSplit, preset: Preset, flags: ImageFlags, limit?: number): Promise<Dataset> {
  if (root !== undefined && isImageData(root)) return loadImages(root, split, preset, flags, limit);
  return loadSplit(name, root, split, limit);
}

/** The ablation switches of the model, as `bnn train` and `bnn summary` both take them. */
export type ModelSwitches = Pick<ModelConfig, 'doubleSkip' | 'blockOrder' | 'blockActivation' | 'downsample' | 'signGradient' | 'learnableThresholds'>;

/** The model switches of a command's parsed flags (one list, so a new switch reaches every command). */
export function modelSwitches(a: ModelSwitches): ModelSwitches {
  return {
    doubleSkip: a.doubleSkip,
    blockOrder: a.blockOrder,
    blockActivation: a.blockActivation,
    downsample: a.downsample,
    signGradient: a.signGradient,
    learnableThresholds: a.learnableThresholds,
  };
}
