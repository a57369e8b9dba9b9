// The packed format and the XNOR-popcount engine (native/infer/, bnn_infer.node), checked against
// independent computations: LibTorch's float network on the same weights (logits within 1e-4
// relative, the same class), the engine's own C++ tests against a float reference convolution on
// every instruction set this CPU has and on aarch64 NEON under qemu, the AddressSanitizer fuzzer,
// and the bad-input vocabulary. LibTorch must stay out of a predicting process.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { packageRoot } from '../src/binding/native.js';
import { createModel, exportPacked, INFER_ISAS, InferenceModel, inferenceIsas, isBnnError, manualSeed, renderImage, scope, Tensor, type ModelConfig } from '../src/index.js';
import { checkInputSpec, normalizationTable } from '../src/infer/inference-model.js';
import { inferNative } from '../src/binding/infer.js';
import { readIdx } from '../src/io/idx.js';
import { mulberry32 } from '../src/data/batches.js';
import { tempDir } from './support/data-files.js';
import { CORPUS_MODULES, imageCorpus, need, pillowEval, pythonProblem, runPython } from './support/images.js';

const FMNIST = '/usr/share/datasets/fashion-mnist';

/** A stage-2 network with random weights and BatchNorm statistics far from the defaults, saved. */
async function randomNetwork(config: ModelConfig, seed: number, dir: string): Promise<{ float: string; model: ReturnType<typeof createModel> }> {
  manualSeed(seed);
  const model = createModel({ ...config, binaryWeights: true });
  const rand = mulberry32(seed);
  const normal = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  const values = (t: Tensor, f: () => number) => Tensor.fromArray(Float32Array.from({ length: t.size }, f), t.shape);
  scope(() => {
    const fresh = new Map<string, Tensor>();
    for (const [name, t] of model.stateDict()) {
      if (name.endsWith('running_mean')) fresh.set(name, values(t, () => 0.3 * normal()));
      else if (name.endsWith('running_var')) fresh.set(name, values(t, () => 0.3 + rand()));
      // Some negative and some zero BatchNorm scales: the threshold fold must flip or fix the sign.
      else if (/bn\d?\.weight$/.test(name)) fresh.set(name, values(t, () => (rand() < 0.1 ? 0 : normal())));
      else if (/bn\d?\.bias$/.test(name) || /prelu\d?\.weight$/.test(name)) fresh.set(name, values(t, () => 0.2 * normal()));
      else fresh.set(name, t);
    }
    model.loadStateDict(fresh);
  });
  model.eval();
  const float = path.join(dir, `net-${seed}.safetensors`);
  await model.saveWeights(float);
  return { float, model };
}

/** LibTorch's logits for NCHW float images. */
async function torchLogits(model: ReturnType<typeof createModel>, x: Float32Array, shape: [number, number, number, number]): Promise<Float32Array> {
  return scope(async () => (await model.forwardAsync(Tensor.fromArray(x, shape))).toFloat32Array());
}

function compareLogits(ours: Float32Array, reference: Float32Array, k: number, what: string): { sameClass: number; maxRel: number } {
  assert.equal(ours.length, reference.length, what);
  let sameClass = 0;
  let maxRel = 0;
  for (let i = 0; i < ours.length / k; i++) {
    const a = ours.subarray(i * k, (i + 1) * k);
    const b = reference.subarray(i * k, (i + 1) * k);
    const scale = Math.max(1, ...Array.from(b, Math.abs));
    for (let j = 0; j < k; j++) maxRel = Math.max(maxRel, Math.abs(a[j]! - b[j]!) / scale);
    const argmax = (v: Float32Array) => v.indexOf(Math.max(...v));
    if (argmax(a) === argmax(b)) sameClass++;
  }
  return { sameClass, maxRel };
}

const CASES: { name: string; config: ModelConfig; size: number; n: number }[] = [
  { name: 'small stem, 1 channel, width 16 (Fashion-MNIST shape)', config: { inChannels: 1, width: 16, numClasses: 10 }, size: 28, n: 6 },
  { name: 'small stem, 3 channels, width 24, odd size 21', config: { inChannels: 3, width: 24, numClasses: 7 }, size: 21, n: 3 },
  { name: 'ImageNet stem, width 8, size 45', config: { inChannels: 3, width: 8, numClasses: 5, stem: 'imagenet' }, size: 45, n: 2 },
  { name: 'classic blocks, width 20, size 19', config: { inChannels: 2, width: 20, numClasses: 4, doubleSkip: false }, size: 19, n: 3 },
  { name: 'width 40 (channels past one 64-bit word from layer 2 on), size 32', config: { inChannels: 3, width: 40, numClasses: 10 }, size: 32, n: 2 },
];

for (const c of CASES) {
  test(`packed engine = LibTorch's float network: ${c.name}`, async () => {
    const dir = tempDir('infer');
    const { float, model } = await randomNetwork(c.config, 7 + c.size, dir);
    try {
      const packed = path.join(dir, 'net.packed.safetensors');
      const r = await exportPacked(float, packed);
      assert.equal(r.floatBytes, fs.statSync(float).size);
      assert.equal(r.packedBytes, fs.statSync(packed).size);
      const channels = c.config.inChannels!;
      const x = new Float32Array(c.n * channels * c.size * c.size).map((_, i) => Math.sin(i * 12.9898) * 1.7);
      const shape: [number, number, number, number] = [c.n, channels, c.size, c.size];
      const expected = await torchLogits(model, x, shape);
      using engine = await InferenceModel.load(packed);
      assert.equal(engine.info.numClasses, c.config.numClasses);
      assert.equal(engine.info.inChannels, channels);
      for (const isa of inferenceIsas().supported) {
        const got = await engine.predict({ data: x, shape }, { isa, threads: isa === 'baseline' ? 1 : 2, batchSize: 2 });
        const { sameClass, maxRel } = compareLogits(got.logits, expected, c.config.numClasses!, `${c.name} on ${isa}`);
        assert.ok(maxRel <= 1e-4, `${c.name} on ${isa}: logits differ by ${maxRel} (relative)`);
        assert.equal(sameClass, c.n, `${c.name} on ${isa}: same class for every image`);
        assert.equal(got.top[0]!.length, Math.min(5, c.config.numClasses!));
        assert.equal(got.top[0]![0]!.classIndex, got.classes[0]);
        const p = got.top[0]!.reduce((a, s) => a + s.probability, 0);
        assert.ok(p > 0 && p <= 1 + 1e-6);
      }
    } finally {
      model.dispose();
    }
  });
}

test('Fashion-MNIST test images, uint8 input normalised by the file: the same classes as LibTorch', async (t) => {
  if (!need(t, fs.existsSync(FMNIST) ? undefined : `${FMNIST} is missing (apt-get install dataset-fashion-mnist)`)) return;
  const dir = tempDir('infer-fmnist');
  const { float, model } = await randomNetwork({ inChannels: 1, width: 16, numClasses: 10 }, 3, dir);
  try {
    const packed = path.join(dir, 'fm.packed.safetensors');
    const mean = 0.286;
    const std = 0.353;
    const names = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];
    await exportPacked(float, packed, { input: { channels: 1, height: 28, width: 28, mean: [mean], std: [std] }, classNames: names });
    const images = await readIdx(path.join(FMNIST, 't10k-images-idx3-ubyte.gz'));
    const n = 500;
    const pixels = images.data.subarray(0, n * 784);
    const table = normalizationTable(mean, std);
    const x = Float32Array.from(pixels, (v) => table[v]!);
    const expected = await torchLogits(model, x, [n, 1, 28, 28]);
    using engine = await InferenceModel.load(packed);
    assert.deepEqual(engine.info.input, { channels: 1, height: 28, width: 28, mean: [mean], std: [std] });
    assert.deepEqual(engine.info.classNames, names);
    const got = await engine.predict({ data: pixels, shape: [n, 28, 28, 1] });
    // Real images have flat regions whose values sit exactly where a sign threshold can fall
    // within float32 rounding: the engine's exact integer sums and LibTorch's float accumulation
    // can then break that tie differently (PyTorch itself does, float32 against float64:
    // bench/peer/float_ties.py). So: nearly every image within 1e-4, the classes all but equal.
    const k = 10;
    let within = 0;
    let sameClass = 0;
    for (let i = 0; i < n; i++) {
      const r = compareLogits(got.logits.subarray(i * k, (i + 1) * k), expected.subarray(i * k, (i + 1) * k), k, `image ${i}`);
      if (r.maxRel <= 1e-4) within++;
      sameClass += r.sameClass;
    }
    assert.ok(within >= 0.98 * n, `${within} of ${n} images within 1e-4`);
    assert.ok(sameClass >= n - 2, `${sameClass} of ${n} images in the same class`);
    assert.equal(got.top[0]![0]!.label, names[got.classes[0]!]);
  } finally {
    model.dispose();
  }
});

test('predictFiles: PNG files decode, resize and normalise to what predict() gets from the same pixels', async (t) => {
  if (!need(t, pythonProblem(['PIL']))) return;
  const dir = tempDir('infer-files');
  const { float, model } = await randomNetwork({ inChannels: 1, width: 8, numClasses: 10 }, 13, dir);
  model.dispose();
  const packed = path.join(dir, 'p.safetensors');
  await exportPacked(float, packed, { input: { channels: 1, height: 28, width: 28, mean: [0.286], std: [0.353] } });
  const n = 4;
  const pixels = Uint8Array.from({ length: n * 784 }, (_, i) => (i * 37 + (i >> 5) * 11) % 256);
  const files = Array.from({ length: n }, (_, i) => path.join(dir, `img${i}.png`));
  const raw = path.join(dir, 'pixels.bin');
  fs.writeFileSync(raw, pixels);
  runPython('import sys\nfrom PIL import Image\ndata = open(sys.argv[1], "rb").read()\nfor i, f in enumerate(sys.argv[2:]):\n    Image.frombytes("L", (28, 28), data[i * 784:(i + 1) * 784]).save(f)', [raw, ...files]);
  using engine = await InferenceModel.load(packed);
  const direct = await engine.predict({ data: pixels, shape: [n, 28, 28, 1] });
  const fromFiles = await engine.predictFiles(files);
  assert.deepEqual(Array.from(fromFiles.logits), Array.from(direct.logits));
  await assert.rejects(engine.predictFiles([path.join(dir, 'missing.png')]), /missing\.png/);
  fs.writeFileSync(path.join(dir, 'junk.png'), 'not a png');
  await assert.rejects(engine.predictFiles([path.join(dir, 'junk.png')]), (e: unknown) => isBnnError(e) && /junk\.png/.test((e as Error).message));
});

test('a predicting process never loads LibTorch', async () => {
  const dir = tempDir('infer-nolibtorch');
  const { float, model } = await randomNetwork({ inChannels: 1, width: 8, numClasses: 10 }, 5, dir);
  model.dispose();
  const packed = path.join(dir, 'p.safetensors');
  await exportPacked(float, packed);
  const script = `
    import fs from 'node:fs';
    const { InferenceModel } = await import(${JSON.stringify(path.join(packageRoot, 'src', 'index.ts'))});
    const m = await InferenceModel.load(${JSON.stringify(packed)});
    const r = await m.predict({ data: new Float32Array(2 * 784), shape: [2, 1, 28, 28] });
    const maps = fs.readFileSync('/proc/self/maps', 'utf8');
    console.log(JSON.stringify({ count: r.count, torch: /lib(torch|c10)[^/\\s]*\\.so/.test(maps), infer: maps.includes('bnn_infer.node') }));
  `;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', cwd: packageRoot });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout.trim()), { count: 2, torch: false, infer: true });
});

test('bad packed files and bad input are clear errors', async () => {
  const dir = tempDir('infer-bad');
  const { float, model } = await randomNetwork({ inChannels: 1, width: 8, numClasses: 10 }, 9, dir);
  const packed = path.join(dir, 'ok.safetensors');
  await exportPacked(float, packed);
  const bytes = fs.readFileSync(packed);
  const expectCode = async (file: string, code: string, why: string) => {
    await assert.rejects(InferenceModel.load(file), (e: unknown) => isBnnError(e) && e.code === code && e.message.length > 10, why);
  };
  // Truncated anywhere: header length, header, data.
  for (const cut of [4, 20, bytes.length - 100, bytes.length - 1]) {
    const f = path.join(dir, `cut-${cut}.safetensors`);
    fs.writeFileSync(f, bytes.subarray(0, cut));
    await expectCode(f, 'BNN_IO', `truncated at ${cut}`);
  }
  // Another format version.
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = bytes.subarray(8, 8 + headerLength).toString('utf8');
  const version = /"(bnn_infer\.version)"\s*:\s*"(\d+)"/.exec(header);
  assert.ok(version, `the version is in __metadata__: ${header.slice(0, 400)}`);
  const bumped = header.replace(version[0], version[0].replace(`"${version[2]}"`, `"${Number(version[2]) + 1}"`.padEnd(version[2]!.length + 2)));
  const f = path.join(dir, 'future.safetensors');
  fs.writeFileSync(f, Buffer.concat([bytes.subarray(0, 8), Buffer.from(bumped.padEnd(headerLength), 'utf8').subarray(0, headerLength), bytes.subarray(8 + headerLength)]));
  await expectCode(f, 'BNN_IO', 'another version');
  // The float weights file is not a packed model.
  await assert.rejects(InferenceModel.load(float), (e: unknown) => isBnnError(e) && /pack/i.test((e as Error).message));
  await assert.rejects(InferenceModel.load(path.join(dir, 'missing.safetensors')), (e: unknown) => isBnnError(e) && e.code === 'BNN_IO');
  await assert.rejects(InferenceModel.load(dir), (e: unknown) => isBnnError(e) && e.code === 'BNN_IO' && /regular file/.test((e as Error).message), 'a folder');
  // A header of a million keys is refused quickly, not parsed for minutes.
  const keys = `{${Array.from({ length: 300_000 }, (_, i) => `"k${i}":0`).join(',')}}`;
  const huge = Buffer.concat([Buffer.alloc(8), Buffer.from(keys)]);
  huge.writeBigUInt64LE(BigInt(keys.length), 0);
  fs.writeFileSync(path.join(dir, 'huge.safetensors'), huge);
  await expectCode(path.join(dir, 'huge.safetensors'), 'BNN_IO', 'too many JSON values');
  // Metadata the facade relies on is checked, not trusted.
  const withSpec = path.join(dir, 'spec.safetensors');
  await exportPacked(float, withSpec, { input: { channels: 1, height: 28, width: 28, mean: [0.3], std: [0.3] } });
  const spec = fs.readFileSync(withSpec);
  const specLength = Number(spec.readBigUInt64LE(0));
  const specHeader = spec.subarray(8, 8 + specLength).toString('utf8');
  const broken = specHeader.replace('"std\\":[0.3]', '"std\\":[0.0]');
  assert.notEqual(broken, specHeader, 'the spec sits in the header as escaped JSON');
  fs.writeFileSync(path.join(dir, 'badspec.safetensors'), Buffer.concat([spec.subarray(0, 8), Buffer.from(broken), spec.subarray(8 + specLength)]));
  await assert.rejects(InferenceModel.load(path.join(dir, 'badspec.safetensors')), (e: unknown) => isBnnError(e) && /input\.std\[0\]/.test((e as Error).message));
  // A stage-1 network is refused unless asked for.
  manualSeed(1);
  using stage1 = createModel({ inChannels: 1, width: 8, numClasses: 10 });
  const s1 = path.join(dir, 's1.safetensors');
  await stage1.saveWeights(s1);
  await assert.rejects(exportPacked(s1, path.join(dir, 's1.packed.safetensors')), (e: unknown) => isBnnError(e) && /binaryWeights|1-bit|float weights/i.test((e as Error).message));
  await exportPacked(s1, path.join(dir, 's1.packed.safetensors'), { allowFloatWeights: true });

  using engine = await InferenceModel.load(packed);
  await assert.rejects(engine.predict({ data: new Float32Array(10), shape: [1, 1, 28, 28] }), RangeError);
  await assert.rejects(engine.predict({ data: new Float32Array(2 * 3 * 28 * 28), shape: [2, 3, 28, 28] }), RangeError);
  await assert.rejects(engine.predict({ data: new Float64Array(784) as unknown as Float32Array, shape: [1, 1, 28, 28] }), TypeError);
  await assert.rejects(engine.predict({ data: new Uint8Array(784), shape: [1, 28, 28, 1] }), /normalisation/, 'uint8 needs the stored normalisation');
  await assert.rejects(engine.predict({ data: new Float32Array(784), shape: [1, 1, 28, 28] }, { topK: 11 }), RangeError);
  const unsupported = INFER_ISAS.find((i) => !inferenceIsas().supported.includes(i));
  if (unsupported) await assert.rejects(engine.predict({ data: new Float32Array(784), shape: [1, 1, 28, 28] }, { isa: unsupported }), /isa|instruction/i);
  engine.dispose();
  await assert.rejects(engine.predict({ data: new Float32Array(784), shape: [1, 1, 28, 28] }), (e: unknown) => isBnnError(e) && e.code === 'BNN_DISPOSED');
  model.dispose();
});

test('the width-64 network packs at least 15x smaller than its float32 weights', async () => {
  const dir = tempDir('infer-size');
  const { float, model } = await randomNetwork({ inChannels: 3, width: 64, numClasses: 10 }, 11, dir);
  model.dispose();
  const r = await exportPacked(float, path.join(dir, 'w64.packed.safetensors'));
  assert.ok(r.floatBytes / r.packedBytes >= 15, `${r.floatBytes} / ${r.packedBytes} = ${(r.floatBytes / r.packedBytes).toFixed(1)}x`);
});

/** Runs one of native/infer/tests' scripts; its last line is the summary. */
function script(name: string, args: string[] = [], timeout = 600_000): { status: number | null; out: string } {
  const r = spawnSync('sh', [path.join(packageRoot, 'native', 'infer', 'tests', name), ...args], { encoding: 'utf8', timeout, maxBuffer: 64 << 20 });
  return { status: r.status, out: `${r.stdout}\n${r.stderr}` };
}

function tool(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

test('engine C++ tests: exact integer sums against a float reference convolution, every instruction set here', { timeout: 600_000 }, async (t) => {
  if (!need(t, tool('g++') ? undefined : 'g++ is not available')) return;
  const r = script('run-tests.sh');
  assert.equal(r.status, 0, r.out.slice(-4000));
  for (const isa of inferenceIsas().supported) assert.match(r.out, new RegExp(isa), `the tests ran on ${isa}`);
});

test('engine C++ tests on aarch64 (NEON and portable) under qemu-user', { timeout: 900_000 }, async (t) => {
  const missing = !tool('aarch64-linux-gnu-g++') ? 'aarch64-linux-gnu-g++ is not installed (apt-get install g++-aarch64-linux-gnu)' : !tool('qemu-aarch64') ? 'qemu-aarch64 is not installed (apt-get install qemu-user)' : undefined;
  if (!need(t, missing)) return;
  const r = script('run-arm.sh');
  assert.equal(r.status, 0, r.out.slice(-4000));
  assert.match(r.out, /neon/);
});

test('the packed-file reader survives its mutation fuzzer under AddressSanitizer and UBSan', { timeout: 600_000 }, async (t) => {
  if (!need(t, tool('g++') ? undefined : 'g++ is not available')) return;
  const r = script('run-fuzz.sh', [process.env.BNN_INFER_FUZZ_CASES ?? '3000']);
  assert.equal(r.status, 0, r.out.slice(-4000));
});

test('predictFiles cuts photographs as evaluation did: resize + centre crop equals Pillow (exact, DCT scaling off) and the training pipeline (on)', { timeout: 120_000 }, async (t) => {
  if (!need(t, pythonProblem(CORPUS_MODULES))) return;
  const files = imageCorpus().files.slice(0, 4);
  const ref = pillowEval(
    files.map((f) => f.path),
    [{ size: 224, resize: 256 }],
  );
  const native = inferNative();
  for (const [i, f] of files.entries()) {
    const bytes = fs.readFileSync(f.path);
    for (const channels of [3, 1] as const) {
      const exact = await native.decodeImage(bytes, { width: 224, height: 224, channels, resize: 256, dctScaling: false });
      assert.deepEqual(Buffer.from(exact), Buffer.from(channels === 3 ? ref[i]![0]!.rgb : ref[i]![0]!.grey), `${f.path} ${channels} channel(s)`);
      const fast = await native.decodeImage(bytes, { width: 224, height: 224, channels, resize: 256 });
      const training = await renderImage(bytes, { mode: 'eval', size: 224, resize: 256 }, { channels });
      assert.deepEqual(Buffer.from(fast), Buffer.from(training.data), `${f.path}: the same pixels as bnn eval's loader`);
    }
  }
  assert.throws(() => native.decodeImage(fs.readFileSync(files[0]!.path), { width: 224, height: 200, channels: 3, resize: 256 }), /width == height/);
  assert.throws(() => checkInputSpec({ channels: 3, height: 224, width: 224, mean: [0, 0, 0], std: [1, 1, 1], resize: 200 }), /at least the crop/);
  assert.throws(() => checkInputSpec({ channels: 3, height: 224, width: 224, mean: [0, 0, 0], std: [1, 1, 1], dctScaling: true }), /only with resize/);
  assert.deepEqual(checkInputSpec({ channels: 1, height: 8, width: 8, mean: [0], std: [1], resize: 9, dctScaling: false }), { channels: 1, height: 8, width: 8, mean: [0], std: [1], resize: 9, dctScaling: false });
});
