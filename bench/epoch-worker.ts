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
const trainer = new Trainer({ model, stage: cfg.stage, options, train: loader });
t = performance.now();
const [log] = await trainer.fit();
const epochSeconds = (performance.now() - t) / 1000;
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
  maxRssMiB: process.resourceUsage().maxRSS / 1024,
  version: VERSION,
  threads: cfg.threads,
}));
