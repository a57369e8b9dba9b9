// One bnn-torch full-epoch measurement in its own process (so peak RSS is its own), driven by
// bench/epoch.ts: reads Fashion-MNIST with Dataset.load and trains one epoch through the native
// DataLoader and Trainer (as `bnn train` does, without the progress bar and test pass). Prints one
// JSON line like bench/peer/epoch.py.
import { createModel, DataLoader, Dataset, manualSeed, setNumThreads, Trainer, VERSION } from '../src/index.js';

interface EpochCase { width: number; stage: 1 | 2; batch: number; threads: number; batches: number; root: string }

const cfg = JSON.parse(process.argv[2]!) as EpochCase;
setNumThreads(cfg.threads);
manualSeed(0);

let t = performance.now();
const train = await Dataset.load('fashion-mnist', { root: cfg.root, split: 'train', ...(cfg.batches > 0 ? { limit: cfg.batches * cfg.batch } : {}) });
const loader = new DataLoader(train, { batchSize: cfg.batch, seed: 0 });
const loadSeconds = (performance.now() - t) / 1000;

const model = createModel({ numClasses: 10, inChannels: 1, width: cfg.width, binaryWeights: cfg.stage === 2 });
const options = cfg.stage === 1
  ? { epochs: 1, lr: 2e-3, weightDecay: 1e-5, milestones: [], gammas: [] }
  : { epochs: 1, lr: 5e-4, weightDecay: 0, milestones: [], gammas: [] };
// Throughput per tenth of the epoch (drift within the epoch) and the process's CPU time.
const segments: number[] = [];
let mark = performance.now();
let markBatch = 0;
const perSegment = Math.max(1, Math.round(loader.batchesPerEpoch / 10));
const callbacks = {
  onBatchEnd(info: { batch: number; batches: number }): void {
    if (info.batch % perSegment === 0 || info.batch === info.batches) {
      const now = performance.now();
      segments.push(Math.round(((info.batch - markBatch) * cfg.batch) / ((now - mark) / 1000)));
      mark = now;
      markBatch = info.batch;
    }
  },
};
const trainer = new Trainer({ model, stage: cfg.stage, options, train: loader, callbacks });
const cpu0 = process.cpuUsage();
t = performance.now();
const [log] = await trainer.fit();
const epochSeconds = (performance.now() - t) / 1000;
const cpu = process.cpuUsage(cpu0);
const images = train.size;
trainer.dispose();
loader.dispose();
train.dispose();
model.dispose();

console.log(JSON.stringify({
  imagesPerSecond: images / epochSeconds,
  epochSeconds,
  loadSeconds,
  images,
  trainLoss: log!.trainLoss,
  cpuSeconds: (cpu.user + cpu.system) / 1e6,
  segmentImagesPerSecond: segments,
  maxRssMiB: process.resourceUsage().maxRSS / 1024,
  version: VERSION,
  threads: cfg.threads,
}));
