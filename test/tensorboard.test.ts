// TensorBoard event files and the weight diagnostics, checked against the real reader: the
// `tensorboard` Python package's EventAccumulator (pip install tensorboard) reads what the writer
// and `bnn train` wrote, tag by tag, step by step.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { packageRoot } from '../src/binding/native.js';
import { crc32c, defaultHistogramLimits, histogramOf, maskedCrc32c, TensorBoardWriter, tfRecord } from '../src/io/tensorboard.js';
import { snapshotWeights, tensorBoardCallbacks, WeightDiagnostics, type HostTensor } from '../src/train/diagnostics.js';
import { createModel } from '../src/nn/model.js';
import type { ModelConfig } from '../src/nn/model-config.js';
import { Tensor } from '../src/core/tensor.js';
import { loadFixture } from './support/fixtures.js';
import { randomImageSet, tempDir, writeIdxSplit } from './support/data-files.js';
import { assertThrowsCode } from './support/helpers.js';
import { need, PYTHON, pythonProblem } from './support/images.js';

// ------------------------------------------------------------------------------------------------
// The reader: everything EventAccumulator sees in a folder, as JSON.

const READER = String.raw`
import json, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
ea = EventAccumulator(sys.argv[1], size_guidance={'scalars': 0, 'histograms': 0, 'tensors': 0})
ea.Reload()
tags = ea.Tags()
out = {'file_version': ea.file_version, 'scalars': {}, 'histograms': {}, 'texts': {}}
for tag in tags['scalars']:
    out['scalars'][tag] = [[e.step, e.value] for e in ea.Scalars(tag)]
for tag in tags['histograms']:
    out['histograms'][tag] = [dict(step=e.step, min=e.histogram_value.min, max=e.histogram_value.max, num=e.histogram_value.num,
                                   sum=e.histogram_value.sum, sum_squares=e.histogram_value.sum_squares,
                                   bucket_limit=list(e.histogram_value.bucket_limit), bucket=list(e.histogram_value.bucket))
                              for e in ea.Histograms(tag)]
for tag in tags['tensors']:
    plugin = ea.SummaryMetadata(tag).plugin_data.plugin_name
    out['texts'][tag] = [[e.step, plugin, [s.decode('utf8') for s in e.tensor_proto.string_val]] for e in ea.Tensors(tag)]
# The loader TensorBoard's web app reads through, which turns v1 summaries into its plugins' tensors.
from tensorboard.backend.event_processing import plugin_event_accumulator
pea = plugin_event_accumulator.EventAccumulator(sys.argv[1], size_guidance={'tensors': 0})
pea.Reload()
out['plugins'] = {p: sorted(pea.PluginTagToContent(p)) if p in pea.ActivePlugins() else [] for p in ['scalars', 'histograms', 'text']}
print(json.dumps(out))
`;

interface Read {
  file_version: string | null;
  scalars: Record<string, [number, number][]>;
  histograms: Record<string, { step: number; min: number; max: number; num: number; sum: number; sum_squares: number; bucket_limit: number[]; bucket: number[] }[]>;
  texts: Record<string, [number, string, string[]][]>;
  /** Tags per plugin, as TensorBoard's web app finds them. */
  plugins: { scalars: string[]; histograms: string[]; text: string[] };
}

/** Every tag reaches its dashboard in the web app: Scalars, Histograms, Text. */
function assertDashboards(read: Read): void {
  assert.deepEqual(read.plugins, { scalars: Object.keys(read.scalars).sort(), histograms: Object.keys(read.histograms).sort(), text: Object.keys(read.texts).sort() });
}

function readEvents(dir: string): Read {
  const r = spawnSync(PYTHON, ['-c', READER, dir], { encoding: 'utf8', maxBuffer: 256 << 20 });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`the tensorboard reader failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout) as Read;
}

const readerProblem = (): string | undefined => {
  const p = pythonProblem(['tensorboard']);
  return p && p.replace(/\(pip install[^)]*\)/, '(pip install tensorboard)');
};

// ------------------------------------------------------------------------------------------------

test('CRC-32C matches the published check values (RFC 3720 B.4, the CRC catalogue)', () => {
  const bytes = (f: (i: number) => number): Uint8Array => Uint8Array.from({ length: 32 }, (_, i) => f(i));
  assert.equal(crc32c(new TextEncoder().encode('123456789')), 0xe3069283);
  assert.equal(crc32c(new Uint8Array(0)), 0);
  assert.equal(crc32c(bytes(() => 0)), 0x8a9136aa);
  assert.equal(crc32c(bytes(() => 0xff)), 0x62a8ab43);
  assert.equal(crc32c(bytes((i) => i)), 0x46dd794e);
  assert.equal(crc32c(bytes((i) => 31 - i)), 0x113fdb5c);
  // The mask: rotate right by 15, add 0xa282ead8 (mod 2^32).
  const c = 0xe3069283;
  assert.equal(maskedCrc32c(new TextEncoder().encode('123456789')), ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) % 2 ** 32);
});

test('a TFRecord frame is byte for byte what tensorboard\'s own RecordWriter writes', (t) => {
  if (!need(t, readerProblem())) return;
  const payloads = ['', 'x', 'hello tensorboard', 'é'.repeat(300)].map((s) => Buffer.from(s, 'utf8'));
  const py = String.raw`
import io, sys
from tensorboard.summary.writer.record_writer import RecordWriter
out = io.BytesIO(); w = RecordWriter(out)
for h in sys.argv[1:]: w.write(bytes.fromhex(h))
sys.stdout.write(out.getvalue().hex())
`;
  const r = spawnSync(PYTHON, ['-c', py, ...payloads.map((p) => p.toString('hex'))], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(Buffer.concat(payloads.map((p) => tfRecord(p))).toString('hex'), r.stdout);
});

test('histogramOf buckets as TensorFlow does: default edges, empty runs merged, totals kept', () => {
  const limits = defaultHistogramLimits();
  // The loop of histogram.cc (and of torch.utils.tensorboard's default_bins), run by Python.
  const py = 'v = 1e-12\nb = []\nwhile v < 1e20:\n    b.append(v)\n    v *= 1.1\nprint(repr(b))';
  const r = spawnSync(PYTHON, ['-c', py], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const positive = JSON.parse(r.stdout) as number[];
  assert.equal(positive.length, 774);
  assert.deepEqual([...limits], [-Number.MAX_VALUE, ...positive.map((v) => -v).reverse(), 0, ...positive, Number.MAX_VALUE]);
  assert.equal(limits.length, 1551);
  for (let i = 1; i < limits.length; i++) assert.ok(limits[i]! > limits[i - 1]!);
  const values = [0.5, -0.25, 1.5, 0, 0, 3, -3, 1e-13];
  const h = histogramOf(values);
  assert.deepEqual([h.min, h.max, h.num], [-3, 3, 8]);
  assert.equal(h.sum, values.reduce((a, b) => a + b, 0));
  assert.equal(h.sumSquares, values.reduce((a, b) => a + b * b, 0));
  assert.equal(h.bucket.reduce((a, b) => a + b, 0), 8);
  // Every value lies in its bucket [previous limit, limit); empty buckets never come twice in a row.
  for (const v of values) {
    const i = h.bucketLimit.findIndex((l) => l > v);
    assert.ok(h.bucket[i]! > 0, `the bucket of ${v}`);
  }
  for (let i = 1; i < h.bucket.length; i++) assert.ok(h.bucket[i]! > 0 || h.bucket[i - 1]! > 0);
  // 0, 0 and 1e-13 share the bucket [0, 1e-12): six buckets hold values.
  assert.equal(h.bucket.filter((b) => b > 0).length, 6);
  assertThrowsCode(() => histogramOf([1, NaN]), RangeError, 'BNN_INVALID_ARGUMENT', /non-finite/);
});

test('the writer checks its arguments and refuses use after close', () => {
  const dir = tempDir('bnn-tb-args');
  assertThrowsCode(() => new TensorBoardWriter({} as never), TypeError, 'BNN_INVALID_TYPE', /logDir/);
  assertThrowsCode(() => new TensorBoardWriter({ logDir: dir, filenameSuffix: 'a/b' }), RangeError, 'BNN_INVALID_ARGUMENT', /filenameSuffix/);
  assertThrowsCode(() => new TensorBoardWriter({ logDir: dir, flushSeconds: -1 }), RangeError, 'BNN_INVALID_ARGUMENT', /flushSeconds/);
  const w = new TensorBoardWriter({ logDir: dir, filenameSuffix: '.v2' });
  assert.match(path.basename(w.path), new RegExp(`^events\\.out\\.tfevents\\.\\d{10}\\.[^.]+(\\.[^.]+)*\\.${process.pid}\\.\\d+\\.v2$`));
  assertThrowsCode(() => w.addScalar('', 1, 0), RangeError, 'BNN_INVALID_ARGUMENT', /tag/);
  assertThrowsCode(() => w.addScalar('a', 1, -1), RangeError, 'BNN_INVALID_ARGUMENT', /step/);
  assertThrowsCode(() => w.addScalar('a', 1, 1.5), TypeError, 'BNN_INVALID_TYPE', /step/);
  assertThrowsCode(() => w.addScalar('a', '1' as never, 1), TypeError, 'BNN_INVALID_TYPE', /value/);
  assertThrowsCode(() => w.addText('a', 3 as never, 1), TypeError, 'BNN_INVALID_TYPE', /text/);
  w.close();
  w.close(); // twice is fine
  assert.ok(w.closed);
  assertThrowsCode(() => w.addScalar('a', 1, 0), Error, 'BNN_DISPOSED', /closed/);
  // Two writers of one process in the same second get two files.
  using a = new TensorBoardWriter({ logDir: dir });
  using b = new TensorBoardWriter({ logDir: dir });
  assert.notEqual(a.path, b.path);
});

/** Writes the test's known events: 3 scalar tags, a histogram, a text; returns what was written. */
function writeKnown(dir: string) {
  const scalars: Record<string, [number, number][]> = {
    'train/loss': [0, 10, 20, 30, 40].map((s) => [s, 2.3 / (1 + s / 10)]),
    'train/accuracy': [10, 20, 30].map((s) => [s, s / 100]),
    'test/accuracy': [[40, 0.8765]],
  };
  const values = Float32Array.from({ length: 1000 }, (_, i) => Math.sin(i) * 1.3);
  const text = '    {\n      "width": 16\n    }\n';
  const w = new TensorBoardWriter({ logDir: dir });
  for (const [tag, points] of Object.entries(scalars)) for (const [s, v] of points) w.addScalar(tag, v, s);
  w.flush();
  w.addHistogram('weights/layer1.0.conv', values, 40);
  w.addText('config', text, 0);
  w.close();
  return { path: w.path, scalars, values, text };
}

test('the real reader (EventAccumulator) reads back every scalar, the histogram and the text', (t) => {
  if (!need(t, readerProblem())) return;
  const dir = tempDir('bnn-tb-read');
  const known = writeKnown(dir);
  const read = readEvents(dir);
  assert.equal(read.file_version, 2, 'the first record says brain.Event:2');
  assert.deepEqual(Object.keys(read.scalars).sort(), Object.keys(known.scalars).sort());
  for (const [tag, points] of Object.entries(known.scalars)) {
    // simple_value is a float32.
    assert.deepEqual(read.scalars[tag], points.map(([s, v]) => [s, Math.fround(v)]), tag);
  }
  const [h] = read.histograms['weights/layer1.0.conv']!;
  const expected = histogramOf(known.values);
  assert.equal(h!.step, 40);
  assert.equal(h!.num, 1000);
  assert.equal(h!.min, Math.min(...known.values));
  assert.equal(h!.max, Math.max(...known.values));
  assert.equal(h!.sum, expected.sum);
  assert.deepEqual(h!.bucket_limit, expected.bucketLimit);
  assert.deepEqual(h!.bucket, expected.bucket);
  assert.deepEqual(read.texts.config, [[0, 'text', [known.text]]]);
  assertDashboards(read);
});

test('a file cut short mid-record reads up to the cut; a bad CRC stops the reader there', (t) => {
  if (!need(t, readerProblem())) return;
  const dir = tempDir('bnn-tb-cut');
  const known = writeKnown(dir);
  const bytes = fs.readFileSync(known.path);
  // The last record is the text: cut 7 bytes before its end, inside its payload.
  const cutDir = tempDir('bnn-tb-cut2');
  fs.writeFileSync(path.join(cutDir, path.basename(known.path)), bytes.subarray(0, bytes.length - 7));
  const cut = readEvents(cutDir);
  assert.deepEqual(cut.texts, {}, 'the cut record is not read');
  for (const [tag, points] of Object.entries(known.scalars)) assert.equal(cut.scalars[tag]!.length, points.length, tag);
  assert.equal(cut.histograms['weights/layer1.0.conv']!.length, 1);
  // Cut inside the 12-byte header of a record too (length + its CRC): still every earlier record.
  const headerCut = tempDir('bnn-tb-cut3');
  let at = 0;
  const ends: number[] = [];
  while (at < bytes.length) {
    at += 12 + Number(bytes.readBigUInt64LE(at)) + 4;
    ends.push(at);
  }
  assert.equal(at, bytes.length, 'the file is whole records');
  assert.equal(ends.length, 1 + 9 + 1 + 1, 'file_version, 9 scalars, a histogram, a text');
  fs.writeFileSync(path.join(headerCut, path.basename(known.path)), bytes.subarray(0, ends[9]! + 5)); // 5 bytes into the histogram's header
  const h = readEvents(headerCut);
  assert.equal(Object.values(h.scalars).reduce((n, p) => n + p.length, 0), 9);
  assert.deepEqual(h.histograms, {});
  // A flipped payload byte: the reader's CRC check refuses that record and stops.
  const badDir = tempDir('bnn-tb-crc');
  const bad = Buffer.from(bytes);
  bad[ends[0]! + 12 + 3]! ^= 0x01; // inside the first scalar's payload
  fs.writeFileSync(path.join(badDir, path.basename(known.path)), bad);
  const b = readEvents(badDir);
  assert.equal(Object.values(b.scalars).reduce((n, p) => n + p.length, 0), 0);
});

test('WeightDiagnostics: flip ratio since the last measurement and the share outside [-1, 1]', () => {
  const w = Float32Array.from([0.5, -0.5, 1.5, -2, 0, 0.1, -0.1, 0.9]);
  const state = new Map<string, HostTensor>([
    ['layer1.0.conv.weight', { shape: [2, 1, 2, 2], data: w }],
    ['layer1.0.bn.weight', { shape: [2], data: [1, 2] }],
    ['layer1.0.bn.running_mean', { shape: [2], data: [0, 0] }],
    ['conv1.weight', { shape: [1], data: [5] }], // the stem is not binary
  ]);
  const d = new WeightDiagnostics();
  const first = d.measure(state);
  assert.deepEqual(first, [{ layer: 'layer1.0.conv', weights: 8, outsideWindow: 2 / 8 }]);
  const w2 = Float32Array.from(w);
  w2[0] = -0.5; // + -> -
  w2[4] = -1e-6; // 0 counts as +, so this flips
  w2[6] = 0; // - -> +
  w2[7] = 0.2; // no flip
  const second = d.measure(new Map([...state, ['layer1.0.conv.weight', { shape: [2, 1, 2, 2], data: w2 }]]));
  assert.deepEqual(second, [{ layer: 'layer1.0.conv', weights: 8, flipRatio: 3 / 8, outsideWindow: 2 / 8 }]);
  assert.equal(d.measure(new Map([...state, ['layer1.0.conv.weight', { shape: [2, 1, 2, 2], data: w2 }]]))[0]!.flipRatio, 0);
  d.reset();
  assert.equal(d.measure(state)[0]!.flipRatio, undefined);
  const snap = snapshotWeights(state);
  assert.deepEqual([...snap.binaryConvs.keys()], ['layer1.0.conv']);
  assert.deepEqual([...snap.batchNormScales.entries()], [['layer1.0.bn', Float32Array.from([1, 2])]]);
});

test('snapshotWeights reads a live model: 16 binary convolutions and every BatchNorm of the ResNet-18', () => {
  using model = createModel({ numClasses: 10, inChannels: 1, width: 4 });
  const snap = snapshotWeights(model);
  assert.equal(snap.binaryConvs.size, 16);
  assert.equal(snap.binaryConvs.get('layer2.1.conv')!.length, 8 * 8 * 3 * 3);
  // bn1, 16 block BNs, 3 downsample BNs.
  assert.equal(snap.batchNormScales.size, 20);
  assert.ok(snap.batchNormScales.has('layer3.0.downsample.1'));
  const d = new WeightDiagnostics();
  d.measure(model);
  for (const x of d.measure(model)) assert.equal(x.flipRatio, 0, x.layer);
});

test("snapshotWeights: a model with downsample 'binary' has its 3 shortcut convolutions watched too; a state dict needs the option", () => {
  using model = createModel({ numClasses: 10, inChannels: 1, width: 4, downsample: 'binary' });
  const snap = snapshotWeights(model);
  assert.equal(snap.binaryConvs.size, 19);
  assert.equal(snap.binaryConvs.get('layer2.0.downsample.0')!.length, 8 * 4);
  const state = model.stateDict();
  try {
    assert.equal(snapshotWeights(state).binaryConvs.size, 16, 'a state dict cannot tell: the recipe default');
    assert.equal(snapshotWeights(state, { binaryDownsample: true }).binaryConvs.size, 19);
    assert.equal(snapshotWeights(model, { binaryDownsample: false }).binaryConvs.size, 16, 'the option overrides the model');
    const layers = new WeightDiagnostics().measure(state, { binaryDownsample: true }).map((d) => d.layer);
    assert.ok(layers.includes('layer4.0.downsample.0'), layers.join(', '));
  } finally {
    for (const t of state.values()) t.dispose();
  }
  // The recipe's full-precision shortcut stays out.
  using recipe = createModel({ numClasses: 10, inChannels: 1, width: 4 });
  assert.equal(snapshotWeights(recipe).binaryConvs.size, 16);
});

test('tensorBoardCallbacks: one global step across both stages, scalars every N steps', async (t) => {
  if (!need(t, readerProblem())) return;
  const dir = tempDir('bnn-tb-cb');
  const writer = new TensorBoardWriter({ logDir: dir });
  using model = createModel({ numClasses: 10, inChannels: 1, width: 4 });
  using batch = Tensor.randn([8, 1, 12, 12]);
  const cb = tensorBoardCallbacks({ writer, stepInterval: 3, config: 'hello', weights: model, activationBatch: batch });
  for (const stage of [1, 2] as const) {
    await cb.onTrainBegin!({ stage, epochs: 2, startEpoch: 0 });
    for (let epoch = 0; epoch < 2; epoch++) {
      for (let batch = 1; batch <= 4; batch++) {
        await cb.onBatchEnd!({ stage, epoch, batch, batches: 4, batchSize: 8, loss: stage + epoch + batch / 10, accuracy: 0.5, lr: 0.1, imagesPerSecond: 100 });
      }
      await cb.onEpochEnd!({ stage, epoch, lr: 0.1, trainLoss: stage * 10 + epoch, trainAccuracy: 0.5, seconds: 1, trainImagesPerSecond: 100 }, { model });
    }
  }
  writer.close();
  const read = readEvents(dir);
  // Steps 1..16 (4 batches x 2 epochs x 2 stages); every third.
  assert.deepEqual(read.scalars['train/loss']!.map(([s]) => s), [3, 6, 9, 12, 15]);
  assert.deepEqual(read.scalars['train/epoch_loss'], [[4, 10], [8, 11], [12, 20], [16, 21]]);
  assert.equal(read.scalars['test/loss'], undefined, 'no test source: no test tags');
  assert.deepEqual(read.texts.config, [[0, 'text', ['hello']]]);
  // From the live model: histograms every epoch; an unchanged model flips nothing.
  assert.deepEqual(read.histograms['weights/layer4.3.conv']!.map((h) => [h.step, h.num]), [4, 8, 12, 16].map((s) => [s, 32 * 32 * 9]));
  assert.deepEqual(read.scalars['diagnostics/all/flip_ratio'], [[8, 0], [12, 0], [16, 0]]);
  assert.equal(cb.diagnostics.measure(model)[0]!.flipRatio, 0);
  // Activation figures of the live model on the fixed batch, every epoch, the same each time.
  const expected = await model.activationStatistics(batch);
  const saturated = read.scalars['diagnostics/layer1.0.conv/activation_saturated']!;
  assert.deepEqual(saturated.map(([s]) => s), [4, 8, 12, 16]);
  for (const [, v] of saturated) assert.ok(Math.abs(v - expected[0]!.saturated) < 1e-6);
  for (const tag of ['activation_positive', 'constant_channels']) assert.equal(read.scalars[`diagnostics/all/${tag}`]!.length, 4, tag);
});

// The sign inputs as PyTorch's reference network computes them (forward hooks on the BatchNorm
// before each sign, train-mode statistics), from a golden fixture's weights and input.
const REFERENCE_ACTIVATIONS = `
import json, sys
import torch
from safetensors.torch import load_file
from safetensors import safe_open
sys.path.insert(0, sys.argv[1])
from bnn_reference import build_from_config
path = sys.argv[2]
with safe_open(path, "pt") as f:
    cfg = json.loads(f.metadata()["config"])
tensors = load_file(path)
model = build_from_config(cfg)
model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("state/")})
model.train()
out = []
def hook(name):
    def h(module, inputs, x):
        per_channel = (x >= 0).sum(dim=(0, 2, 3))
        n = x[0].numel() * x.shape[0] // x.shape[1]
        out.append({"layer": name, "values": x.numel(), "saturated": int((x.abs() >= 1).sum()), "positive": int((x >= 0).sum()),
                    "channels": x.shape[1], "constant": int(((per_channel == 0) | (per_channel == n)).sum())})
    return h
for name, m in model.named_modules():
    parts = name.split(".")
    if len(parts) == 3 and parts[0].startswith("layer") and parts[2] in ("bn", "bn1", "bn2"):
        m.register_forward_hook(hook(name[: -len(parts[2])] + "conv" + parts[2][2:]))
    # A binary shortcut's sign sees the block's input itself (downsample 'binary').
    if len(parts) == 4 and parts[2] == "downsample" and parts[3] == "0" and type(m).__name__ == "BinaryConv2d":
        m.register_forward_pre_hook(lambda mod, inp, n=name: hook(n)(mod, None, inp[0]))
with torch.no_grad():
    model(tensors["input"])
print(json.dumps(out))
`;

for (const name of ['model-small-c1-stage1', 'model-classic-imagenet-stage2', 'model-classic-none-binary-stage2']) {
  test(`Model.activationStatistics (${name}): PyTorch's sign inputs, and the model left as it was`, async (t) => {
    if (!need(t, pythonProblem(['torch', 'safetensors']))) return;
    const fx = loadFixture(name);
    const r = spawnSync(PYTHON, ['-c', REFERENCE_ACTIVATIONS, path.join(packageRoot, 'scripts', 'golden'), fx.file], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const expected = JSON.parse(r.stdout) as { layer: string; values: number; saturated: number; positive: number; channels: number; constant: number }[];
    using model = createModel(JSON.parse(fx.metadata.config!) as ModelConfig);
    model.loadStateDict(fx.group('state/'));
    model.eval();
    const before = [...model.buffers()].map(([k, v]) => [k, [...v.toFloat32Array()]] as const);
    const stats = await model.activationStatistics(fx.tensors.get('input')!);
    assert.deepEqual(stats.map((s) => s.layer), expected.map((e) => e.layer));
    // One per binary convolution: the blocks' 16, and the 3 shortcuts' with downsample 'binary'.
    const binaryShortcuts = name.includes('-binary-');
    assert.equal(stats.length, binaryShortcuts ? 19 : 16);
    assert.equal(stats.some((s) => s.layer === 'layer2.0.downsample.0'), binaryShortcuts);
    for (const [i, e] of expected.entries()) {
      const s = stats[i]!;
      assert.equal(s.values, e.values, e.layer);
      assert.equal(s.channels, e.channels, e.layer);
      // Float rounding can move a value across 0 or ±1: allow two elements either way.
      assert.ok(Math.abs(s.saturated * s.values - e.saturated) <= 2, `${e.layer}: saturated ${s.saturated * s.values} vs PyTorch ${e.saturated}`);
      assert.ok(Math.abs(s.positive * s.values - e.positive) <= 2, `${e.layer}: positive ${s.positive * s.values} vs PyTorch ${e.positive}`);
      assert.ok(Math.abs(s.constantChannels * s.channels - e.constant) <= 1, `${e.layer}: constant channels`);
    }
    // Discriminating: the fixture's layers are neither all saturated nor all balanced.
    assert.ok(expected.some((e) => e.saturated > 0 && e.saturated < e.values));
    assert.equal(model.training, false, 'eval mode kept');
    for (const [k, v] of before) assert.deepEqual([...model.buffers().get(k)!.toFloat32Array()], v, `${k} unchanged`);
  });
}

test('Model.activationStatistics: empty without binary activations; bad input is refused clearly', async () => {
  using relu = createModel({ numClasses: 10, inChannels: 1, width: 4, binaryActivations: false });
  assert.deepEqual(await relu.activationStatistics(Tensor.zeros([2, 1, 8, 8])), []);
  using model = createModel({ numClasses: 10, inChannels: 1, width: 4 });
  await assert.rejects(model.activationStatistics(Tensor.zeros([2, 3, 8, 8])), /inChannels = 1/);
});

// ------------------------------------------------------------------------------------------------
// bnn train end to end.

const BNN = path.join(packageRoot, 'src', 'cli', 'bnn.ts');

function bnn(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', BNN, ...args], { encoding: 'utf8', cwd: packageRoot, timeout: 180_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function fakeFashionMnist(train: number, testN: number): string {
  const dir = tempDir('bnn-tb-data');
  writeIdxSplit(dir, 'train', randomImageSet(train, 1, 28, 28, 10, 1), true);
  writeIdxSplit(dir, 'test', randomImageSet(testN, 1, 28, 28, 10, 2), true);
  return dir;
}

const eventFiles = (dir: string): string[] =>
  fs.readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => path.basename(f).startsWith('events.out.tfevents.'));

test('bnn train writes <run>/tensorboard: curves, histograms, diagnostics, config; --no-tensorboard writes none', { timeout: 240_000 }, (t) => {
  if (!need(t, readerProblem())) return;
  const data = fakeFashionMnist(192, 64);
  const out = path.join(tempDir('bnn-tb-cli'), 'run');
  // 192 images / 64 = 3 steps an epoch; 2 + 2 epochs: global steps 1..12, train/* at every 2nd.
  const r = bnn(['train', '--data', data, '--out', out, '--epochs', '2', '--width', '4', '--batch-size', '64', '--no-progress', '--seed', '1', '--tensorboard-interval', '2']);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(eventFiles(out).length, 1);
  const read = readEvents(path.join(out, 'tensorboard'));
  assert.equal(read.file_version, 2, 'the first record says brain.Event:2');
  const steps = (tag: string): number[] => (read.scalars[tag] ?? []).map(([s]) => s);
  for (const tag of ['train/loss', 'train/accuracy', 'train/learning_rate', 'train/images_per_second']) assert.deepEqual(steps(tag), [2, 4, 6, 8, 10, 12], tag);
  for (const tag of ['train/epoch_loss', 'train/epoch_accuracy', 'test/loss', 'test/accuracy', 'train/epoch_learning_rate']) assert.deepEqual(steps(tag), [3, 6, 9, 12], tag);
  // The per-epoch figures are those of metrics.jsonl (as float32).
  const epochs = fs
    .readFileSync(path.join(out, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, number>)
    .filter((e) => (e.type as unknown) === 'epoch');
  assert.equal(epochs.length, 4);
  assert.deepEqual(
    read.scalars['test/accuracy']!.map(([, v]) => v),
    epochs.map((e) => Math.fround(e.testAccuracy!)),
  );
  assert.deepEqual(
    read.scalars['train/epoch_loss']!.map(([, v]) => v),
    epochs.map((e) => Math.fround(e.trainLoss!)),
  );
  // Step s is in epoch ceil(s / 3) of the four: its learning rate (stage 2 drops at its milestone).
  assert.deepEqual(
    read.scalars['train/learning_rate']!.map(([s, v]) => [s, v]),
    [2, 4, 6, 8, 10, 12].map((s) => [s, Math.fround(epochs[Math.ceil(s / 3) - 1]!.lr!)]),
  );
  assert.deepEqual([...new Set(epochs.map((e) => e.lr))], [2e-3, 5e-4, 1e-4]);
  // Diagnostics for each of the 16 binary convolutions: share outside the window every epoch, flip
  // ratio from the second measurement on.
  const layers = Object.keys(read.scalars).filter((k) => k.endsWith('/outside_window') && !k.includes('/all/')).map((k) => k.split('/')[1]);
  assert.equal(layers.length, 16);
  for (const layer of layers) {
    assert.deepEqual(steps(`diagnostics/${layer}/outside_window`), [3, 6, 9, 12], layer);
    assert.deepEqual(steps(`diagnostics/${layer}/flip_ratio`), [6, 9, 12], layer);
    for (const [, v] of read.scalars[`diagnostics/${layer}/flip_ratio`]!) assert.ok(v >= 0 && v <= 1);
    const h = read.histograms[`weights/${layer}`]!;
    assert.deepEqual(h.map((x) => x.step), [3, 6, 9, 12]);
    assert.ok(h.every((x) => x.num > 0 && x.min < 0 && x.max > 0));
  }
  assert.ok(read.scalars['diagnostics/all/flip_ratio']!.some(([, v]) => v > 0), 'weights do flip while training');
  // Activation statistics on the fixed batch, every epoch, for the same 16 layers, and in metrics.jsonl beside the weight figures.
  for (const layer of layers) {
    for (const tag of ['activation_saturated', 'activation_positive', 'constant_channels']) {
      assert.deepEqual(steps(`diagnostics/${layer}/${tag}`), [3, 6, 9, 12], `${layer} ${tag}`);
      for (const [, v] of read.scalars[`diagnostics/${layer}/${tag}`]!) assert.ok(v >= 0 && v <= 1, `${layer} ${tag} ${v}`);
    }
  }
  assert.ok(read.scalars['diagnostics/all/activation_saturated']!.every(([, v]) => v > 0 && v < 1), 'some but not all sign inputs outside [-1, 1]');
  const records = fs
    .readFileSync(path.join(out, 'metrics.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.includes('"diagnostics"'))
    .map((l) => JSON.parse(l) as { layers: { layer: string; activationSaturated?: number }[] });
  assert.equal(records.length, 4);
  for (const r of records) assert.ok(r.layers.every((l) => typeof l.activationSaturated === 'number'), 'metrics.jsonl holds the activation figures');
  assert.equal(Object.keys(read.histograms).filter((k) => k.startsWith('batchnorm/')).length, 20);
  const [[step, plugin, [text]]] = read.texts.config as [[number, string, [string]]];
  assert.equal(step, 0);
  assert.equal(plugin, 'text');
  assert.deepEqual(JSON.parse(text.replace(/^ {4}/gm, '')), JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')));
  assertDashboards(read);

  const off = path.join(tempDir('bnn-tb-off'), 'run');
  const r2 = bnn(['train', '--data', data, '--out', off, '--epochs', '1', '--width', '4', '--batch-size', '64', '--no-progress', '--no-tensorboard']);
  assert.equal(r2.status, 0, r2.stderr);
  assert.ok(fs.existsSync(path.join(off, 'final.safetensors')));
  assert.deepEqual(eventFiles(off), []);
  assert.ok(!fs.existsSync(path.join(off, 'tensorboard')));
  assert.equal(bnn(['train', '--tensorboard-interval', '0', '--data', data]).status, 2);
});

test('bnn train --nproc 2: only rank 0 writes an event file, with the run\'s global steps', { timeout: 240_000 }, async (t) => {
  const { distributedBackends } = await import('../src/distributed/process-group.js');
  if (!distributedBackends().gloo) return t.skip('this build has no Gloo backend');
  if (!need(t, readerProblem())) return;
  const data = fakeFashionMnist(192, 64);
  const out = path.join(tempDir('bnn-tb-dist'), 'run');
  // Global batch 64 (2 x 32): 3 steps an epoch, as one process would take.
  const r = bnn(['train', '--nproc', '2', '--data', data, '--out', out, '--epochs', '1', '--width', '4', '--batch-size', '64', '--no-progress', '--seed', '1', '--tensorboard-interval', '1']);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(eventFiles(out).length, 1, 'one event file: rank 0 only');
  const read = readEvents(path.join(out, 'tensorboard'));
  assert.deepEqual(read.scalars['train/loss']!.map(([s]) => s), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(read.scalars['test/accuracy']!.map(([s]) => s), [3, 6]);
  assert.deepEqual(read.scalars['diagnostics/layer1.0.conv/flip_ratio']!.map(([s]) => s), [6]);
});

test('bnn train interrupted and resumed: the second event file continues the global step', { timeout: 240_000 }, async (t) => {
  if (!need(t, readerProblem())) return;
  const { spawn } = await import('node:child_process');
  const data = fakeFashionMnist(2048, 64);
  const out = path.join(tempDir('bnn-tb-resume'), 'run');
  // 2048 / 64 = 32 steps an epoch; 2 + 2 epochs: steps 1..128.
  const args = ['train', '--data', data, '--out', out, '--epochs', '2', '--width', '4', '--batch-size', '64', '--no-progress', '--seed', '1', '--tensorboard-interval', '4'];
  const child = spawn(process.execPath, ['--import', 'tsx', BNN, ...args], { cwd: packageRoot });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
    // Mid-way through stage 1's second epoch.
    if (/stage 1 epoch 1\/2/.test(stderr) && !child.killed) setTimeout(() => child.kill('SIGINT'), 400);
  });
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  assert.equal(code, 130, stderr);
  // --tensorboard-interval comes back from config.json, as the run's other flags do.
  const r = bnn(['train', '--resume', '--out', out, '--no-progress']);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(eventFiles(out).length, 2, 'one event file per process');
  const read = readEvents(path.join(out, 'tensorboard'));
  const steps = (tag: string): number[] => read.scalars[tag]!.map(([s]) => s);
  assert.deepEqual(steps('test/accuracy'), [32, 64, 96, 128]);
  assert.deepEqual(steps('train/loss'), Array.from({ length: 32 }, (_, i) => 4 * (i + 1)), 'every 4th step once, across both files');
  assert.ok(steps('diagnostics/all/flip_ratio').length >= 2);
});
