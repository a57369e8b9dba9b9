import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import v8 from 'node:v8';
import vm from 'node:vm';
import zlib from 'node:zlib';

import { cudaAvailable, DataLoader, Dataset, datasetSpec, keep, liveTensorCount, scope, Tensor, type LoaderBatch as Batch } from '../src/index.js';
import {
  cifarBytes,
  idxBytes,
  idxNames,
  randomImageSet,
  sliceSet,
  tempDir,
  writeCifar10,
  writeCifar100,
  writeIdxSplit,
} from './support/data-files.js';
import { assertClose, assertThrowsCode } from './support/helpers.js';

const FASHION_MEAN = 0.286;
const FASHION_STD = 0.353;

/** A Fashion-MNIST-style folder with small random splits, raw or gzipped. */
function idxFolder(gzip: boolean, train = randomImageSet(12, 1, 6, 5, 10, 1), testSet = randomImageSet(5, 1, 6, 5, 10, 2)) {
  const dir = tempDir(gzip ? 'idx-gz' : 'idx');
  writeIdxSplit(dir, 'train', train, gzip);
  writeIdxSplit(dir, 'test', testSet, gzip);
  return { dir, train, test: testSet };
}

function bytesOf(t: Tensor): Uint8Array {
  const data = t.toTypedArray();
  assert.ok(data instanceof Uint8Array);
  return data;
}

function labelsOf(t: Tensor): number[] {
  const data = t.toTypedArray();
  assert.ok(data instanceof BigInt64Array);
  return Array.from(data, Number);
}

async function assertIoError(promise: Promise<unknown>, message: RegExp): Promise<void> {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(e instanceof Error, `expected an Error, got ${String(e)}`);
    assert.equal((e as { code?: string }).code, 'BNN_IO', `code of: ${e.message}`);
    assert.match(e.message, message);
    return true;
  });
}

/** Collects every batch of an epoch as plain arrays, disposing the tensors. */
async function collect(loader: DataLoader, epoch: number, startBatch = 0): Promise<{ images: Float32Array; labels: number[]; index: number; shape: number[] }[]> {
  const out = [];
  for await (const batch of loader.epoch(epoch, { startBatch })) {
    out.push({ images: batch.images.toFloat32Array(), labels: labelsOf(batch.labels), index: batch.index, shape: batch.images.shape });
    batch.dispose();
  }
  return out;
}

/** A dataset whose sample i has every pixel equal to i + 1 (so batches reveal their indices). */
function indexedDataset(n: number, c = 1, h = 2, w = 2, classes = 10): Dataset {
  const per = c * h * w;
  const pixels = new Uint8Array(n * per);
  for (let i = 0; i < n; i++) pixels.fill((i + 1) % 256, i * per, (i + 1) * per);
  const labels = Array.from({ length: n }, (_, i) => i % classes);
  return scope(() =>
    Dataset.fromTensors(Tensor.fromArray(pixels, [n, c, h, w]), Tensor.fromArray(labels, [n], { dtype: 'int64' }), { numClasses: classes }),
  );
}

// ---- readers ------------------------------------------------------------------------------

for (const gzip of [false, true]) {
  test(`IDX ${gzip ? 'gzipped' : 'raw'}: shapes, pixels, labels and dataset facts`, async () => {
    const { dir, train, test: testSet } = idxFolder(gzip);
    for (const [split, set] of [['train', train], ['test', testSet]] as const) {
      using ds = await Dataset.load('fashion-mnist', { root: dir, split });
      assert.equal(ds.size, set.n);
      assert.deepEqual(ds.shape, [1, 6, 5]);
      assert.equal(ds.name, 'fashion-mnist');
      assert.equal(ds.numClasses, 10);
      assert.equal(ds.classNames[0], 'T-shirt/top');
      assert.equal(ds.classNames[9], 'Ankle boot');
      assertClose(ds.mean, [FASHION_MEAN]);
      assertClose(ds.std, [FASHION_STD]);
      scope(() => {
        const images = ds.images();
        assert.deepEqual(images.shape, [set.n, 1, 6, 5]);
        assert.equal(images.dtype, 'uint8');
        assert.deepEqual(bytesOf(images), set.pixels);
        const labels = ds.labels();
        assert.equal(labels.dtype, 'int64');
        assert.deepEqual(labelsOf(labels), Array.from(set.labels));
      });
    }
  });
}

test('compression is detected from the content, not the file name', async () => {
  const set = randomImageSet(4, 1, 3, 3, 10, 3);
  const dir = tempDir('idx-misnamed');
  const names = idxNames('train', true);
  // Raw bytes under .gz names, as browsers leave MNIST downloads.
  fs.writeFileSync(path.join(dir, names.images), idxBytes([4, 3, 3], set.pixels));
  fs.writeFileSync(path.join(dir, names.labels), idxBytes([4], set.labels));
  using ds = await Dataset.load('mnist', { root: dir });
  assert.equal(ds.size, 4);
  assert.equal(ds.classNames[3], '3');
  assertClose(ds.mean, [0.1307]);
  assertClose(ds.std, [0.3081]);
  scope(() => assert.deepEqual(bytesOf(ds.images()), set.pixels));
});

test('a gzip file of several members is read whole', async () => {
  const set = randomImageSet(6, 1, 4, 4, 10, 4);
  const dir = tempDir('idx-members');
  const names = idxNames('train', true);
  const images = idxBytes([6, 4, 4], set.pixels);
  fs.writeFileSync(path.join(dir, names.images), Buffer.concat([zlib.gzipSync(images.subarray(0, 30)), zlib.gzipSync(images.subarray(30))]));
  fs.writeFileSync(path.join(dir, names.labels), zlib.gzipSync(idxBytes([6], set.labels)));
  using ds = await Dataset.load('fashion-mnist', { root: dir });
  scope(() => assert.deepEqual(bytesOf(ds.images()), set.pixels));
});

test('limit keeps the first N samples', async () => {
  const { dir, train } = idxFolder(true);
  using ds = await Dataset.load('fashion-mnist', { root: dir, limit: 5 });
  assert.equal(ds.size, 5);
  scope(() => {
    assert.deepEqual(bytesOf(ds.images()), sliceSet(train, 0, 5).pixels);
    assert.deepEqual(labelsOf(ds.labels()), Array.from(train.labels.subarray(0, 5)));
  });
  using all = await Dataset.load('fashion-mnist', { root: dir, limit: 1000 });
  assert.equal(all.size, train.n, 'a limit above the size keeps everything');
  using first = all.take(3);
  assert.equal(first.size, 3);
});

test('CIFAR-10: five train batches in order, test batch, nested archive folder', async () => {
  const train = randomImageSet(10, 3, 32, 32, 10, 5);
  const testSet = randomImageSet(3, 3, 32, 32, 10, 6);
  const root = tempDir('cifar10');
  const dir = path.join(root, 'cifar-10-batches-bin');
  fs.mkdirSync(dir);
  writeCifar10(dir, train, testSet);
  using ds = await Dataset.load('cifar10', { root });
  assert.equal(ds.size, 10);
  assert.deepEqual(ds.shape, [3, 32, 32]);
  assert.equal(ds.numClasses, 10);
  assert.deepEqual(ds.classNames, ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck']);
  assertClose(ds.mean, [0.4914, 0.4822, 0.4465]);
  assertClose(ds.std, [0.247, 0.2435, 0.2616]);
  scope(() => {
    assert.deepEqual(bytesOf(ds.images()), train.pixels);
    assert.deepEqual(labelsOf(ds.labels()), Array.from(train.labels));
  });
  using t = await Dataset.load('cifar10', { root: dir, split: 'test' });
  assert.equal(t.size, 3);
  scope(() => assert.deepEqual(labelsOf(t.labels()), Array.from(testSet.labels)));
});

test('CIFAR-100: fine labels are used, 100 classes', async () => {
  const train = randomImageSet(4, 3, 32, 32, 100, 7);
  const testSet = randomImageSet(2, 3, 32, 32, 100, 8);
  const dir = tempDir('cifar100');
  writeCifar100(dir, train, new Uint8Array([0, 19, 5, 7]), testSet, new Uint8Array([1, 2]));
  using ds = await Dataset.load('cifar100', { root: dir });
  assert.equal(ds.numClasses, 100);
  assert.equal(ds.classNames[0], 'apple');
  assert.equal(ds.classNames[99], 'worm');
  assertClose(ds.mean, [0.5071, 0.4865, 0.4409]);
  assertClose(ds.std, [0.2673, 0.2564, 0.2762]);
  scope(() => {
    assert.deepEqual(labelsOf(ds.labels()), Array.from(train.labels));
    assert.deepEqual(bytesOf(ds.images()), train.pixels);
  });
  using t = await Dataset.load('cifar100', { root: dir, split: 'test' });
  assert.equal(t.size, 2);
});

test('the catalogue knows every named dataset', () => {
  assert.deepEqual(datasetSpec('fashion-mnist').shape, [1, 28, 28]);
  assert.equal(datasetSpec('fashion-mnist').defaultRoot, '/usr/share/datasets/fashion-mnist');
  assert.deepEqual(datasetSpec('cifar100').shape, [3, 32, 32]);
  assert.equal(datasetSpec('cifar100').classNames.length, 100);
  assert.equal(new Set(datasetSpec('cifar100').classNames).size, 100);
  assert.equal(datasetSpec('mnist').defaultRoot, undefined);
  assertThrowsCode(() => datasetSpec('imagenet' as never), RangeError, 'BNN_INVALID_ARGUMENT', /unknown dataset 'imagenet'/);
});

// ---- readers never trust a file --------------------------------------------------------------

/** Writes a valid small IDX train split, then replaces one file with `bytes`. */
function idxWith(which: 'images' | 'labels', bytes: Buffer, gzip = false): string {
  const { dir } = idxFolder(gzip, randomImageSet(3, 1, 4, 5, 10, 9));
  fs.writeFileSync(path.join(dir, idxNames('train', gzip)[which]), bytes);
  return dir;
}

test('IDX errors name the file and what is wrong', async () => {
  const set = randomImageSet(3, 1, 4, 5, 10, 10);
  const good = idxBytes([3, 4, 5], set.pixels);
  const load = (dir: string) => Dataset.load('fashion-mnist', { root: dir });

  await assertIoError(load(idxWith('images', good.subarray(0, 16 + 10))),
    /train-images-idx3-ubyte: truncated: header says 3x4x5 = 60 bytes of pixels but only 10 follow/);
  await assertIoError(load(idxWith('images', zlib.gzipSync(good.subarray(0, 16 + 10)), true)),
    /train-images-idx3-ubyte\.gz: truncated: header says 3x4x5 = 60 bytes of pixels but only 10 follow/);
  await assertIoError(load(idxWith('images', Buffer.concat([good, Buffer.from([1, 2])]))), /train-images-idx3-ubyte: header says 3x4x5 = 60 bytes of pixels but 62 follow \(2 unexpected bytes\)/);
  await assertIoError(load(idxWith('images', zlib.gzipSync(Buffer.concat([good, Buffer.from([1, 2])])), true)), /decompresses to more than the 60 bytes of pixels/);
  const badMagic = Buffer.from(good);
  badMagic[0] = 0x12;
  await assertIoError(load(idxWith('images', badMagic)), /not an IDX file: magic number 0x12000803/);
  const floatType = Buffer.from(good);
  floatType[2] = 0x0d;
  await assertIoError(load(idxWith('images', floatType)), /element type 0x0d \(float32\) is not supported/);
  await assertIoError(load(idxWith('images', idxBytes([3, 20], set.pixels))), /IDX header has 2 dimensions, expected 3/);
  await assertIoError(load(idxWith('images', idxBytes([3, 0, 5], new Uint8Array()))), /rows = 0/);
  await assertIoError(load(idxWith('images', good.subarray(0, 3))), /too short for an IDX file/);
  await assertIoError(load(idxWith('images', good.subarray(0, 9))), /truncated IDX header/);
  await assertIoError(load(idxWith('labels', idxBytes([3], new Uint8Array([1, 10, 2])))),
    /train-labels-idx1-ubyte: label 10 at index 1 is out of range: 10 classes \(0\.\.9\)/);
  await assertIoError(load(idxWith('labels', idxBytes([2], new Uint8Array([1, 2])))), /holds 3 images but .*train-labels-idx1-ubyte holds 2 labels/);
  await assertIoError(load(idxWith('labels', idxBytes([3], new Uint8Array([1, 2, 3])).subarray(0, 10))), /train-labels-idx1-ubyte: truncated: header says 3 = 3 bytes of labels but only 2 follow/);
});

test('gzip damage and decompression bombs are clean errors', async () => {
  const set = randomImageSet(3, 1, 4, 5, 10, 11);
  const gz = zlib.gzipSync(idxBytes([3, 4, 5], set.pixels));
  const load = (dir: string) => Dataset.load('fashion-mnist', { root: dir });

  await assertIoError(load(idxWith('images', gz.subarray(0, gz.length - 6), true)), /train-images-idx3-ubyte\.gz: truncated gzip file/);
  const corrupt = Buffer.from(gz);
  corrupt[gz.length - 8] = corrupt[gz.length - 8]! ^ 0xff; // the CRC-32
  await assertIoError(load(idxWith('images', corrupt, true)), /train-images-idx3-ubyte\.gz: corrupt gzip data \(incorrect data check\)/);
  const garbage = Buffer.concat([gz, Buffer.from('junk')]);
  await assertIoError(load(idxWith('images', garbage, true)), /4 bytes of trailing garbage/);
  const badDeflate = Buffer.from(gz);
  for (let i = 10; i < 20; i++) badDeflate[i] = 0xff;
  await assertIoError(load(idxWith('images', badDeflate, true)), /train-images-idx3-ubyte\.gz: (corrupt gzip data|truncated)/);

  // A header that claims far more than the compressed stream could ever hold: rejected before allocating.
  const liar = zlib.gzipSync(idxBytes([60000, 28, 28], new Uint8Array(100)));
  await assertIoError(load(idxWith('images', liar, true)), /header says 60000x28x28 = 47040000 bytes of pixels, more than its \d+-byte gzip stream can hold/);
  // A small header over a stream that inflates to 64 MiB: reading stops right after what the header announced.
  const bomb = zlib.gzipSync(Buffer.concat([idxBytes([3, 4, 5], set.pixels), Buffer.alloc(64 << 20)]));
  assert.ok(bomb.length < 100_000);
  await assertIoError(load(idxWith('images', bomb, true)), /decompresses to more than the 60 bytes of pixels the header announces/);
});

test('missing folders and files say where they looked', async () => {
  await assertIoError(Dataset.load('fashion-mnist', { root: '/nonexistent/bnn' }), /dataset folder \/nonexistent\/bnn does not exist/);
  const dir = tempDir('empty');
  await assertIoError(Dataset.load('fashion-mnist', { root: dir }), /neither train-images-idx3-ubyte nor train-images-idx3-ubyte\.gz is there/);
  await assertIoError(Dataset.load('cifar10', { root: dir }), /data_batch_1\.bin is not there \(nor in cifar-10-batches-bin\/\)/);
  fs.mkdirSync(path.join(dir, 'train-images-idx3-ubyte'));
  fs.writeFileSync(path.join(dir, 'train-labels-idx1-ubyte'), idxBytes([1], new Uint8Array([0])));
  await assertIoError(Dataset.load('fashion-mnist', { root: dir }), /train-images-idx3-ubyte: is a folder, not a file/);
  await assert.rejects(Dataset.load('cifar10'), (e: Error & { code?: string }) => e.code === 'BNN_INVALID_ARGUMENT' && /no default folder/.test(e.message));
});

test('CIFAR errors: partial records, labels out of range, compressed batches', async () => {
  const train = randomImageSet(5, 3, 32, 32, 10, 12);
  const dir = tempDir('cifar-bad');
  writeCifar10(dir, train, sliceSet(train, 0, 1));
  const file = path.join(dir, 'data_batch_3.bin');
  const good = fs.readFileSync(file);
  fs.writeFileSync(file, good.subarray(0, 3000));
  await assertIoError(Dataset.load('cifar10', { root: dir }), /data_batch_3\.bin: 3000 bytes is not a whole number of 3073-byte records \(0 records and 3000 bytes over\)/);
  fs.writeFileSync(file, Buffer.alloc(0));
  await assertIoError(Dataset.load('cifar10', { root: dir }), /data_batch_3\.bin: is empty/);
  const badLabel = Buffer.from(good);
  badLabel[0] = 10;
  fs.writeFileSync(file, badLabel);
  await assertIoError(Dataset.load('cifar10', { root: dir }), /data_batch_3\.bin: label 10 in record 0 is out of range: cifar10 has 10 classes \(0\.\.9\)/);
  fs.writeFileSync(file, zlib.gzipSync(good));
  await assertIoError(Dataset.load('cifar10', { root: dir }), /data_batch_3\.bin: is gzip-compressed/);

  const dir100 = tempDir('cifar100-bad');
  const set = randomImageSet(2, 3, 32, 32, 100, 13);
  writeCifar100(dir100, set, new Uint8Array([3, 20]), set, new Uint8Array([0, 0]));
  await assertIoError(Dataset.load('cifar100', { root: dir100 }), /train\.bin: coarse label 20 in record 1 is out of range/);
  fs.writeFileSync(path.join(dir100, 'train.bin'), cifarBytes({ ...set, labels: new Uint8Array([100, 0]) }, new Uint8Array([0, 0])));
  await assertIoError(Dataset.load('cifar100', { root: dir100 }), /train\.bin: label 100 in record 0 is out of range: cifar100 has 100 classes/);
});

test('datasets from tensors are validated', () => {
  scope(() => {
    const images = Tensor.zeros([4, 1, 2, 2], { dtype: 'uint8' });
    const labels = Tensor.fromArray([0, 1, 2, 1], [4], { dtype: 'int64' });
    using ds = Dataset.fromTensors(images, labels);
    assert.equal(ds.numClasses, 3);
    assert.equal(ds.name, 'custom');
    assert.deepEqual(ds.mean, [0]);
    assertThrowsCode(() => Dataset.fromTensors(Tensor.zeros([4, 1, 2, 2]), labels), TypeError, 'BNN_INVALID_TYPE', /uint8/);
    assertThrowsCode(() => Dataset.fromTensors(images, labels, { numClasses: 2 }), RangeError, 'BNN_INVALID_ARGUMENT', /label 2 at index 2 is out of range for 2 classes/);
    assertThrowsCode(() => Dataset.fromTensors(images, Tensor.fromArray([0, 1], [2], { dtype: 'int64' })), RangeError, 'BNN_INVALID_ARGUMENT', /\[N\] with N = 4/);
    assertThrowsCode(() => Dataset.fromTensors(Tensor.zeros([4, 4], { dtype: 'uint8' }), labels), RangeError, 'BNN_INVALID_ARGUMENT', /\[N, C, H, W\]/);
    assertThrowsCode(() => Dataset.fromTensors(images, labels, { std: [0] }), RangeError, 'BNN_INVALID_ARGUMENT', /std finite and positive/);
  });
});

// ---- splits -------------------------------------------------------------------------------

test('validation split: deterministic by seed, disjoint, order kept', () => {
  using ds = indexedDataset(50);
  const ids = (d: Dataset) => scope(() => Array.from(bytesOf(d.images())).filter((_, i) => i % 4 === 0).map((v) => v - 1));
  const a = ds.splitValidation({ size: 10, seed: 7 });
  const b = ds.splitValidation({ size: 10, seed: 7 });
  const c = ds.splitValidation({ fraction: 0.2, seed: 8 });
  try {
    assert.equal(a.train.size, 40);
    assert.equal(a.validation.size, 10);
    assert.deepEqual(ids(a.validation), ids(b.validation));
    assert.deepEqual(ids(a.train), ids(b.train));
    assert.notDeepEqual(ids(a.validation), ids(c.validation), 'another seed gives another split');
    assert.equal(c.validation.size, 10);
    const all = [...ids(a.train), ...ids(a.validation)].sort((x, y) => x - y);
    assert.deepEqual(all, Array.from({ length: 50 }, (_, i) => i), 'disjoint and complete');
    const v = ids(a.validation);
    assert.deepEqual(v, [...v].sort((x, y) => x - y), 'validation keeps dataset order');
    scope(() => assert.deepEqual(labelsOf(a.validation.labels()), v.map((i) => i % 10), 'labels travel with their images'));
    assert.equal(a.validation.name, 'custom');
  } finally {
    for (const s of [a, b, c]) {
      s.train.dispose();
      s.validation.dispose();
    }
  }
  assertThrowsCode(() => ds.splitValidation({ size: 50 }), RangeError, 'BNN_INVALID_ARGUMENT', /between 1 and 49/);
  assertThrowsCode(() => ds.splitValidation({ fraction: 1.5 }), RangeError, 'BNN_INVALID_ARGUMENT');
  assertThrowsCode(() => ds.splitValidation({}), TypeError, 'BNN_INVALID_TYPE');
});

// ---- loader -------------------------------------------------------------------------------

test('shuffling is a seeded function of (seed, epoch)', () => {
  using ds = indexedDataset(100);
  using a = new DataLoader(ds, { seed: 3 });
  using b = new DataLoader(ds, { seed: 3 });
  using other = new DataLoader(ds, { seed: 4 });
  const e0 = a.epochOrder(0);
  assert.deepEqual(e0, b.epochOrder(0));
  assert.deepEqual(a.epochOrder(5), b.epochOrder(5));
  assert.notDeepEqual(e0, a.epochOrder(1), 'a new order every epoch');
  assert.notDeepEqual(e0, other.epochOrder(0), 'a new order for another seed');
  assert.deepEqual([...e0].sort((x, y) => x - y), Array.from({ length: 100 }, (_, i) => i), 'a permutation');
  using plain = new DataLoader(ds, { shuffle: false });
  assert.deepEqual(Array.from(plain.epochOrder(9)), Array.from({ length: 100 }, (_, i) => i));
});

test('batches follow the epoch order, with the right sizes and types', async () => {
  using ds = indexedDataset(10);
  using loader = new DataLoader(ds, { batchSize: 4, seed: 11, normalize: false });
  assert.equal(loader.batchesPerEpoch, 3);
  const order = Array.from(loader.epochOrder(2));
  const batches = await collect(loader, 2);
  assert.deepEqual(batches.map((b) => b.shape), [[4, 1, 2, 2], [4, 1, 2, 2], [2, 1, 2, 2]]);
  assert.deepEqual(batches.map((b) => b.index), [0, 1, 2]);
  const seen = batches.flatMap((b) => Array.from(b.images.filter((_, i) => i % 4 === 0), (v) => Math.round(v * 255) - 1));
  assert.deepEqual(seen, order);
  assert.deepEqual(batches.flatMap((b) => b.labels), order.map((i) => i % 10));

  using dropping = new DataLoader(ds, { batchSize: 4, dropLast: true });
  assert.equal(dropping.batchesPerEpoch, 2);
  assert.deepEqual((await collect(dropping, 0)).map((b) => b.shape[0]), [4, 4]);
  using big = new DataLoader(ds, { batchSize: 32, dropLast: true });
  assert.equal(big.batchesPerEpoch, 0);
  assert.deepEqual(await collect(big, 0), []);

  using evalLoader = DataLoader.forEval(ds, { batchSize: 3 });
  assert.equal(evalLoader.options.shuffle, false);
  assert.deepEqual(evalLoader.options.augment, { cropPadding: 0, hflip: false, rotation: 0 });
  const evalBatches = await collect(evalLoader, 0);
  assert.deepEqual(evalBatches.map((b) => b.shape[0]), [3, 3, 3, 1]);
  assert.deepEqual(evalBatches.flatMap((b) => b.labels), Array.from({ length: 10 }, (_, i) => i));
});

test('normalisation: (v/255 - mean) / std per channel, or v/255', async () => {
  const set = randomImageSet(3, 3, 4, 4, 10, 14);
  using ds = scope(() =>
    Dataset.fromTensors(Tensor.fromArray(set.pixels, [3, 3, 4, 4]), Tensor.fromArray(Array.from(set.labels), [3], { dtype: 'int64' }), {
      numClasses: 10,
      mean: [0.4914, 0.4822, 0.4465],
      std: [0.247, 0.2435, 0.2616],
    }),
  );
  const expected = (mean: number[], std: number[]) =>
    Array.from(set.pixels, (v, i) => {
      const c = Math.floor(i / 16) % 3;
      return (Math.fround(v / 255) - mean[c]!) / std[c]!;
    });
  using normalized = DataLoader.forEval(ds, { batchSize: 8 });
  assertClose((await collect(normalized, 0))[0]!.images, expected([0.4914, 0.4822, 0.4465], [0.247, 0.2435, 0.2616]), { rtol: 1e-5, atol: 1e-5 });
  using raw = DataLoader.forEval(ds, { batchSize: 8, normalize: false });
  assertClose((await collect(raw, 0))[0]!.images, Array.from(set.pixels, (v) => v / 255), { atol: 1e-7 });
  using custom = DataLoader.forEval(ds, { batchSize: 8, normalize: { mean: [0.5, 0.5, 0.5], std: [0.25, 0.5, 1] } });
  assertClose((await collect(custom, 0))[0]!.images, expected([0.5, 0.5, 0.5], [0.25, 0.5, 1]), { atol: 1e-5 });
  assertThrowsCode(() => DataLoader.forEval(ds, { normalize: { mean: [0.5], std: [1] } }), RangeError, 'BNN_INVALID_ARGUMENT', /one value per channel \(3\)/);
});

/** The reference transform: crop window shifted by (dy, dx) with zero fill, then mirrored if flip. */
function transformed(img: Uint8Array, h: number, w: number, dy: number, dx: number, flip: boolean): number[] {
  const out: number[] = [];
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const sy = y + dy;
      const sx = (flip ? w - 1 - x : x) + dx;
      out.push(sy >= 0 && sy < h && sx >= 0 && sx < w ? img[sy * w + sx]! : 0);
    }
  }
  return out;
}

test('flip maps column j to W-1-j; crop with padding shifts and zero-fills', async () => {
  const h = 5;
  const w = 6;
  const img = Uint8Array.from({ length: h * w }, (_, i) => i + 1); // every pixel distinct and non-zero
  using ds = scope(() => Dataset.fromTensors(Tensor.fromArray(img, [1, 1, h, w]), Tensor.fromArray([0], [1], { dtype: 'int64' })));
  const pixels = (b: { images: Float32Array }) => Array.from(b.images, (v) => Math.round(v * 255));

  using flipOnly = new DataLoader(ds, { normalize: false, augment: { hflip: true }, seed: 1 });
  const flips = new Set<boolean>();
  for (let e = 0; e < 40; e++) {
    const got = pixels((await collect(flipOnly, e))[0]!);
    const flipped = transformed(img, h, w, 0, 0, true);
    assert.ok(got.join() === Array.from(img).join() || got.join() === flipped.join(), `epoch ${e}: neither the image nor its mirror`);
    const mirrored = got.join() === flipped.join();
    flips.add(mirrored);
    if (mirrored) {
      for (let y = 0; y < h; y++) for (let j = 0; j < w; j++) assert.equal(got[y * w + j], img[y * w + (w - 1 - j)]);
    }
  }
  assert.equal(flips.size, 2, 'both outcomes occur');

  for (const flip of [false, true]) {
    using crop = new DataLoader(ds, { normalize: false, augment: { cropPadding: 2, hflip: flip }, seed: 2 });
    const shifts = new Set<string>();
    for (let e = 0; e < 150; e++) {
      const got = pixels((await collect(crop, e))[0]!).join();
      let match: string | undefined;
      for (let dy = -2; dy <= 2 && match === undefined; dy++) {
        for (let dx = -2; dx <= 2 && match === undefined; dx++) {
          for (const f of flip ? [false, true] : [false]) {
            if (transformed(img, h, w, dy, dx, f).join() === got) match = `${dy},${dx},${f}`;
          }
        }
      }
      assert.ok(match !== undefined, `epoch ${e}: not a padded crop${flip ? ' (possibly mirrored)' : ''} of the image: ${got}`);
      shifts.add(match);
    }
    assert.ok(shifts.size >= (flip ? 30 : 20), `crops vary (${shifts.size} distinct)`);
  }

  // Padding is pixel value 0, which normalises to -mean/std.
  using normalized = new DataLoader(ds, { normalize: { mean: [0.5], std: [0.25] }, augment: { cropPadding: 3 }, seed: 5 });
  let sawPadding = false;
  for (let e = 0; e < 10; e++) {
    const values = (await collect(normalized, e))[0]!.images;
    for (const v of values) {
      if (Math.abs(v - -2) < 1e-6) sawPadding = true;
      else assert.ok(v > -2, `value ${v} is neither padding nor a pixel`);
    }
  }
  assert.ok(sawPadding);
});

test('augmentation and order are reproducible, and a resumed epoch matches the full run', async () => {
  using ds = indexedDataset(37, 3, 6, 6);
  const options = { batchSize: 8, seed: 21, augment: { cropPadding: 2, hflip: true } };
  using a = new DataLoader(ds, options);
  using b = new DataLoader(ds, { ...options, prefetch: 1 });
  const full = await collect(a, 3);
  assert.deepEqual(await collect(b, 3), full, 'same seed and epoch, same batches');
  assert.notDeepEqual((await collect(a, 4))[0]!.images, full[0]!.images, 'another epoch differs');
  const resumed = await collect(b, 3, 2);
  assert.deepEqual(resumed.map((r) => r.index), [2, 3, 4]);
  assert.deepEqual(resumed, full.slice(2), 'resume at batch 2 = batches 2.. of the full run');
  assert.deepEqual(await collect(a, 3, a.batchesPerEpoch), []);
  assertThrowsCode(() => a.epoch(3, { startBatch: 6 }), RangeError, 'BNN_INVALID_ARGUMENT', /startBatch must be between 0 and 5/);
});

test('breaking out of an epoch stops it cleanly; dispose closes open epochs', async () => {
  using ds = indexedDataset(200, 1, 8, 8);
  using loader = new DataLoader(ds, { batchSize: 4, prefetch: 2 });
  const before = liveTensorCount();
  const threads = threadCount();
  const pass = loader.epoch(0);
  let n = 0;
  for await (const batch of pass) {
    batch.dispose();
    if (++n === 3) break;
  }
  assert.equal(n, 3);
  assert.equal(pass.isClosed, true);
  assert.equal(threadCount(), threads, 'break joined the producer thread');
  assert.deepEqual(await pass.next(), { done: true, value: undefined });
  assert.equal(liveTensorCount(), before, 'no batch tensors left behind');

  // Throwing out of the loop closes it too.
  const thrown = loader.epoch(1);
  await assert.rejects(async () => {
    for await (const batch of thrown) {
      batch.dispose();
      throw new Error('stop');
    }
  }, /stop/);
  assert.equal(thrown.isClosed, true);

  // Many started-and-abandoned epochs: threads are stopped and joined, nothing hangs.
  for (let i = 0; i < 50; i++) {
    const e = loader.epoch(i);
    const first = await e.next();
    assert.equal(first.done, false);
    if (!first.done) first.value.dispose();
    await e.return();
  }
  const open = loader.epoch(2);
  const first = await open.next();
  if (!first.done) first.value.dispose();
  loader.dispose();
  assert.equal(open.isClosed, true);
  assertThrowsCode(() => loader.epoch(0), Error, 'BNN_DISPOSED');
  assert.equal(liveTensorCount(), before);
});

/** Threads of this process (Linux), to see background producers come and go. */
function threadCount(): number {
  return fs.readdirSync('/proc/self/task').length;
}

test('epochs abandoned without close are stopped by the garbage collector', { skip: fs.existsSync('/proc/self/task') ? false : 'needs /proc' }, async () => {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  using ds = indexedDataset(64, 1, 8, 8);
  using loader = new DataLoader(ds, { batchSize: 4, prefetch: 1 });
  const baseline = threadCount();
  await (async () => {
    for (let i = 0; i < 8; i++) {
      const pass = loader.epoch(i);
      const first = await pass.next(); // starts the producer, which then waits with one batch ready
      if (!first.done) first.value.dispose();
    }
  })();
  assert.ok(threadCount() >= baseline + 8, `8 producers are waiting (${threadCount()} threads, baseline ${baseline})`);
  for (let i = 0; i < 20 && threadCount() > baseline; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(threadCount(), baseline, 'the finalizers stopped and joined every producer');
});

test('batches can be consumed inside scope, and keep() moves them out', async () => {
  using ds = indexedDataset(16);
  using loader = new DataLoader(ds, { batchSize: 8 });
  const before = liveTensorCount();
  let kept: Batch | undefined;
  await scope(async () => {
    for await (const batch of loader.epoch(0)) {
      if (batch.index === 1) kept = batch;
    }
    keep(kept);
  });
  assert.equal(liveTensorCount(), before + 2, 'only the kept batch survives the scope');
  kept!.dispose();
  assert.equal(liveTensorCount(), before);
});

test('a loader keeps its data alive after the dataset is disposed', async () => {
  const ds = indexedDataset(9);
  const loader = new DataLoader(ds, { batchSize: 9, shuffle: false, normalize: false });
  ds.dispose();
  assertThrowsCode(() => ds.images(), Error, 'BNN_DISPOSED');
  const [batch] = await collect(loader, 0);
  assert.equal(Math.round(batch!.images[0]! * 255), 1);
  loader.dispose();
  loader.dispose();
});

test('loader options are checked', () => {
  using ds = indexedDataset(4);
  assertThrowsCode(() => new DataLoader(ds, { batchSize: 0 }), RangeError, 'BNN_INVALID_ARGUMENT', /batchSize/);
  assertThrowsCode(() => new DataLoader(ds, { batchSize: 1.5 }), TypeError, 'BNN_INVALID_TYPE', /batchSize/);
  assertThrowsCode(() => new DataLoader(ds, { seed: -1 }), RangeError, 'BNN_INVALID_ARGUMENT', /seed/);
  assertThrowsCode(() => new DataLoader(ds, { prefetch: 0 }), RangeError, 'BNN_INVALID_ARGUMENT', /prefetch/);
  assertThrowsCode(() => new DataLoader(ds, { augment: { cropPadding: -1 } }), RangeError, 'BNN_INVALID_ARGUMENT', /cropPadding/);
  assertThrowsCode(() => new DataLoader(ds, { shuffle: 'yes' as never }), TypeError, 'BNN_INVALID_TYPE', /shuffle/);
  assertThrowsCode(() => new DataLoader(ds, { device: 'tpu' as never }), RangeError, 'BNN_INVALID_ARGUMENT', /unknown device/);
  assertThrowsCode(() => new DataLoader({} as Dataset), TypeError, 'BNN_INVALID_TYPE', /Dataset/);
  using loader = new DataLoader(ds);
  assertThrowsCode(() => loader.epochOrder(-1), RangeError, 'BNN_INVALID_ARGUMENT', /epoch/);
});

test('CUDA batches arrive on the device (or CUDA is refused clearly)', { timeout: 60_000 }, async () => {
  using ds = indexedDataset(20, 3, 8, 8);
  if (!cudaAvailable()) {
    assertThrowsCode(() => new DataLoader(ds, { device: 'cuda' }), Error, 'BNN_CUDA_UNAVAILABLE');
    return;
  }
  using cpu = new DataLoader(ds, { batchSize: 8, seed: 1, augment: { cropPadding: 1, hflip: true } });
  using gpu = new DataLoader(ds, { batchSize: 8, seed: 1, augment: { cropPadding: 1, hflip: true }, device: 'cuda' });
  const expected = await collect(cpu, 0);
  let i = 0;
  for await (const batch of gpu.epoch(0)) {
    assert.equal(batch.images.device, 'cuda:0');
    assert.equal(batch.labels.device, 'cuda:0');
    assert.deepEqual(batch.images.toFloat32Array(), expected[i]!.images);
    assert.deepEqual(labelsOf(batch.labels), expected[i]!.labels);
    batch.dispose();
    i++;
  }
  assert.equal(i, expected.length);
});

// ---- the real Fashion-MNIST, when installed (Debian package dataset-fashion-mnist) --------------

const FASHION_ROOT = '/usr/share/datasets/fashion-mnist';
const haveFashion = fs.existsSync(path.join(FASHION_ROOT, 'train-images-idx3-ubyte.gz'));

test('real Fashion-MNIST: counts, balanced labels, pixel checksums', { skip: haveFashion ? false : `${FASHION_ROOT} is not installed` }, async () => {
  // Checksums computed once with Python/numpy from the raw files: sum(p) and sum(p * (i % 65521 + 1)).
  const expected = {
    train: { n: 60000, perClass: 6000, sum: 3431114169, weighted: 112463966970509, first: [9, 0, 0, 3, 0, 2, 7, 2, 5, 5] },
    test: { n: 10000, perClass: 1000, sum: 573469082, weighted: 18731464165863, first: [9, 2, 1, 1, 6, 1, 4, 6, 5, 7] },
  } as const;
  for (const split of ['train', 'test'] as const) {
    const want = expected[split];
    using ds = await Dataset.load('fashion-mnist', { split });
    assert.equal(ds.size, want.n);
    assert.deepEqual(ds.shape, [1, 28, 28]);
    scope(() => {
      const labels = labelsOf(ds.labels());
      const histogram = new Array<number>(10).fill(0);
      for (const l of labels) histogram[l]!++;
      assert.deepEqual(histogram, new Array<number>(10).fill(want.perClass));
      assert.deepEqual(labels.slice(0, 10), want.first);
      const pixels = bytesOf(ds.images());
      let sum = 0;
      let weighted = 0;
      for (let i = 0; i < pixels.length; i++) {
        sum += pixels[i]!;
        weighted += pixels[i]! * ((i % 65521) + 1);
      }
      assert.equal(sum, want.sum);
      assert.equal(weighted, want.weighted);
    });
  }
});

test('random rotation: its own draw (crops and flips unchanged), about the centre, filled with 0, repeatable', async () => {
  // Odd-sized constant images: rotation about the centre keeps the centre pixel, so with rotation
  // on the centre must equal the rotation-off sample's (same crop and flip); corners turn to the
  // fill value (0, normalised) whenever the angle is not tiny.
  const n = 64, c = 1, h = 15, w = 15;
  const pixels = new Uint8Array(n * c * h * w);
  for (let i = 0; i < n; i++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) pixels[(i * h + y) * w + x] = 100 + ((x + 2 * y + i) % 50);
  const labels = Array.from({ length: n }, (_, i) => i % 2);
  using ds = Dataset.fromTensors(Tensor.fromArray(pixels, [n, c, h, w]), Tensor.fromArray(labels, [n], { dtype: 'int64' }));
  const epochPixels = async (rotation: number): Promise<Float32Array> => {
    using loader = new DataLoader(ds, { batchSize: n, seed: 7, normalize: false, augment: { cropPadding: 2, hflip: true, rotation } });
    for await (const b of loader.epoch(3)) {
      const out = b.images.toFloat32Array();
      b.dispose();
      return out;
    }
    throw new Error('no batch');
  };
  const plain = await epochPixels(0);
  const rotated = await epochPixels(30);
  assert.deepEqual(await epochPixels(30), rotated, 'the same seed gives the same rotations');
  let cornersFilled = 0;
  let changed = 0;
  for (let i = 0; i < n; i++) {
    const at = (t: Float32Array, y: number, x: number): number => t[(i * h + y) * w + x]!;
    assert.equal(at(rotated, 7, 7), at(plain, 7, 7), `sample ${i}: the centre pixel is where the unrotated crop put it`);
    if (at(rotated, 0, 0) === 0 && at(plain, 0, 0) !== 0) cornersFilled++;
    if (rotated.subarray(i * h * w, (i + 1) * h * w).some((v, k) => v !== plain[i * h * w + k])) changed++;
  }
  // Nearest-neighbour rotation of a 15 px image by a few degrees may move no pixel at all.
  assert.ok(changed > n * 0.6, `most samples are rotated (${changed} of ${n})`);
  assert.ok(cornersFilled > n / 4, `corners are filled with 0 after a rotation (${cornersFilled} of ${n})`);
  assertThrowsCode(() => new DataLoader(ds, { augment: { rotation: 200 } }), RangeError, 'BNN_INVALID_ARGUMENT', /augment\.rotation must be a number in \[0, 180\]/);
});
