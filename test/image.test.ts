// Image folders, the prepared store and the ImageNet transforms, each checked against an
// independent computation: Pillow's decoders and resize (torchvision's eval transform spelled out
// in Python), torchvision's ImageFolder ordering (its make_dataset logic in Python), the IDX
// files of Fashion-MNIST, and renderImage for what a streamed loader must deliver.
//
// The photographs come from scripts/image-corpus.py (scikit-image's bundled samples, cut into
// ImageNet-sized files of every special kind), built once into a temp folder in about 2 s. Tests
// that need Python skip with the reason when python3 / Pillow / numpy / scikit-image are absent,
// and fail instead under CI.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import {
  cudaAvailable,
  DataLoader,
  Dataset,
  decodeImage,
  IMAGENET_MEAN,
  IMAGENET_STD,
  imageInfo,
  isBnnError,
  prepareStore,
  renderImage,
  storeInfo,
  type ImageTransformOptions,
} from '../src/index.js';
import { packageRoot } from '../src/binding/native.js';
import { prng, tempDir } from './support/data-files.js';
import {
  CORPUS_MODULES,
  FASHION_ROOT,
  firstDifference,
  imageCorpus,
  need,
  pillowDecode,
  pillowEval,
  pixelDiff,
  put,
  pythonProblem,
  runScript,
  solidPng,
  torchvisionOrder,
} from './support/images.js';

type ErrorClass = new (...args: never[]) => Error;

/** Asserts that calling `fn` (sync throw or async rejection alike) fails with this class and code. */
async function failsWith(fn: () => unknown, type: ErrorClass, code: string, message?: RegExp): Promise<Error> {
  let caught: unknown;
  try {
    await fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof type, `expected ${type.name} ${code}, got ${caught instanceof Error ? `${caught.constructor.name}: ${caught.message}` : String(caught)}`);
  assert.equal((caught as { code?: string }).code, code, `code of: ${caught.message}`);
  if (message) assert.match(caught.message, message);
  return caught;
}

const escape = (s: string): RegExp => new RegExp(s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));

interface Sample {
  pixels: Float32Array; // C*H*W of one sample
  label: number;
}

/** Every sample of an epoch (or its tail from startBatch), in delivery order, tensors disposed. */
async function samples(loader: DataLoader, epoch: number, startBatch = 0): Promise<Sample[]> {
  const out: Sample[] = [];
  for await (const batch of loader.epoch(epoch, { startBatch })) {
    const [n, c, h, w] = batch.images.shape as [number, number, number, number];
    assert.equal(batch.images.dtype, 'float32');
    const data = batch.images.toFloat32Array();
    const labels = batch.labels.toTypedArray() as BigInt64Array;
    for (let i = 0; i < n; i++) out.push({ pixels: data.slice(i * c * h * w, (i + 1) * c * h * w), label: Number(labels[i]) });
    batch.dispose();
  }
  return out;
}

/** A sample as bytes, for a loader with normalize: false (pixels / 255 exactly representable after * 255). */
function asBytes(pixels: Float32Array): Uint8Array {
  return Uint8Array.from(pixels, (v) => Math.round(v * 255));
}

/** HWC bytes -> CHW bytes, the loader's layout. */
function chw(hwc: Uint8Array, channels: number): Uint8Array {
  const n = hwc.length / channels;
  const out = new Uint8Array(hwc.length);
  for (let i = 0; i < n; i++) for (let c = 0; c < channels; c++) out[c * n + i] = hwc[i * channels + c]!;
  return out;
}

/** The stored channel count imageInfo should report for each corpus kind (palette varies: left out). */
const STORED_CHANNELS: Record<string, number> = {
  jpeg: 3,
  'jpeg-gray': 1,
  'jpeg-cmyk': 4,
  'jpeg-progressive': 3,
  'png-rgb': 3,
  'png-rgba': 4,
  'png-rgb16': 3,
  'png-gray': 1,
  'png-gray-alpha': 2,
  'png-gray16': 1,
};

test('decodeImage gives Pillow\'s convert("RGB") and convert("L") bytes for every kind of JPEG and PNG', { timeout: 120_000 }, async (t) => {
  if (!need(t, pythonProblem(CORPUS_MODULES))) return;
  const { files } = imageCorpus();
  // The corpus must really hold every kind, or this test would pass by not looking.
  assert.deepEqual(new Set(files.map((f) => f.kind)).size, 11);
  const ref = pillowDecode(files.map((f) => f.path));
  for (const [i, f] of files.entries()) {
    const r = ref[i]!;
    const what = `${path.basename(f.path)} (Pillow mode ${r.mode})`;
    const bytes = fs.readFileSync(f.path);
    const info = imageInfo(bytes);
    assert.equal(info.format, f.path.endsWith('.png') ? 'png' : 'jpeg', what);
    assert.deepEqual([info.width, info.height], [r.width, r.height], what);
    if (STORED_CHANNELS[f.kind] !== undefined) assert.equal(info.channels, STORED_CHANNELS[f.kind], `${what}: stored channels`);
    const rgb = await decodeImage(bytes);
    assert.deepEqual([rgb.width, rgb.height, rgb.channels], [r.width, r.height, 3], what);
    assert.equal(firstDifference(rgb.data, r.rgb), -1, `${what}: RGB differs from Pillow at byte ${firstDifference(rgb.data, r.rgb)}`);
    const grey = await decodeImage(bytes, { channels: 1 });
    assert.deepEqual([grey.width, grey.height, grey.channels], [r.width, r.height, 1], what);
    assert.equal(firstDifference(grey.data, r.grey), -1, `${what}: grey differs from Pillow at byte ${firstDifference(grey.data, r.grey)}`);
    if (f.kind === 'png-gray16') {
      // The reference here is the high byte of each 16-bit sample; Pillow's own convert clamps,
      // and the photograph must actually show the difference for this check to mean anything.
      assert.ok(r.pillowRgb, `${what}: Pillow opened a 16-bit grey PNG as ${r.mode}`);
      assert.notEqual(firstDifference(rgb.data, r.pillowRgb), -1, `${what}: Pillow's clamped bytes should differ from the high byte`);
    }
  }
});

test('the eval transform matches torchvision (Resize + CenterCrop on Pillow): exact at full scale, within 1 grey level with DCT scaling', { timeout: 120_000 }, async (t) => {
  if (!need(t, pythonProblem(CORPUS_MODULES))) return;
  const { files } = imageCorpus();
  // 224/256 is ImageNet's; 64/73 shrinks these ~500x375 photographs enough that JPEGs are
  // decoded at 1/2 scale in the DCT when dctScaling is on (224/256 never shrinks them 2x).
  const configs = [
    { size: 224, resize: 256 },
    { size: 64, resize: 73 },
  ];
  const ref = pillowEval(
    files.map((f) => f.path),
    configs,
  );
  let worstDct = 0;
  let dctChangedSomething = false;
  for (const [i, f] of files.entries()) {
    const bytes = fs.readFileSync(f.path);
    for (const [j, cfg] of configs.entries()) {
      for (const channels of [3, 1] as const) {
        const expected = channels === 3 ? ref[i]![j]!.rgb : ref[i]![j]!.grey;
        const what = `${path.basename(f.path)} ${cfg.size}/${cfg.resize} ${channels === 3 ? 'RGB' : 'grey'}`;
        const exact = await renderImage(bytes, { mode: 'eval', ...cfg, dctScaling: false }, { channels });
        assert.deepEqual([exact.width, exact.height, exact.channels], [cfg.size, cfg.size, channels]);
        const d0 = pixelDiff(exact.data, expected);
        assert.equal(d0.max, 0, `${what}, dctScaling off: mean |diff| ${d0.mean.toFixed(4)}, max ${d0.max} (expected Pillow's exact bytes)`);
        const fast = await renderImage(bytes, { mode: 'eval', ...cfg, dctScaling: true }, { channels });
        const d1 = pixelDiff(fast.data, expected);
        assert.ok(d1.mean <= 1, `${what}, dctScaling on: mean |diff| ${d1.mean.toFixed(4)} > 1 grey level`);
        worstDct = Math.max(worstDct, d1.mean);
        if (d1.max > 0) dctChangedSomething = true;
        // The default transform is dctScaling on.
        const byDefault = await renderImage(bytes, { mode: 'eval', ...cfg }, { channels });
        assert.deepEqual(byDefault.data, fast.data, `${what}: dctScaling defaults to on`);
      }
    }
  }
  // Otherwise the "within 1 grey level" check above never exercised the DCT path.
  assert.ok(dctChangedSomething, 'DCT-domain scaling changed no pixel: it was never used');
  t.diagnostic(`eval transform vs Pillow over ${files.length} photographs: exact with dctScaling off; worst mean |diff| with it on ${worstDct.toFixed(3)} grey levels`);
});

/**
 * An ImageFolder whose order is easy to get wrong: class names that sort differently by code
 * point than by locale or case, upper-case extensions, hidden files, files that are not images,
 * and sub-folders. Every image is an 8x8 PNG of its own colour, so a sample says which file it is.
 */
function orderFolder(nestedSiblings: boolean): { root: string; colourOf: Map<string, number> } {
  const root = tempDir(nestedSiblings ? 'order-nested' : 'order');
  const rel = [
    'b/1.png',
    'B/z.png',
    'B/a.PNG',
    'a b/x.png',
    'a-b/x.JPG', // PNG bytes behind a .JPG name: formats are told by content, as PIL does
    'a.b/y.jpeg',
    '10/k.png',
    '9/k.png',
    '9/K.png',
    '9/.hidden.png',
    '9/_u.png',
    'Z/~.png',
    '\u00e9t\u00e9/1.png',
    '_x/b.png',
    'a/z.png',
    'a/A.png',
    'a/10.png',
    'a/9.png',
    'a/sub/1.png',
    'a/Sub/5.png',
  ];
  if (nestedSiblings) {
    // os.walk's tuples sorted by dirpath put a/sub-b and a/sub.c before a/sub/deeper ('-' and
    // '.' sort before '/'): a depth-first walk gets this wrong.
    rel.push('a/sub/deeper/3.png', 'a/sub-b/2.png', 'a/sub.c/4.png');
  }
  const colourOf = new Map<string, number>();
  rel.forEach((r, k) => {
    put(root, r, solidPng(8, 8, [k * 9, 255 - k * 5, 77]));
    colourOf.set(r, k * 9);
  });
  put(root, 'a/notes.txt', 'not an image');
  put(root, '9/scan.bmp', 'BM');
  return { root, colourOf };
}

async function checkOrder(root: string, colourOf: Map<string, number>): Promise<void> {
  const expected = torchvisionOrder(root);
  const byColour = new Map([...colourOf].map(([r, c]) => [c, r]));
  // In memory (transform: false): images() holds every sample in dataset order.
  using memory = await Dataset.fromImages(root, { transform: false });
  assert.deepEqual(memory.classNames, expected.classes);
  const images = memory.images();
  const pixels = images.toTypedArray() as Uint8Array;
  images.dispose();
  const labelsT = memory.labels();
  const labels = Array.from(labelsT.toTypedArray() as BigInt64Array, Number);
  labelsT.dispose();
  const order = Array.from({ length: memory.size }, (_, i) => byColour.get(pixels[i * 3 * 64]!) ?? `colour ${pixels[i * 3 * 64]}`);
  assert.deepEqual(
    order.map((r, i) => [r, labels[i]]),
    expected.samples,
    'files and labels in torchvision\'s order',
  );
  assert.deepEqual(
    memory.skipped.map((s) => path.relative(root, s.file)),
    ['9/scan.bmp'],
    'a .bmp is named as skipped (unsupported), a .txt is ignored',
  );
  // Streamed (an identity eval transform): the loader delivers the same order.
  using streamed = await Dataset.fromImages(root, { transform: { mode: 'eval', size: 8, resize: 8 } });
  assert.ok(streamed.streamed);
  assert.deepEqual(streamed.classNames, expected.classes);
  using loader = DataLoader.forEval(streamed, { batchSize: 5, normalize: false, workers: 2 });
  const got = await samples(loader, 0);
  assert.deepEqual(
    got.map((s) => [byColour.get(asBytes(s.pixels)[0]!), s.label]),
    expected.samples,
  );
}

test('an ImageFolder gets torchvision\'s classes, indices and file order', { timeout: 60_000 }, async (t) => {
  if (!need(t, pythonProblem([]))) return;
  const { root, colourOf } = orderFolder(false);
  await checkOrder(root, colourOf);
});

test(
  'nested sub-folders are visited in sorted(os.walk()) order, as torchvision does',
  { timeout: 60_000 },
  async (t) => {
    if (!need(t, pythonProblem([]))) return;
    const { root, colourOf } = orderFolder(true);
    await checkOrder(root, colourOf);
  },
);

test('train/ and val/ (or test/) sub-folders are picked up as the two splits', { timeout: 60_000 }, async (t) => {
  if (!need(t, pythonProblem(CORPUS_MODULES))) return;
  const { root, files } = imageCorpus();
  const count = (split: string) => files.filter((f) => f.split === split).length;
  using train = await Dataset.fromImages(root, { split: 'train' });
  using val = await Dataset.fromImages(root, { split: 'test' });
  assert.equal(train.size, count('train'));
  assert.equal(val.size, count('val'));
  assert.deepEqual(train.classNames, torchvisionOrder(path.join(root, 'train')).classes);
  assert.deepEqual(val.classNames, torchvisionOrder(path.join(root, 'val')).classes);
  // The default transform follows the split: train crops randomly, test is the 224 eval crop.
  assert.deepEqual([train.streamed, val.streamed, train.shape, val.shape], [true, true, [3, 224, 224], [3, 224, 224]]);
  assert.deepEqual([train.mean, train.std], [[...IMAGENET_MEAN], [...IMAGENET_STD]]);
  using grey = await Dataset.fromImages(root, { split: 'test', channels: 1 });
  assert.deepEqual(grey.shape, [1, 224, 224]);

  // train/ + test/ works the same; small solid PNGs keep it quick.
  const other = tempDir('split-test');
  for (let i = 0; i < 5; i++) put(other, `train/c${i % 2}/${i}.png`, solidPng(4, 4, [i, i, i]));
  for (let i = 0; i < 3; i++) put(other, `test/c${i % 2}/${i}.png`, solidPng(4, 4, [i, i, i]));
  using t2 = await Dataset.fromImages(other, { split: 'train', transform: false });
  using v2 = await Dataset.fromImages(other, { split: 'test', transform: false });
  assert.deepEqual([t2.size, v2.size, t2.classNames, v2.classNames], [5, 3, ['c0', 'c1'], ['c0', 'c1']]);
  using limited = await Dataset.fromImages(other, { split: 'train', transform: false, limit: 2 });
  assert.equal(limited.size, 2);
});

test('a streamed loader delivers renderImage\'s pixels, normalised, repeatably, resumably and sharded', { timeout: 120_000 }, async (t) => {
  if (!need(t, pythonProblem(CORPUS_MODULES))) return;
  const { root } = imageCorpus();
  const folder = path.join(root, 'train');
  const files = torchvisionOrder(folder).samples.map(([r]) => fs.readFileSync(path.join(folder, r)));
  // Every random extra on, so each one's draw is covered by the "same as renderImage" check.
  const transform: ImageTransformOptions = { mode: 'train', size: 40, colorJitter: 0.4, lighting: 0.1, rotation: 15 };
  using ds = await Dataset.fromImages(root, { split: 'train', transform });
  assert.equal(ds.size, files.length);
  const seed = 5;
  using loader = new DataLoader(ds, { batchSize: 4, seed, workers: 2 });
  assert.equal(loader.batchesPerEpoch, Math.ceil(files.length / 4));

  const epoch1 = await samples(loader, 1);
  assert.equal(epoch1.length, files.length);
  for (const s of epoch1) assert.equal(s.pixels.length, 3 * 40 * 40);
  // Sample k of the epoch is dataset item order[k], rendered with the draw of (seed, epoch, item)
  // and normalised per channel as float32 (x * 1/(255 std) - mean/std).
  const order = loader.epochOrder(1);
  const labelsT = ds.labels();
  const labels = Array.from(labelsT.toTypedArray() as BigInt64Array, Number);
  labelsT.dispose();
  const scale = IMAGENET_STD.map((sd) => Math.fround(1 / (255 * sd)));
  const shift = IMAGENET_MEAN.map((m, c) => Math.fround(-m / IMAGENET_STD[c]!));
  for (const k of [0, 5, files.length - 1]) {
    const item = order[k]!;
    const rendered = chw((await renderImage(files[item]!, transform, { seed, epoch: 1, sample: item })).data, 3);
    const expected = Float32Array.from(rendered, (v, i) => Math.fround(Math.fround(v * scale[Math.floor(i / 1600)]!) + shift[Math.floor(i / 1600)]!));
    const got = epoch1[k]!.pixels;
    let worst = 0;
    for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i]! - expected[i]!));
    assert.ok(worst <= 1e-6, `sample ${k} (item ${item}): differs from renderImage by up to ${worst}`);
    assert.equal(epoch1[k]!.label, labels[item]);
  }
  // A different draw is really a different picture (the check above is not comparing constants).
  const other = await renderImage(files[order[0]!]!, transform, { seed, epoch: 2, sample: order[0]! });
  const same = await renderImage(files[order[0]!]!, transform, { seed, epoch: 1, sample: order[0]! });
  assert.notDeepEqual(other.data, same.data);

  // Same seed and epoch: the same pixels, from a fresh loader with another worker count.
  using again = new DataLoader(ds, { batchSize: 4, seed, workers: 1 });
  assert.deepEqual(await samples(again, 1), epoch1);
  // Resumed at batch 3: the tail of the full epoch.
  assert.deepEqual(await samples(loader, 1, 3), epoch1.slice(12));
  // Another epoch: another order and other crops.
  const epoch2 = await samples(loader, 2);
  assert.notDeepEqual(epoch2.map((s) => s.pixels), epoch1.map((s) => s.pixels));

  // Two shards of a training loader: positions r, r + 2, ... of the same epoch order (padded
  // with its beginning), with the same pixels as the unsharded loader renders for them.
  const shards = [0, 1].map((rank) => new DataLoader(ds, { batchSize: 4, seed, workers: 2, shard: { rank, count: 2 } }));
  try {
    for (const [rank, shard] of shards.entries()) {
      const got = await samples(shard, 1);
      const positions = Array.from({ length: Math.ceil(files.length / 2) }, (_, j) => (rank + 2 * j) % files.length);
      assert.deepEqual(Array.from(shard.epochOrder(1)), positions.map((p) => order[p]));
      assert.deepEqual(got, positions.map((p) => epoch1[p]));
    }
  } finally {
    for (const s of shards) s.dispose();
  }
  // Evaluation shards are not padded: together they hold each sample exactly once.
  using evalSet = await Dataset.fromImages(root, { split: 'train', transform: { mode: 'eval', size: 16, resize: 18 } });
  using whole = DataLoader.forEval(evalSet, { batchSize: 8 });
  const all = await samples(whole, 0);
  const parts: Sample[][] = [];
  for (let rank = 0; rank < 3; rank++) {
    using part = DataLoader.forEval(evalSet, { batchSize: 8, shard: { rank, count: 3 } });
    parts.push(await samples(part, 0));
  }
  assert.equal(parts.reduce((n, p) => n + p.length, 0), files.length);
  for (const [rank, p] of parts.entries()) assert.deepEqual(p, all.filter((_, i) => i % 3 === rank));
});

test('a Fashion-MNIST PNG folder without a transform holds exactly the IDX files\' pixels and labels', { timeout: 120_000 }, async (t) => {
  if (!need(t, pythonProblem(['PIL', 'numpy']))) return;
  if (!need(t, fs.existsSync(path.join(FASHION_ROOT, 't10k-images-idx3-ubyte.gz')) ? undefined : `${FASHION_ROOT} is absent (apt-get install dataset-fashion-mnist)`)) return;
  const limit = 150;
  const root = path.join(tempDir('fmnist'), 'png');
  runScript('fashion-mnist-folder.py', [root, '--limit', String(limit), '--jobs', '1']);
  for (const split of ['test', 'train'] as const) {
    using idx = await Dataset.load('fashion-mnist', { split, limit });
    using folder = await Dataset.fromImages(root, { split, transform: false, channels: 1 });
    assert.equal(folder.streamed, false);
    assert.deepEqual([folder.size, folder.shape], [limit, [1, 28, 28]]);
    // The script's folder names: a digit prefix makes the sorted order the label order.
    assert.deepEqual(folder.classNames, ['0-t-shirt', '1-trouser', '2-pullover', '3-dress', '4-coat', '5-sandal', '6-shirt', '7-sneaker', '8-bag', '9-ankle-boot']);
    assert.equal(folder.numClasses, idx.numClasses);
    const [a, b, la, lb] = [idx.images(), folder.images(), idx.labels(), folder.labels()];
    const idxPixels = a.toTypedArray() as Uint8Array;
    const folderPixels = b.toTypedArray() as Uint8Array;
    const idxLabels = Array.from(la.toTypedArray() as BigInt64Array, Number);
    const folderLabels = Array.from(lb.toTypedArray() as BigInt64Array, Number);
    for (const x of [a, b, la, lb]) x.dispose();
    // The folder is ordered by class, then by file name, which is the IDX index zero-padded:
    // so it is the IDX order stably sorted by label, and sample k must match exactly.
    const expectedOrder = idxLabels.map((l, i) => [l, i] as const).sort((p, q) => p[0] - q[0] || p[1] - q[1]).map(([, i]) => i);
    assert.deepEqual(folderLabels, expectedOrder.map((i) => idxLabels[i]), `${split}: labels`);
    expectedOrder.forEach((i, k) => {
      const want = idxPixels.subarray(i * 784, (i + 1) * 784);
      const got = folderPixels.subarray(k * 784, (k + 1) * 784);
      assert.equal(firstDifference(got, want), -1, `${split}: folder sample ${k} is not IDX image ${i}`);
    });
    // Its statistics are measured over those pixels.
    const mean = folderPixels.reduce((s, v) => s + v, 0) / folderPixels.length / 255;
    assert.ok(Math.abs(folder.mean[0]! - mean) < 1e-9, `mean ${folder.mean[0]} vs ${mean}`);
  }
  // As RGB each grey value is repeated in all three channels.
  using grey = await Dataset.fromImages(root, { split: 'test', transform: false, channels: 1, limit: 1 });
  using rgb = await Dataset.fromImages(root, { split: 'test', transform: false, limit: 1 });
  const [t1, t3] = [grey.images(), rgb.images()];
  const [p1, p3] = [t1.toTypedArray() as Uint8Array, t3.toTypedArray() as Uint8Array];
  t1.dispose();
  t3.dispose();
  assert.deepEqual(rgb.shape, [3, 28, 28]);
  for (let c = 0; c < 3; c++) assert.deepEqual(p3.subarray(c * 784, (c + 1) * 784), p1, `channel ${c}`);
});

test('prepareStore writes the folder\'s images to one file that streams the same pixels', { timeout: 180_000 }, async (t) => {
  if (!need(t, pythonProblem(CORPUS_MODULES))) return;
  const { root, files } = imageCorpus();
  const folder = path.join(root, 'train');
  const expected = torchvisionOrder(folder);
  const dir = tempDir('store');
  const progress: [number, number][] = [];
  // maxSide 1024 keeps every corpus JPEG byte for byte (none has a shorter side above 1024);
  // PNGs are re-encoded as JPEG quality 90.
  const asIs = path.join(dir, 'as-is.bnnstore');
  const r = await prepareStore(folder, asIs, { maxSide: 1024, workers: 2, onProgress: (d, n) => progress.push([d, n]) });
  assert.deepEqual([r.path, r.read, r.written, r.skipped], [asIs, expected.samples.length, expected.samples.length, []]);
  assert.deepEqual(progress.at(-1), [expected.samples.length, expected.samples.length]);
  const info = await storeInfo(asIs);
  assert.equal(info.size, expected.samples.length);
  assert.deepEqual(info.classNames, expected.classes);
  assert.deepEqual(info.classCounts, expected.classes.map((_, c) => expected.samples.filter(([, l]) => l === c).length));
  assert.equal(info.maxSide, 1024);
  assert.deepEqual(fs.readdirSync(dir), ['as-is.bnnstore'], 'nothing else is left beside the store');

  const transform: ImageTransformOptions = { mode: 'eval', size: 224, resize: 256 };
  async function stream(source: string): Promise<Sample[]> {
    using ds = await Dataset.fromImages(source, { split: 'train', transform });
    using loader = DataLoader.forEval(ds, { batchSize: 8, normalize: false, workers: 2 });
    return await samples(loader, 0); // await: the loader is disposed on return
  }
  const fromFolder = await stream(root);
  const fromStore = await stream(asIs);
  assert.deepEqual([fromFolder.length, fromStore.length], [expected.samples.length, expected.samples.length]);
  assert.deepEqual(fromStore.map((s) => s.label), fromFolder.map((s) => s.label));
  const kindOf = new Map(files.map((f) => [path.relative(folder, f.path), f.kind]));
  let worstPng = 0;
  for (const [k, [rel]] of expected.samples.entries()) {
    const d = pixelDiff(asBytes(fromStore[k]!.pixels), asBytes(fromFolder[k]!.pixels));
    if (rel.endsWith('.jpg')) {
      assert.equal(d.max, 0, `${rel} was kept as is, so its pixels must be identical (mean |diff| ${d.mean})`);
    } else {
      // JPEG at quality 90 costs about 1-2 grey levels on these photographs' fine texture.
      assert.ok(d.mean <= 3, `${rel} (${kindOf.get(rel)}) re-encoded at quality 90: mean |diff| ${d.mean.toFixed(3)} > 3`);
      worstPng = Math.max(worstPng, d.mean);
    }
  }
  // Shrunk to shorter side 256 (the default) and re-encoded: still close to the folder.
  const small = path.join(dir, 'small.bnnstore');
  await prepareStore(folder, small, { workers: 2 });
  assert.ok(fs.statSync(small).size < fs.statSync(asIs).size);
  const fromSmall = await stream(small);
  // Here the JPEG loss lands at the final resolution (the eval resize to 256 is then an
  // identity), so it is larger than above, where the crop's shrink averages it away.
  const smallDiffs = fromSmall.map((s, k) => pixelDiff(asBytes(s.pixels), asBytes(fromFolder[k]!.pixels)).mean);
  const worstSmall = Math.max(...smallDiffs);
  const meanSmall = smallDiffs.reduce((a, b) => a + b, 0) / smallDiffs.length;
  assert.ok(worstSmall <= 4 && meanSmall <= 2.5, `shrunk store: worst mean |diff| ${worstSmall.toFixed(3)}, average ${meanSmall.toFixed(3)}`);
  t.diagnostic(
    `store vs folder (eval 224/256): JPEGs identical; re-encoded PNGs worst mean |diff| ${worstPng.toFixed(3)}; ` +
      `maxSide 256 store worst ${worstSmall.toFixed(3)}, average ${meanSmall.toFixed(3)}`,
  );

  // A store is read through a transform; the loader cannot add its own augmentation.
  await failsWith(() => Dataset.fromImages(asIs, { transform: false }), RangeError, 'BNN_INVALID_ARGUMENT', /transform/);
  using ds = await Dataset.fromImages(asIs, { transform, limit: 5 });
  assert.equal(ds.size, 5);
});

test('small images go into the store as raw pixels: a Fashion-MNIST store streams the IDX pixels exactly', { timeout: 120_000 }, async (t) => {
  if (!need(t, pythonProblem(['PIL', 'numpy']))) return;
  if (!need(t, fs.existsSync(path.join(FASHION_ROOT, 't10k-images-idx3-ubyte.gz')) ? undefined : `${FASHION_ROOT} is absent`)) return;
  const root = path.join(tempDir('fmnist-store'), 'png');
  runScript('fashion-mnist-folder.py', [root, '--limit', '60', '--jobs', '1']);
  const store = path.join(path.dirname(root), 'test.bnnstore');
  const r = await prepareStore(path.join(root, 'test'), store, { workers: 2 });
  assert.equal(r.written, 60);
  using fromStore = await Dataset.fromImages(store, { channels: 1, transform: { mode: 'eval', size: 28, resize: 28 } });
  using fromFolder = await Dataset.fromImages(root, { split: 'test', channels: 1, transform: false });
  using loader = DataLoader.forEval(fromStore, { batchSize: 16, normalize: false });
  const got = await samples(loader, 0);
  const folderT = fromFolder.images();
  const want = folderT.toTypedArray() as Uint8Array;
  folderT.dispose();
  got.forEach((s, k) => assert.equal(firstDifference(asBytes(s.pixels), want.subarray(k * 784, (k + 1) * 784)), -1, `sample ${k}`));
});

test('a prepare that fails or is interrupted leaves neither the store nor a partial file', { timeout: 60_000 }, async (t) => {
  if (!need(t, pythonProblem(CORPUS_MODULES))) return;
  const { files } = imageCorpus();
  const jpeg = fs.readFileSync(files.find((f) => f.kind === 'jpeg')!.path);
  const src = tempDir('prepare-src');
  for (let i = 0; i < 4; i++) put(src, `c${i % 2}/${i}.jpg`, jpeg);
  const dir = tempDir('prepare-out');
  const listing = () => fs.readdirSync(dir);

  // Into a folder that does not exist.
  const missing = path.join(dir, 'no', 'such', 'folder', 'out.bnnstore');
  await failsWith(() => prepareStore(src, missing), Error, 'BNN_IO', escape(path.join(dir, 'no', 'such', 'folder')));
  assert.deepEqual(listing(), []);

  // Interrupted: the progress callback throws after the first chunk.
  const out = path.join(dir, 'out.bnnstore');
  await assert.rejects(
    prepareStore(src, out, {
      onProgress: () => {
        throw new Error('interrupted');
      },
    }),
    /interrupted/,
  );
  assert.deepEqual(listing(), []);

  // A file whose body is cut off fails the prepare (without skipBad), naming the file.
  const cut = put(src, 'c1/cut.jpg', jpeg.subarray(0, Math.floor(jpeg.length * 0.6)));
  await failsWith(() => prepareStore(src, out), Error, 'BNN_IO', escape(cut));
  assert.deepEqual(listing(), []);
  // And the source folder gained nothing either.
  assert.deepEqual(fs.readdirSync(path.join(src, 'c1')).sort(), ['1.jpg', '3.jpg', 'cut.jpg']);
});

test('bad files: an error naming the file, or with skipBad left out (or stood in for when the body is cut) and listed', { timeout: 60_000 }, async (t) => {
  if (!need(t, pythonProblem(CORPUS_MODULES))) return;
  const { files } = imageCorpus();
  const jpeg = fs.readFileSync(files.find((f) => f.kind === 'jpeg')!.path);
  const root = tempDir('bad');
  put(root, 'a/1.jpg', jpeg);
  put(root, 'a/2.jpg', jpeg);
  put(root, 'b/good.jpg', jpeg);
  // The header (SOI .. SOS) survives, so the file passes the header check and fails at decode time.
  const cut = put(root, 'b/cut.jpg', jpeg.subarray(0, Math.floor(jpeg.length * 0.6)));
  const rand = prng(3);
  const noise = put(root, 'b/noise.jpg', Uint8Array.from({ length: 3000 }, () => Math.floor(rand() * 256)));
  const text = put(root, 'b/text.png', 'this is not a PNG file\n');
  const eval16: ImageTransformOptions = { mode: 'eval', size: 16, resize: 18 };

  // The first bad file in dataset order is named, with the way out.
  const e = await failsWith(() => Dataset.fromImages(root, { transform: eval16 }), Error, 'BNN_IO', escape(noise));
  assert.match(e.message, /skipBad/);
  assert.ok(isBnnError(e));

  using ds = await Dataset.fromImages(root, { transform: eval16, skipBad: true, workers: 2 });
  assert.equal(ds.size, 4); // 1, 2, good, cut: the cut body is not visible in the header
  assert.deepEqual(ds.skipped.map((s) => s.file), [noise, text]);
  for (const s of ds.skipped) assert.ok(s.reason.length > 0 && !s.reason.startsWith(s.file), `a reason without the path repeated: ${s.reason}`);

  // With skipBad, the cut body (found when decoded) is replaced by the next sample that decodes,
  // with that sample's label, and joins `skipped`; the batch keeps its size.
  {
    using loader = DataLoader.forEval(ds, { batchSize: 2, workers: 2 });
    const got = await samples(loader, 0);
    assert.equal(got.length, 4);
    assert.deepEqual(got[2]!.pixels, got[3]!.pixels, 'cut.jpg (position 2) is stood in for by good.jpg (position 3)');
    assert.equal(got[2]!.label, got[3]!.label);
    assert.deepEqual(ds.skipped.map((s) => s.file), [noise, text, cut]);
    assert.match(ds.skipped[2]!.reason, /truncated|premature|corrupt/i);
  }

  // Without skipBad, decoding the cut file fails its batch with an error naming it; the process carries on.
  const strictRoot = tempDir('cut');
  put(strictRoot, 'a/1.jpg', jpeg);
  put(strictRoot, 'a/2.jpg', jpeg);
  const strictCut = put(strictRoot, 'b/cut.jpg', jpeg.subarray(0, Math.floor(jpeg.length * 0.6)));
  put(strictRoot, 'b/good.jpg', jpeg);
  using strict = await Dataset.fromImages(strictRoot, { transform: eval16, workers: 2 });
  using loader = DataLoader.forEval(strict, { batchSize: 2, workers: 2 });
  // Batches are a/1 a/2 | cut good: the first arrives, the second fails, the pass closes.
  const pass = loader.epoch(0);
  const first = await pass.next();
  assert.equal(first.done, false);
  if (!first.done) first.value.dispose();
  await failsWith(() => pass.next(), Error, 'BNN_IO', escape(strictCut));
  assert.ok(pass.isClosed);
  // Again, from a fresh pass: the same error, not a crash or a hang.
  await failsWith(() => samples(loader, 0), Error, 'BNN_IO', escape(strictCut));

  // prepareStore with skipBad catches all three (the cut body at decode time) and writes the rest.
  const out = path.join(tempDir('bad-store'), 'x.bnnstore');
  const r = await prepareStore(root, out, { skipBad: true, workers: 2 });
  assert.deepEqual([r.read, r.written], [6, 3]);
  assert.deepEqual(r.skipped.map((s) => s.file).sort(), [cut, noise, text].sort());
  for (const s of r.skipped) assert.ok(s.reason.length > 0 && !s.reason.startsWith(s.file), s.reason);
  assert.equal((await storeInfo(out)).size, 3);
  await failsWith(() => prepareStore(root, path.join(path.dirname(out), 'y.bnnstore')), Error, 'BNN_IO', /skipBad/);
});

test('wrong option types are TypeErrors (BNN_INVALID_TYPE), values out of range RangeErrors (BNN_INVALID_ARGUMENT)', { timeout: 60_000 }, async () => {
  const png = solidPng(20, 12, [10, 20, 30]);
  const root = tempDir('errors');
  for (let i = 0; i < 3; i++) put(root, `c${i % 2}/${i}.png`, png);
  const T = [TypeError, 'BNN_INVALID_TYPE'] as const;
  const R = [RangeError, 'BNN_INVALID_ARGUMENT'] as const;
  const cases: [string, () => unknown, readonly [ErrorClass, string]][] = [
    ['decodeImage(string)', () => decodeImage('x.png' as never), T],
    ['decode channels 2', () => decodeImage(png, { channels: 2 as never }), R],
    ['decode channels 1.5', () => decodeImage(png, { channels: 1.5 as never }), T],
    ['decode channels "3"', () => decodeImage(png, { channels: '3' as never }), T],
    ['imageInfo(array)', () => imageInfo([1, 2] as never), T],
    ['transform null', () => renderImage(png, null as never), T],
    ['transform.mode', () => renderImage(png, { mode: 'test' as never }), R],
    ['transform.mode type', () => renderImage(png, { mode: 1 as never }), T],
    ['transform.size 0', () => renderImage(png, { size: 0 }), R],
    ['transform.size 1.5', () => renderImage(png, { size: 1.5 }), T],
    ['transform.size 9000', () => renderImage(png, { size: 9000 }), R],
    ['transform.resize 0', () => renderImage(png, { resize: 0 }), R],
    ['transform.scale type', () => renderImage(png, { scale: 'x' as never }), T],
    ['transform.scale [0, 1]', () => renderImage(png, { scale: [0, 1] }), R],
    ['transform.hflip', () => renderImage(png, { hflip: 'yes' as never }), T],
    ['transform.rotation 200', () => renderImage(png, { rotation: 200 }), R],
    ['transform.rotation NaN', () => renderImage(png, { rotation: Number.NaN }), T],
    ['transform.colorJitter', () => renderImage(png, { colorJitter: 'a' as never }), T],
    ['transform.colorJitter -1', () => renderImage(png, { colorJitter: -1 }), R],
    ['colorJitter.hue 0.6', () => renderImage(png, { colorJitter: { hue: 0.6 } }), R],
    ['transform.lighting -0.1', () => renderImage(png, { lighting: -0.1 }), R],
    ['transform.dctScaling 1', () => renderImage(png, { dctScaling: 1 as never }), T],
    ['render seed -1', () => renderImage(png, {}, { seed: -1 }), R],
    ['render epoch 0.5', () => renderImage(png, {}, { epoch: 0.5 }), T],
    ['fromImages(42)', () => Dataset.fromImages(42 as never), T],
    ['fromImages options null', () => Dataset.fromImages(root, null as never), T],
    ['split val', () => Dataset.fromImages(root, { split: 'val' as never }), R],
    ['channels 2', () => Dataset.fromImages(root, { channels: 2 as never }), R],
    ['workers -1', () => Dataset.fromImages(root, { workers: -1 }), R],
    ['workers 1.5', () => Dataset.fromImages(root, { workers: 1.5 }), T],
    ['limit 0', () => Dataset.fromImages(root, { limit: 0 }), R],
    ['limit "2"', () => Dataset.fromImages(root, { limit: '2' as never }), T],
    ['skipBad "yes"', () => Dataset.fromImages(root, { skipBad: 'yes' as never }), T],
    ['transform true', () => Dataset.fromImages(root, { transform: true as never }), T],
    ['mean length', () => Dataset.fromImages(root, { mean: [0.5, 0.5] }), R],
    ['mean type', () => Dataset.fromImages(root, { mean: 'x' as never }), T],
    ['classNames [1]', () => Dataset.fromImages(root, { classNames: [1] as never }), T],
    ['prepareStore(1, x)', () => prepareStore(1 as never, 'x'), T],
    ['prepare maxSide 4', () => prepareStore(root, path.join(root, 'o'), { maxSide: 4 }), R],
    ['prepare quality 101', () => prepareStore(root, path.join(root, 'o'), { quality: 101 }), R],
    ['prepare quality "hi"', () => prepareStore(root, path.join(root, 'o'), { quality: 'hi' as never }), T],
    ['prepare skipBad 1', () => prepareStore(root, path.join(root, 'o'), { skipBad: 1 as never }), T],
    ['storeInfo(5)', () => storeInfo(5 as never), T],
  ];
  for (const [what, fn, [type, code]] of cases) {
    const e = await failsWith(fn, type, code).catch((err: Error) => {
      throw new Error(`${what}: ${err.message}`);
    });
    assert.doesNotMatch(e.message, /Exception raised from|frame #\d/, `${what}: no C++ backtrace`);
  }
  assert.ok(!fs.existsSync(path.join(root, 'o')), 'no store was written by a refused prepare');
  // Not a store, not an image folder: IO errors naming the file.
  await failsWith(() => storeInfo(path.join(root, 'c0', '0.png')), Error, 'BNN_IO', escape(path.join(root, 'c0', '0.png')));
  await failsWith(() => Dataset.fromImages(path.join(root, 'missing')), Error, 'BNN_IO', /missing/);
  await failsWith(() => decodeImage(Buffer.from('GIF89a')), Error, 'BNN_IO');

  // A streamed dataset has no images tensor, and its own transform is its augmentation.
  using ds = await Dataset.fromImages(root, { transform: { mode: 'eval', size: 8 } });
  await failsWith(() => ds.images(), RangeError, 'BNN_INVALID_ARGUMENT', /streams its images.*DataLoader/);
  await failsWith(() => new DataLoader(ds, { augment: { hflip: true } }), RangeError, 'BNN_INVALID_ARGUMENT', /augment/);
  await failsWith(() => new DataLoader(ds, { augment: { cropPadding: 2 } }), RangeError, 'BNN_INVALID_ARGUMENT', /augment/);
  await failsWith(() => new DataLoader(ds, { workers: -1 }), RangeError, 'BNN_INVALID_ARGUMENT');
  await failsWith(() => new DataLoader(ds, { workers: 'x' as never }), TypeError, 'BNN_INVALID_TYPE');
  using ok = new DataLoader(ds, { augment: false, workers: 1 });
  assert.equal(ok.size, 3);
});

test('the resize kernels give the same bytes on every instruction-set path (BNN_IMAGE_SIMD=0 forces the baseline)', { timeout: 120_000 }, async (t) => {
  if (!need(t, pythonProblem(CORPUS_MODULES))) return;
  const { files } = imageCorpus();
  // The kernel is chosen once per process, so the baseline runs in a child with the switch set.
  const script = `
    import fs from 'node:fs';
    import crypto from 'node:crypto';
    import { renderImage } from ${JSON.stringify(path.join(packageRoot, 'src', 'index.ts'))};
    import { native } from ${JSON.stringify(path.join(packageRoot, 'src', 'binding', 'native.ts'))};
    const files = JSON.parse(process.argv[1]);
    const hash = crypto.createHash('sha256');
    for (const f of files) {
      const bytes = fs.readFileSync(f);
      for (const [mode, size] of [['eval', 224], ['eval', 64], ['train', 224], ['train', 96]]) {
        for (const channels of [1, 3]) {
          const img = await renderImage(bytes, { mode, size, colorJitter: 0.4, rotation: 10 }, { channels, seed: 5, sample: 3 });
          hash.update(img.data);
        }
      }
    }
    console.log(native().imageKernels() + ' ' + hash.digest('hex'));`;
  const run = (simd: string | undefined): string =>
    execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, JSON.stringify(files.map((f) => f.path))], {
      encoding: 'utf8',
      env: { ...process.env, ...(simd === undefined ? {} : { BNN_IMAGE_SIMD: simd }) },
    }).trim();
  const [fastKernels, fast] = run(undefined).split(' ');
  const [baseKernels, baseline] = run('0').split(' ');
  const avx2 = /\bavx2\b/.test(fs.readFileSync('/proc/cpuinfo', 'utf8'));
  assert.equal(fastKernels, avx2 ? 'avx2' : 'baseline', 'the dispatch follows the CPU');
  assert.equal(baseKernels, 'baseline', 'BNN_IMAGE_SIMD=0 forces the baseline kernels');
  assert.match(fast!, /^[0-9a-f]{64}$/);
  assert.equal(baseline, fast, 'the baseline kernels and the dispatched ones (AVX2 where the CPU has it) give different bytes');
});

test('a streamed dataset on CUDA: uint8 batches copied to the device and normalised there equal the CPU batches (or CUDA is refused clearly)', { timeout: 120_000 }, async (t) => {
  if (!need(t, pythonProblem(CORPUS_MODULES))) return;
  const { root } = imageCorpus();
  using ds = await Dataset.fromImages(path.join(root, 'train'), { transform: { size: 32, colorJitter: 0.4, lighting: 0.1 }, workers: 2 });
  if (!cudaAvailable()) {
    assert.throws(() => new DataLoader(ds, { device: 'cuda' }), (e: Error & { code?: string }) => e.code === 'BNN_CUDA_UNAVAILABLE');
    return;
  }
  using cpu = new DataLoader(ds, { batchSize: 8, seed: 4, workers: 2 });
  using gpu = new DataLoader(ds, { batchSize: 8, seed: 4, workers: 2, device: 'cuda' });
  const expected = await samples(cpu, 1);
  let i = 0;
  for await (const batch of gpu.epoch(1)) {
    assert.equal(batch.images.device, 'cuda:0');
    assert.equal(batch.labels.device, 'cuda:0');
    const [n, c, h, w] = batch.images.shape as [number, number, number, number];
    const data = batch.images.toFloat32Array();
    const labels = batch.labels.toTypedArray() as BigInt64Array;
    for (let k = 0; k < n; k++, i++) {
      // The same bytes normalised by the same float32 scale and shift: equal up to the GPU's rounding.
      const got = data.subarray(k * c * h * w, (k + 1) * c * h * w);
      for (let p = 0; p < got.length; p++) assert.ok(Math.abs(got[p]! - expected[i]!.pixels[p]!) <= 1e-5, `sample ${i} value ${p}`);
      assert.equal(Number(labels[k]), expected[i]!.label);
    }
    batch.dispose();
  }
  assert.equal(i, expected.length);
});
