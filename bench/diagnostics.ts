// What the training diagnostics cost (issue: see inside a binary network while it trains): the
// end-of-epoch work of `bnn train`'s TensorBoard callbacks (weight histograms, flip ratio and
// window share, activation statistics on the fixed 256-image batch, the event-file write) and the
// per-step scalars, against the training epoch they ride on, measured in one process at the main
// job's settings (Fashion-MNIST, width 16, batch 128, 2 threads). Prints a markdown table with the
// share of epoch time; the target is <= 2%.
//
//   npm run bench:diagnostics              # width 16 (the main job), 7 rounds
//   node --import tsx bench/diagnostics.ts 64 5   # width, rounds
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { Adam, createModel, DataLoader, Dataset, libtorchInfo, manualSeed, setNumThreads, TensorBoardWriter, tensorBoardCallbacks, trainStep } from '../src/index.js';

const width = Number(process.argv[2] ?? 16);
const rounds = Number(process.argv[3] ?? 7);
const batchSize = 128;
const steps = 20;
setNumThreads(Number(process.env.BENCH_THREADS ?? 2));
manualSeed(0);

const train = await Dataset.load('fashion-mnist', { split: 'train' });
const batchesPerEpoch = Math.floor(train.size / batchSize);
const loader = new DataLoader(train, { batchSize, seed: 0 });
const model = createModel({ numClasses: 10, inChannels: 1, width });
const adam = new Adam(model, { lr: 2e-3, weightDecay: 1e-5 });

// The training step the epoch is made of, on real batches (3 warm-up steps, then `steps` timed).
const it = loader.epoch(0)[Symbol.asyncIterator]();
let stepMs = 0;
for (let i = 0; i < steps + 3; i++) {
  const b = (await it.next()).value!;
  const t0 = performance.now();
  await trainStep(model, adam, b.images, b.labels);
  if (i >= 3) stepMs += performance.now() - t0;
  b.dispose();
}
await it.return?.();
stepMs /= steps;
const epochSeconds = (stepMs * batchesPerEpoch) / 1000;

// The fixed batch `bnn train` measures activations on: the first 256 training images, unaugmented.
const evalLoader = DataLoader.forEval(train, { batchSize: 256 });
const first = (await evalLoader.epoch(0)[Symbol.asyncIterator]().next()).value!;
first.labels.dispose();
const activationBatch = first.images;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bnn-bench-diag-'));
const epochEnd: number[] = [];
const activationOnly: number[] = [];
const stepScalars: number[] = [];
const writer = new TensorBoardWriter({ logDir: dir });
const cb = tensorBoardCallbacks({ writer, stepInterval: 50, weights: model, activationBatch });
await cb.onTrainBegin?.({ stage: 1, epochs: rounds, startEpoch: 0 });
for (let r = 0; r < rounds; r++) {
  let t0 = performance.now();
  for (let batch = 1; batch <= batchesPerEpoch; batch++) {
    await cb.onBatchEnd?.({ stage: 1, epoch: r, batch, batches: batchesPerEpoch, batchSize, loss: 0.5, accuracy: 0.8, lr: 2e-3, imagesPerSecond: 1000 });
  }
  stepScalars.push(performance.now() - t0);
  t0 = performance.now();
  await cb.onEpochEnd?.({ stage: 1, epoch: r, lr: 2e-3, trainLoss: 0.5, trainAccuracy: 0.8, testLoss: 0.4, testAccuracy: 0.85, seconds: epochSeconds, trainImagesPerSecond: 1000 }, { model });
  epochEnd.push(performance.now() - t0);
  t0 = performance.now();
  await model.activationStatistics(activationBatch);
  activationOnly.push(performance.now() - t0);
}
writer.close();
const bytes = fs.readdirSync(dir).reduce((n, f) => n + fs.statSync(path.join(dir, f)).size, 0);
fs.rmSync(dir, { recursive: true, force: true });

const info = libtorchInfo();
const total = median(epochEnd) + median(stepScalars);
console.log(`Diagnostics cost at width ${width}, batch ${batchSize}, ${batchesPerEpoch} steps an epoch, on ${os.cpus()[0]?.model ?? 'unknown CPU'} (${info.cpuIsa}), ${process.env.BENCH_THREADS ?? 2} threads, median of ${rounds}`);
console.log('');
console.log('| training step | epoch (training only) | end of epoch: all | of which activation statistics (256 images) | per-step scalars, an epoch | event file, an epoch | share of the epoch |');
console.log('|---:|---:|---:|---:|---:|---:|---:|');
console.log(
  `| ${stepMs.toFixed(1)} ms | ${epochSeconds.toFixed(1)} s | ${median(epochEnd).toFixed(1)} ms | ${median(activationOnly).toFixed(1)} ms | ${median(stepScalars).toFixed(1)} ms | ${(bytes / rounds / 1e6).toFixed(2)} MB | ${((100 * total) / 1000 / epochSeconds).toFixed(2)}% |`,
);
activationBatch.dispose();
evalLoader.dispose();
loader.dispose();
adam.dispose();
model.dispose();
train.dispose();
