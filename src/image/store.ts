// The prepared store (`bnn prepare`): a whole image dataset in one memory-mapped file, each image
// re-encoded with its shorter side bounded, in the spirit of FFCV. Training reads it with the same
// transforms as the folder it came from, decoding small JPEGs from one file instead of opening a
// million camera-sized ones. The layout is documented in native/image/store.h.
import fs from 'node:fs';

import { native } from '../binding/native.js';
import { checkBoolean, checkInteger } from '../core/check.js';
import { bnnError, typeError } from '../errors.js';

/** What a prepared store holds. */
export interface StoreInfo {
  size: number;
  classNames: string[];
  /** Records per class. */
  classCounts: number[];
  /** The bound the writer put on each image's shorter side. */
  maxSide: number;
}

/** Options of {@link prepareStore}. */
export interface PrepareStoreOptions {
  /** Shrink (Pillow's antialiased bilinear) until the shorter side is at most this. Default 256. */
  maxSide?: number;
  /** Images with both sides at most this are stored as raw pixels (no re-encoding loss). Default 64. */
  rawMaxSide?: number;
  /** JPEG quality of re-encoded images. Default 90. */
  quality?: number;
  /** Leave out files that cannot be read or decoded, counting them, instead of failing on the first. Default false. */
  skipBad?: boolean;
  /** Decoder threads; default one per core. */
  workers?: number;
  /** For a list file without named classes: the class names, label i naming class i. */
  classNames?: string[];
  /** Called after every chunk of files with the files done so far and the total. */
  onProgress?(done: number, total: number): void;
}

/** What {@link prepareStore} did. */
export interface PrepareStoreResult {
  path: string;
  /** Files found, images written, and files left out with why (unsupported or bad). */
  read: number;
  written: number;
  skipped: { file: string; reason: string }[];
  seconds: number;
}

const CHUNK = 512;

/**
 * Writes a prepared store from an image folder (torchvision's ImageFolder layout) or a list file
 * ("path label" per line). The store appears under `out` only when complete (written beside it,
 * fsynced, renamed): an interrupted prepare leaves nothing half-valid behind.
 */
export async function prepareStore(source: string, out: string, options: PrepareStoreOptions = {}): Promise<PrepareStoreResult> {
  if (typeof source !== 'string' || typeof out !== 'string') throw typeError('prepareStore(source, out) takes two paths');
  const started = performance.now();
  const maxSide = checkInteger(options.maxSide ?? 256, 'maxSide', 8, 65500);
  const rawMaxSide = checkInteger(options.rawMaxSide ?? 64, 'rawMaxSide', 0, 65500);
  const quality = checkInteger(options.quality ?? 90, 'quality', 1, 100);
  const workers = checkInteger(options.workers ?? 0, 'workers', 0, 1024);
  const skipBad = checkBoolean(options.skipBad, 'skipBad', false);
  const stat = fs.statSync(source, { throwIfNoEntry: false });
  if (!stat) throw bnnError(`${source} does not exist`, 'BNN_IO');
  const kind = stat.isDirectory() ? 'folder' : 'list';
  const files = await native().imageFiles(kind, source, options.classNames ?? []);
  // Files in other image formats are listed, not fatal, exactly as Dataset.fromImages lists them.
  const skipped = files.skipped.map(([file, reason]) => ({ file, reason }));
  const writer = new (native().StoreWriterHandle)(out, files.classNames, { maxSide, rawMaxSide, quality, workers });
  try {
    const total = files.paths.length;
    for (let start = 0; start < total; start += CHUNK) {
      const paths = files.paths.slice(start, start + CHUNK);
      const bad = await writer.addFiles(paths, files.labels.slice(start, start + CHUNK), start);
      for (const [index, reason] of bad) {
        const file = paths[index]!;
        if (!skipBad) throw bnnError(`${reason} (skipBad / --skip-bad leaves such files out)`, 'BNN_IO');
        skipped.push({ file, reason: reason.startsWith(`${file}: `) ? reason.slice(file.length + 2) : reason });
      }
      options.onProgress?.(Math.min(total, start + CHUNK), total);
    }
    const written = await writer.finish();
    return { path: out, read: total + files.skipped.length, written, skipped, seconds: (performance.now() - started) / 1000 };
  } finally {
    writer.dispose();
  }
}

/** Opens a prepared store and reports what it holds (every offset in its index is checked). */
export async function storeInfo(path: string): Promise<StoreInfo> {
  if (typeof path !== 'string') throw typeError('storeInfo(path) takes a path');
  return native().storeInfo(path);
}

/** @internal True when `path` is a prepared store (by its magic bytes). */
export function isStoreFile(path: string): boolean {
  try {
    const fd = fs.openSync(path, 'r');
    try {
      const head = Buffer.alloc(8);
      return fs.readSync(fd, head, 0, 8, 0) === 8 && head.toString('latin1') === 'BNNIMGST';
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return false;
  }
}
