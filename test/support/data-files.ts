// Writers for small dataset files in the real on-disk formats, so data tests never depend on
// downloaded files: IDX (MNIST-style, raw or gzipped) and CIFAR-10/100 binary batches.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';

import { mulberry32 } from '../../src/data/batches.js';

let root: string | undefined;

/** A fresh temporary folder; all of them are removed when the process exits. */
export function tempDir(prefix: string): string {
  if (root === undefined) {
    const made = fs.mkdtempSync(path.join(os.tmpdir(), 'bnn-data-test-'));
    process.on('exit', () => fs.rmSync(made, { recursive: true, force: true }));
    root = made;
  }
  return fs.mkdtempSync(path.join(root, `${prefix}-`));
}

/** An IDX file of unsigned bytes: 00 00 08 <ndims>, big-endian int32 dims, then the data. */
export function idxBytes(dims: readonly number[], data: Uint8Array): Buffer {
  const header = Buffer.alloc(4 + 4 * dims.length);
  header[2] = 0x08;
  header[3] = dims.length;
  dims.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([header, data]);
}

/** Deterministic pseudo-random generator for test data and fuzzing: the library's own mulberry32. */
export const prng = mulberry32;

export interface ImageSet {
  n: number;
  c: number;
  h: number;
  w: number;
  pixels: Uint8Array; // n * c * h * w, NCHW
  labels: Uint8Array; // n
}

/** Random images and labels (labels in [0, classes)). */
export function randomImageSet(n: number, c: number, h: number, w: number, classes: number, seed: number): ImageSet {
  const rand = prng(seed);
  const pixels = new Uint8Array(n * c * h * w);
  for (let i = 0; i < pixels.length; i++) pixels[i] = Math.floor(rand() * 256);
  const labels = new Uint8Array(n);
  for (let i = 0; i < n; i++) labels[i] = Math.floor(rand() * classes);
  return { n, c, h, w, pixels, labels };
}

/** The IDX file names of a split. */
export function idxNames(split: 'train' | 'test', gzip: boolean): { images: string; labels: string } {
  const prefix = split === 'train' ? 'train' : 't10k';
  const ext = gzip ? '.gz' : '';
  return { images: `${prefix}-images-idx3-ubyte${ext}`, labels: `${prefix}-labels-idx1-ubyte${ext}` };
}

/** Writes one split as IDX files into `dir`; returns the two paths. */
export function writeIdxSplit(dir: string, split: 'train' | 'test', set: ImageSet, gzip: boolean): { images: string; labels: string } {
  const names = idxNames(split, gzip);
  const images = idxBytes([set.n, set.h, set.w], set.pixels);
  const labels = idxBytes([set.n], set.labels);
  const out = { images: path.join(dir, names.images), labels: path.join(dir, names.labels) };
  fs.writeFileSync(out.images, gzip ? zlib.gzipSync(images) : images);
  fs.writeFileSync(out.labels, gzip ? zlib.gzipSync(labels) : labels);
  return out;
}

/** CIFAR records: [coarse?] label, then 3072 pixel bytes, per sample. */
export function cifarBytes(set: ImageSet, coarse?: Uint8Array): Buffer {
  const labelBytes = coarse ? 2 : 1;
  const pixels = set.c * set.h * set.w;
  const out = Buffer.alloc(set.n * (labelBytes + pixels));
  for (let i = 0; i < set.n; i++) {
    const at = i * (labelBytes + pixels);
    if (coarse) out[at] = coarse[i]!;
    out[at + labelBytes - 1] = set.labels[i]!;
    out.set(set.pixels.subarray(i * pixels, (i + 1) * pixels), at + labelBytes);
  }
  return out;
}

/** Slices samples [from, to) of a set. */
export function sliceSet(set: ImageSet, from: number, to: number): ImageSet {
  const per = set.c * set.h * set.w;
  return { ...set, n: to - from, pixels: set.pixels.slice(from * per, to * per), labels: set.labels.slice(from, to) };
}

/** Writes CIFAR-10 batch files: `perFile` records in each of data_batch_1..5.bin, and test_batch.bin. */
export function writeCifar10(dir: string, train: ImageSet, test: ImageSet): void {
  const perFile = train.n / 5;
  for (let f = 0; f < 5; f++) {
    fs.writeFileSync(path.join(dir, `data_batch_${f + 1}.bin`), cifarBytes(sliceSet(train, f * perFile, (f + 1) * perFile)));
  }
  fs.writeFileSync(path.join(dir, 'test_batch.bin'), cifarBytes(test));
}

/** Writes CIFAR-100 train.bin and test.bin with the given coarse labels. */
export function writeCifar100(dir: string, train: ImageSet, trainCoarse: Uint8Array, test: ImageSet, testCoarse: Uint8Array): void {
  fs.writeFileSync(path.join(dir, 'train.bin'), cifarBytes(train, trainCoarse));
  fs.writeFileSync(path.join(dir, 'test.bin'), cifarBytes(test, testCoarse));
}
