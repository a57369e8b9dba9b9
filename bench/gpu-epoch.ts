// Does the input pipeline keep the device busy? (issue 15: "one epoch of a prepared image store
// keeps the GPU busy >= 90% of the time; report the loader's share".) In one process on one
// device, the same network and batch size two ways:
//   resident  the training step on one batch already on the device, repeated: the step's own
//             time, with no input work at all;
//   epoch     one epoch of a prepared store through Dataset.fromImages + DataLoader(device) +
//             Trainer, as `bnn train --data <store> --preset imagenet` runs it (RandomResizedCrop
//             224, flip, colour jitter and PCA lighting on the decoder threads).
// It prints the device's busy share, steps x resident step time / epoch time (the share of the
// epoch in which the device did the step's work; input that keeps ahead gives ~100%), the loader's
// share (the epoch's dataWaitSeconds, the time the loop waited for a batch, over the epoch time),
// and on CUDA the GPU utilisation nvidia-smi samples every 100 ms during the epoch. It trains
// --epochs epochs (2) and judges the last: the first pays the fresh model's warm-up (optimizer
// state, allocator growth, cuDNN plans for the Trainer's path), which a real run pays once, not
// every epoch; its figures are printed too.
//
//   node --import tsx bench/gpu-epoch.ts                         # CUDA when present, else the CPU
//   node --import tsx bench/gpu-epoch.ts --device cpu --images 768 --batch 64 --width 16 --size 64
//
// The store: --store PATH reuses one; otherwise the photographs in --photos DIR (ImageFolder
// layout: DIR/<class>/*.jpg, or DIR/train/<class>/...; default .carry/photos, which
// scripts/make-gpu-carry fills from scripts/image-corpus.py) are listed over and over up to
// --images records (default 10240, 40 batches of 256) and prepared with prepareStore (short side
// 256, as `bnn prepare`). Repeated photographs cost the decoders as much as distinct ones: every
// record is decoded, cropped and jittered afresh. Other options: --batch (256), --width (64),
// --size (224), --stage 1|2 (1), --workers (decoder threads; default: the machine's cores),
// --precision (auto: bfloat16 on CUDA GPUs that have it), --steps (resident steps, 20), --epochs
// (2), --json FILE.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import {
  Adam,
  cudaAvailable,
  createModel,
  DataLoader,
  Dataset,
  libtorchInfo,
  manualSeed,
  prepareStore,
  resolvePrecision,
  PRESETS,
  StepMetrics,
  Trainer,
  trainStep,
  type Precision,
} from '../src/index.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
function num(name: string, fallback: number): number {
  const v = flag(name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`bench/gpu-epoch: --${name} must be a positive number, got '${v}'`);
  return n;
}

const device = flag('device') ?? (cudaAvailable() ? 'cuda' : 'cpu');
const images = num('images', 10240);
const batch = num('batch', 256);
const width = num('width', 64);
const size = num('size', 224);
const stage = num('stage', 1) === 2 ? 2 : 1;
const workers = num('workers', os.availableParallelism());
const residentSteps = num('steps', 20);
const epochs = num('epochs', 2);
if (!Number.isInteger(epochs)) throw new Error(`bench/gpu-epoch: --epochs must be a whole number >= 1, got ${epochs}`);
const precision = resolvePrecision((flag('precision') ?? 'auto') as Precision | 'auto', device as 'cpu');
const preset = PRESETS.imagenet;

function log(text: string): void {
  process.stderr.write(`${text}\n`);
}

/** Photographs in ImageFolder layout: [path, class index] pairs. */
function listPhotos(dir: string): [string, number][] {
  const root = fs.existsSync(path.join(dir, 'train')) ? path.join(dir, 'train') : dir;
  const classes = fs.readdirSync(root, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort();
  const out: [string, number][] = [];
  classes.forEach((c, label) => {
    for (const f of fs.readdirSync(path.join(root, c)).sort()) if (/\.(jpe?g|png)$/i.test(f)) out.push([path.join(root, c, f), label]);
  });
  return out;
}

async function makeStore(): Promise<{ store: string; photos: number; prepareSeconds: number; cleanup(): void }> {
  const given = flag('store');
  if (given !== undefined) return { store: given, photos: 0, prepareSeconds: 0, cleanup: () => undefined };
  let photos = flag('photos') ?? path.join(repo, '.carry', 'photos');
  if (!fs.existsSync(photos)) {
    photos = path.join(os.tmpdir(), 'bnn-gpu-epoch-photos');
    if (!fs.existsSync(path.join(photos, 'corpus.json'))) {
      log(`no photographs given: scripts/image-corpus.py ${photos} --count 64`);
      const r = spawnSync(process.env.PYTHON ?? 'python3', [path.join(repo, 'scripts', 'image-corpus.py'), photos, '--count', '64', '--force'], { stdio: 'inherit' });
      if (r.status !== 0) throw new Error('bench/gpu-epoch: no --photos or --store, and scripts/image-corpus.py failed (it needs pillow and numpy)');
    }
  }
  const files = listPhotos(photos);
  if (files.length === 0) throw new Error(`bench/gpu-epoch: no JPEG or PNG files in ${photos}`);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'bnn-gpu-epoch-'));
  const list = path.join(work, 'train.txt');
  const lines: string[] = [];
  for (let i = 0; i < images; i++) {
    const [file, label] = files[i % files.length]!;
    lines.push(`${file} ${label}`);
  }
  fs.writeFileSync(list, `${lines.join('\n')}\n`);
  const store = path.join(work, 'train.bnnstore');
  const r = await prepareStore(list, store, { workers });
  log(`store: ${r.written} records from ${files.length} photographs in ${r.seconds.toFixed(1)} s`);
  return { store, photos: files.length, prepareSeconds: r.seconds, cleanup: () => fs.rmSync(work, { recursive: true, force: true }) };
}

/** nvidia-smi's utilisation samples (percent) while running; none without CUDA or nvidia-smi. */
function sampleGpu(): { stop(): number[] } {
  if (!device.startsWith('cuda')) return { stop: () => [] };
  const samples: number[] = [];
  let child: ChildProcess | undefined;
  try {
    child = spawn('nvidia-smi', ['--query-gpu=utilization.gpu', '--format=csv,noheader,nounits', '-lms', '100'], { stdio: ['ignore', 'pipe', 'ignore'] });
    child.on('error', () => undefined);
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      for (const line of chunk.split('\n')) {
        const v = Number(line.trim().split(/\s*,\s*/)[0]);
        if (line.trim() !== '' && Number.isFinite(v)) samples.push(v);
      }
    });
  } catch {
    child = undefined;
  }
  return {
    stop(): number[] {
      child?.kill();
      return samples;
    },
  };
}

const { store, photos, prepareSeconds, cleanup } = await makeStore();
process.on('exit', cleanup);
const train = await Dataset.fromImages(store, { split: 'train', transform: { ...preset.images, size, mode: 'train' }, workers });
const classes = train.numClasses;
const stageOptions = stage === 1
  ? { epochs, lr: 1e-3, weightDecay: 1e-5, milestones: [], gammas: [] }
  : { epochs, lr: 2e-4, weightDecay: 0, milestones: [], gammas: [] };
const newModel = () => {
  manualSeed(0);
  const m = createModel({ numClasses: classes, inChannels: 3, width, stem: size >= 128 ? 'imagenet' : 'small', binaryWeights: stage === 2 });
  return device === 'cpu' ? m : m.to(device as 'cuda');
};

// Resident: one loader batch, kept on the device, stepped over and over (warm-up excluded).
let residentStepSeconds: number;
{
  using loader = new DataLoader(train, { batchSize: batch, seed: 1, device: device as 'cpu', workers });
  let first: { images: import('../src/index.js').Tensor; labels: import('../src/index.js').Tensor; dispose(): void } | undefined;
  for await (const b of loader.epoch(0)) {
    first = b;
    break;
  }
  if (!first) throw new Error('bench/gpu-epoch: the store gave no batch');
  using model = newModel();
  using opt = new Adam(model, { lr: stageOptions.lr, weightDecay: stageOptions.weightDecay });
  model.train();
  const metrics = device.startsWith('cuda') ? new StepMetrics() : undefined;
  const step = () => trainStep(model, opt, first!.images, first!.labels, { precision, ...(metrics ? { metrics } : {}) });
  for (let i = 0; i < 5; i++) await step();
  if (metrics) await metrics.read();
  const t = performance.now();
  for (let i = 0; i < residentSteps; i++) await step();
  if (metrics) await metrics.read(); // waits for the queued steps
  residentStepSeconds = (performance.now() - t) / 1000 / residentSteps;
  metrics?.dispose();
  first.dispose();
}

// The epochs, as bnn train runs them. The model is fresh, so the first epoch's first steps pay the
// warm-up the resident timing left out; the last epoch is judged. nvidia-smi samples that one.
using loader = new DataLoader(train, { batchSize: batch, seed: 0, device: device as 'cpu', workers });
using model = newModel();
let gpu: { stop(): number[] } | undefined;
// The share of an epoch the device spent on the steps' own work.
const busyOf = (seconds: number): number => Math.min(1, (loader.batchesPerEpoch * residentStepSeconds) / seconds);
const trainer = new Trainer({
  model,
  stage,
  options: stageOptions,
  train: loader,
  precision,
  callbacks: {
    onEpochBegin: ({ epoch }) => {
      if (epoch === epochs - 1) gpu = sampleGpu();
    },
    // Each epoch's figures as it ends, so a run cut short by its time limit still says something.
    onEpochEnd: (e) =>
      log(`epoch ${e.epoch + 1}/${epochs}: ${e.seconds.toFixed(2)} s, busy ${(100 * busyOf(e.seconds)).toFixed(1)}%, loader ${(100 * (e.dataWaitSeconds ?? 0) / e.seconds).toFixed(1)}%`),
  },
});
const logs = await trainer.fit();
const util = gpu?.stop() ?? [];
trainer.dispose();
train.dispose();

const steps = loader.batchesPerEpoch;
const perEpoch = logs.map((e) => ({
  seconds: e.seconds,
  imagesPerSecond: e.trainImagesPerSecond,
  dataWaitSeconds: e.dataWaitSeconds ?? 0,
  busyShare: busyOf(e.seconds),
  loaderShare: (e.dataWaitSeconds ?? 0) / e.seconds,
}));
const epoch = logs.at(-1);
const judged = perEpoch.at(-1)!;
const epochSeconds = judged.seconds;
const busy = judged.busyShare;
const loaderShare = judged.loaderShare;
const meanUtil = util.length ? util.reduce((a, b) => a + b, 0) / util.length : undefined;
const result = {
  device,
  gpu: device.startsWith('cuda') ? spawnSync('nvidia-smi', ['--query-gpu=name', '--format=csv,noheader'], { encoding: 'utf8' }).stdout?.trim() : os.cpus()[0]?.model,
  libtorch: libtorchInfo().version,
  precision,
  width,
  size,
  batch,
  stage,
  workers,
  photos,
  records: train.size,
  prepareSeconds,
  steps,
  residentStepSeconds,
  residentImagesPerSecond: batch / residentStepSeconds,
  epochSeconds,
  epochImagesPerSecond: epoch!.trainImagesPerSecond,
  dataWaitSeconds: epoch!.dataWaitSeconds,
  busyShare: busy,
  loaderShare,
  gpuUtilizationMean: meanUtil,
  gpuUtilizationSamples: util.length,
  trainLoss: epoch!.trainLoss,
  epochs: perEpoch,
};
const out = flag('json');
if (out !== undefined) fs.writeFileSync(out, `${JSON.stringify(result, null, 2)}\n`);
const pct = (v: number | undefined) => (v === undefined ? 'n/a' : `${(100 * v).toFixed(1)}%`);
console.log(
  `| device | width | batch | size | steps | resident step | epoch | busy | loader's share | ${device.startsWith('cuda') ? 'nvidia-smi util' : 'decoder threads'} |\n` +
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n' +
    `| ${result.gpu} (${device}, ${precision}) | ${width} | ${batch} | ${size} | ${steps} | ${(residentStepSeconds * 1000).toFixed(1)} ms (${result.residentImagesPerSecond.toFixed(0)} img/s) | ` +
    `${epochSeconds.toFixed(2)} s (${result.epochImagesPerSecond.toFixed(0)} img/s) | ${pct(busy)} | ${pct(loaderShare)} | ` +
    `${device.startsWith('cuda') ? (meanUtil === undefined ? 'n/a' : `${meanUtil.toFixed(0)}% (${util.length} samples)`) : String(workers)} |`,
);
const first = perEpoch[0]!;
console.log(
  `gpu-epoch: busy ${pct(busy)} of epoch ${perEpoch.length} (target >= 90%), the loader's share ${pct(loaderShare)}` +
    (perEpoch.length > 1 ? `; epoch 1, with the warm-up: busy ${pct(first.busyShare)}, loader ${pct(first.loaderShare)}` : ''),
);
