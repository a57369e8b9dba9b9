// Fuzzes the dataset readers: thousands of seeded mutations and truncations of small valid files.
// Every case must end in a correct load (whose shapes and labels are then valid, and which a
// loader can iterate) or a clean Error with code BNN_IO: never a crash, a hang or another error.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import zlib from 'node:zlib';

import { DataLoader, Dataset, isBnnError, scope, type DatasetName } from '../src/index.js';
import { cifarBytes, idxBytes, idxNames, prng, randomImageSet, tempDir, writeCifar10, writeCifar100, writeIdxSplit } from './support/data-files.js';

interface Target {
  name: string;
  dataset: DatasetName;
  dir: string;
  file: string;
  /** The file's valid content before compression. */
  plain: Buffer;
  gzip: boolean;
  /** Bytes at the start that are a header (mutated more often: that is where lies are told). */
  headerBytes: number;
}

function targets(): Target[] {
  const out: Target[] = [];
  for (const gzip of [false, true]) {
    const set = randomImageSet(4, 1, 5, 6, 10, gzip ? 31 : 32);
    const dir = tempDir(`fuzz-idx${gzip ? '-gz' : ''}`);
    const paths = writeIdxSplit(dir, 'train', set, gzip);
    const names = idxNames('train', gzip);
    out.push({ name: names.images, dataset: 'fashion-mnist', dir, file: paths.images, plain: idxBytes([4, 5, 6], set.pixels), gzip, headerBytes: 16 });
    out.push({ name: names.labels, dataset: 'fashion-mnist', dir, file: paths.labels, plain: idxBytes([4], set.labels), gzip, headerBytes: 8 });
  }
  const c10 = randomImageSet(5, 3, 32, 32, 10, 33);
  const dir10 = tempDir('fuzz-cifar10');
  writeCifar10(dir10, c10, randomImageSet(1, 3, 32, 32, 10, 34));
  out.push({ name: 'data_batch_2.bin', dataset: 'cifar10', dir: dir10, file: path.join(dir10, 'data_batch_2.bin'), plain: cifarBytes({ ...c10, n: 1, pixels: c10.pixels.subarray(3072, 6144), labels: c10.labels.subarray(1, 2) }), gzip: false, headerBytes: 1 });
  const c100 = randomImageSet(3, 3, 32, 32, 100, 35);
  const coarse = new Uint8Array([0, 7, 19]);
  const dir100 = tempDir('fuzz-cifar100');
  writeCifar100(dir100, c100, coarse, c100, coarse);
  out.push({ name: 'train.bin', dataset: 'cifar100', dir: dir100, file: path.join(dir100, 'train.bin'), plain: cifarBytes(c100, coarse), gzip: false, headerBytes: 2 });
  return out;
}

const INTERESTING = [0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff, 47040000, 60000];

function mutate(bytes: Buffer, rand: () => number, headerBytes: number): Buffer {
  const int = (n: number) => Math.floor(rand() * n);
  const at = () => (rand() < 0.5 && headerBytes > 0 ? int(Math.min(headerBytes, bytes.length || 1)) : int(bytes.length || 1));
  const out = Buffer.from(bytes);
  switch (int(7)) {
    case 0: { // flip a few bits or bytes
      const n = 1 + int(4);
      for (let i = 0; i < n && out.length > 0; i++) {
        const p = at();
        out[p] = out[p]! ^ (1 + int(255));
      }
      return out;
    }
    case 1: { // a boundary byte value
      if (out.length > 0) out[at()] = [0x00, 0x01, 0x7f, 0x80, 0xff, 0x0a, 0x64][int(7)]!;
      return out;
    }
    case 2: // truncate
      return out.subarray(0, int(out.length));
    case 3: // append junk
      return Buffer.concat([out, Buffer.from(Array.from({ length: 1 + int(64) }, () => int(256)))]);
    case 4: { // insert junk
      const p = int(out.length + 1);
      return Buffer.concat([out.subarray(0, p), Buffer.from(Array.from({ length: 1 + int(8) }, () => int(256))), out.subarray(p)]);
    }
    case 5: { // delete a range
      const p = int(out.length + 1);
      return Buffer.concat([out.subarray(0, p), out.subarray(p + 1 + int(16))]);
    }
    default: { // an interesting 32-bit word, big-endian, usually over a header field
      if (out.length >= 4) {
        const p = rand() < 0.7 ? 4 * int(Math.max(1, Math.floor(Math.min(headerBytes, out.length) / 4))) : int(out.length - 3);
        out.writeUInt32BE(INTERESTING[int(INTERESTING.length)]! >>> 0, Math.min(p, out.length - 4));
      }
      return out;
    }
  }
}

test('fuzzed dataset files load correctly or fail with BNN_IO', { timeout: 120_000 }, async (t) => {
  const all = targets();
  // BNN_FUZZ_SEED / BNN_FUZZ_CASES explore further (e.g. under AddressSanitizer); CI runs the default.
  const seed = Number(process.env.BNN_FUZZ_SEED ?? 20240611);
  const cases = Number(process.env.BNN_FUZZ_CASES ?? 4000);
  const rand = prng(seed);
  const outcomes = { loaded: 0, rejected: 0 };
  const started = performance.now();
  for (let i = 0; i < cases; i++) {
    const target = all[i % all.length]!;
    // Damage the compressed stream itself, or valid gzip around damaged content.
    const bytes = target.gzip
      ? rand() < 0.5
        ? mutate(zlib.gzipSync(target.plain), rand, 10)
        : zlib.gzipSync(mutate(target.plain, rand, target.headerBytes))
      : mutate(target.plain, rand, target.headerBytes);
    fs.writeFileSync(target.file, bytes);
    const label = `case ${i} (${target.name}, ${bytes.length} bytes)`;
    let ds: Dataset | undefined;
    try {
      ds = await Dataset.load(target.dataset, { root: target.dir });
    } catch (e) {
      assert.ok(e instanceof Error && isBnnError(e), `${label}: not a bnn error: ${String(e)}`);
      assert.equal(e.code, 'BNN_IO', `${label}: ${e.message}`);
      assert.ok(e.message.includes(target.dir), `${label}: the message names the file: ${e.message}`);
      outcomes.rejected++;
    }
    if (ds !== undefined) {
      outcomes.loaded++;
      const [c, h, w] = ds.shape;
      assert.ok(ds.size >= 1 && c >= 1 && h >= 1 && w >= 1, `${label}: ${String(ds)}`);
      scope(() => {
        const images = ds.images();
        assert.deepEqual(images.shape, [ds.size, c, h, w]);
        const labels = ds.labels().toTypedArray();
        assert.equal(labels.length, ds.size);
        for (const l of labels) assert.ok(Number(l) >= 0 && Number(l) < ds.numClasses, `${label}: label ${l}`);
      });
      if (outcomes.loaded % 10 === 1) {
        using loader = new DataLoader(ds, { batchSize: 3, augment: { cropPadding: 2, hflip: true } });
        let samples = 0;
        for await (const batch of loader.epoch(i)) {
          samples += batch.images.shape[0]!;
          batch.dispose();
        }
        assert.equal(samples, ds.size);
      }
      ds.dispose();
    }
    fs.writeFileSync(target.file, target.gzip ? zlib.gzipSync(target.plain) : target.plain);
  }
  const seconds = (performance.now() - started) / 1000;
  t.diagnostic(`seed ${seed}: ${cases} cases in ${seconds.toFixed(1)} s: ${outcomes.loaded} loaded, ${outcomes.rejected} rejected with BNN_IO`);
  assert.ok(outcomes.rejected > cases / 2, 'most mutations are caught');
  assert.ok(outcomes.loaded > 0, 'some mutations (pixel bytes) leave a valid file');
});
