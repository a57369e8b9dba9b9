// One bnn-torch measurement in its own process (so peak RSS is this case's alone), driven by
// bench/train-step.ts. Prints one JSON line like bench/peer/train_step.py.
import { Adam, createModel, libtorchInfo, manualSeed, setNumThreads, Tensor, VERSION } from '../src/index.js';
import { native } from '../src/binding/native.js';

interface Case { width: number; inChannels: number; size: number; stage: 1 | 2; batch: number; steps: number; warmup: number; threads: number; device: 'cpu' | 'cuda' }

const cfg = JSON.parse(process.argv[2]!) as Case;
setNumThreads(cfg.threads);
manualSeed(0);
const model = createModel({ numClasses: 10, inChannels: cfg.inChannels, width: cfg.width, binaryWeights: cfg.stage === 2 }).to(cfg.device);
const adam = new Adam(model, { lr: 1e-3, weightDecay: cfg.stage === 1 ? 1e-5 : 0 });
const x = Tensor.randn([cfg.batch, cfg.inChannels, cfg.size, cfg.size], { device: cfg.device });
const y = Tensor.fromArray(Array.from({ length: cfg.batch }, (_, i) => i % 10), [cfg.batch], { dtype: 'int64', device: cfg.device });
const options = { labelSmoothing: 0, clipLatentWeights: false };
const step = () => model.exclusive((h) => native().trainStep(h, adam.handle, x.handle, y.handle, options));
const evalStep = () => model.exclusive((h) => native().evalStep(h, x.handle, y.handle));

model.train();
for (let i = 0; i < cfg.warmup; i++) await step();
let t = performance.now();
for (let i = 0; i < cfg.steps; i++) await step();
const imagesPerSecond = (cfg.steps * cfg.batch) / ((performance.now() - t) / 1000);

model.eval();
for (let i = 0; i < 2; i++) await evalStep();
t = performance.now();
for (let i = 0; i < cfg.steps; i++) await evalStep();
const evalImagesPerSecond = (cfg.steps * cfg.batch) / ((performance.now() - t) / 1000);

console.log(JSON.stringify({ imagesPerSecond, evalImagesPerSecond, maxRssMiB: process.resourceUsage().maxRSS / 1024, version: VERSION, threads: cfg.threads, cpuIsa: libtorchInfo().cpuIsa }));
