// Diagnostic for the gap between real-data training and the synthetic step bench: in one process,
// times the same number of training steps (fresh model each phase, same seed) fed four ways:
//   synthetic   one randn batch, reused (what bench/train-step measures)
//   real-fixed  one real (loader) batch, reused: the data's content, no loader thread
//   preloaded   real batches prepared by the loader beforehand, then trained on: no concurrent thread
//   loader      for await over loader.epoch() with the prefetch thread running (what training does)
// Usage: node --import tsx bench/epoch-gap.ts [steps=40] [width=16] [rounds=2]
import { Adam, createModel, DataLoader, Dataset, manualSeed, setNumThreads, Tensor, trainStep, type LoaderBatch } from '../src/index.js';

const steps = Number(process.argv[2] ?? 40);
const width = Number(process.argv[3] ?? 16);
const rounds = Number(process.argv[4] ?? 2);
setNumThreads(Number(process.env.BENCH_THREADS ?? 2));
const data = await Dataset.load('fashion-mnist', { split: 'train', limit: (steps + 2) * 128 });
const loader = new DataLoader(data, { batchSize: 128, seed: 0, prefetch: Number(process.env.PREFETCH ?? 3) });

interface Timing { ips: number; waitMs: number; stepMs: number; cpuMs: number }

async function timeSteps(feed: (i: number) => Promise<{ x: Tensor; y: Tensor; done?: () => void }>): Promise<Timing> {
  manualSeed(0);
  const model = createModel({ numClasses: 10, inChannels: 1, width });
  const adam = new Adam(model, { lr: 2e-3, weightDecay: 1e-5 });
  model.train();
  let wait = 0;
  let work = 0;
  let cpu0 = process.cpuUsage();
  for (let i = 0; i < steps + 2; i++) {
    if (i === 2) { wait = 0; work = 0; cpu0 = process.cpuUsage(); }
    const a = performance.now();
    const b = await feed(i);
    const m = performance.now();
    await trainStep(model, adam, b.x, b.y);
    b.done?.();
    const e = performance.now();
    wait += m - a;
    work += e - m;
  }
  const cpu = process.cpuUsage(cpu0);
  adam.dispose();
  model.dispose();
  const total = wait + work;
  return { ips: (steps * 128) / (total / 1000), waitMs: wait / steps, stepMs: work / steps, cpuMs: (cpu.user + cpu.system) / 1000 / steps };
}

const x = Tensor.randn([128, 1, 28, 28]);
const y = Tensor.fromArray(Array.from({ length: 128 }, (_, i) => i % 10), [128], { dtype: 'int64' });
const first = (await loader.epoch(0).next()).value as LoaderBatch;

const phases: Record<string, () => Promise<Timing>> = {
  synthetic: () => timeSteps(async () => ({ x, y })),
  'real-fixed': () => timeSteps(async () => ({ x: first.images, y: first.labels })),
  preloaded: async () => {
    const all: LoaderBatch[] = [];
    for await (const b of loader.epoch(1)) all.push(b);
    const r = await timeSteps(async (i) => ({ x: all[i]!.images, y: all[i]!.labels }));
    all.forEach((b) => b.dispose());
    return r;
  },
  loader: async () => {
    const it = loader.epoch(2);
    const r = await timeSteps(async () => {
      const b = (await it.next()).value as LoaderBatch;
      return { x: b.images, y: b.labels, done: () => b.dispose() };
    });
    await it.return();
    return r;
  },
};
const results: Record<string, number[]> = {};
const cpuResults: Record<string, number[]> = {};
for (let r = 0; r < rounds; r++) {
  for (const [name, fn] of Object.entries(phases)) {
    const m = await fn();
    (results[name] ??= []).push(m.ips);
    (cpuResults[name] ??= []).push(m.cpuMs);
    console.log(`round ${r + 1} ${name.padEnd(11)} ${m.ips.toFixed(0)} img/s  step ${m.stepMs.toFixed(1)} ms (process CPU ${m.cpuMs.toFixed(0)} ms)  waiting for the batch ${m.waitMs.toFixed(2)} ms`);
  }
}
for (const [name, v] of Object.entries(results)) {
  console.log(`${name.padEnd(11)} best ${Math.max(...v).toFixed(0)} img/s, least process CPU per step ${Math.min(...cpuResults[name]!).toFixed(0)} ms`);
}
