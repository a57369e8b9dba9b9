// Full-epoch benchmark: one training epoch of the Fashion-MNIST train split (60000 images, batch
// 128), data loading included, in bnn-torch (Dataset.load + the native DataLoader + Trainer) and in
// a plain PyTorch peer (bench/peer/epoch.py: TensorDataset + torch.utils.data.DataLoader, Adam),
// each in its own process, alternating, same threads. Writes bench/results/epoch.json.
//
//   npm run bench:epoch                          # width 16, stage 1, one full epoch each
//   BENCH_EPOCH_BATCHES=40 npm run bench:epoch   # only the first 40 batches (quick run)
//   BENCH_EPOCH_WIDTH=64 BENCH_EPOCH_STAGE=2 BENCH_ROUNDS=2 npm run bench:epoch
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const threads = Number(process.env.BENCH_THREADS ?? os.availableParallelism());
const rounds = Number(process.env.BENCH_ROUNDS ?? 1);
const python = process.env.PYTHON ?? 'python3';
const root = process.env.BENCH_DATA ?? '/usr/share/datasets/fashion-mnist';
const width = Number(process.env.BENCH_EPOCH_WIDTH ?? 16);
const stage = Number(process.env.BENCH_EPOCH_STAGE ?? 1) === 2 ? 2 : 1;
const batches = Number(process.env.BENCH_EPOCH_BATCHES ?? 0); // 0: the full epoch

if (!fs.existsSync(path.join(root, 'train-images-idx3-ubyte.gz'))) {
  console.error(`bench:epoch: Fashion-MNIST not found in ${root} (apt install fashion-mnist, or set BENCH_DATA)`);
  process.exit(1);
}

interface Measure { imagesPerSecond: number; epochSeconds: number; loadSeconds: number; images: number; trainLoss: number; cpuSeconds: number; segmentImagesPerSecond: number[]; maxRssMiB: number }

function run(cmd: string, args: string[]): Measure {
  const r = spawnSync(cmd, args, { encoding: 'utf8', cwd: path.join(here, '..'), maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed:\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Measure;
}

const c = { width, stage, batch: 128, threads, batches, root };
const ours: Measure[] = [];
const peer: Measure[] = [];
for (let i = 0; i < rounds; i++) {
  ours.push(run(process.execPath, ['--import', 'tsx', path.join(here, 'epoch-worker.ts'), JSON.stringify(c)]));
  console.error(`round ${i + 1}: bnn-torch ${ours[i]!.imagesPerSecond.toFixed(0)} img/s (${ours[i]!.epochSeconds.toFixed(1)} s, ${ours[i]!.cpuSeconds.toFixed(0)} CPU s; per tenth: ${ours[i]!.segmentImagesPerSecond.join(' ')})`);
  peer.push(run(python, [path.join(here, 'peer', 'epoch.py'), JSON.stringify(c)]));
  console.error(`round ${i + 1}: PyTorch   ${peer[i]!.imagesPerSecond.toFixed(0)} img/s (${peer[i]!.epochSeconds.toFixed(1)} s, ${peer[i]!.cpuSeconds.toFixed(0)} CPU s; per tenth: ${peer[i]!.segmentImagesPerSecond.join(' ')})`);
}
const best = (ms: Measure[]): Measure => ms.reduce((a, b) => (b.imagesPerSecond > a.imagesPerSecond ? b : a));
const o = best(ours);
const p = best(peer);
const result = {
  case: `fmnist w${width} s${stage} epoch`,
  images: o.images,
  bnnImagesPerSecond: o.imagesPerSecond,
  torchImagesPerSecond: p.imagesPerSecond,
  ratio: o.imagesPerSecond / p.imagesPerSecond,
  bnnEpochSeconds: o.epochSeconds,
  torchEpochSeconds: p.epochSeconds,
  bnnLoadSeconds: o.loadSeconds,
  torchLoadSeconds: p.loadSeconds,
  bnnMaxRssMiB: Math.min(...ours.map((m) => m.maxRssMiB)),
  torchMaxRssMiB: Math.min(...peer.map((m) => m.maxRssMiB)),
  memoryRatio: Math.min(...ours.map((m) => m.maxRssMiB)) / Math.min(...peer.map((m) => m.maxRssMiB)),
  rounds: { bnn: ours, torch: peer },
};

const lines = [
  `One training epoch incl. data loading on cpu, Fashion-MNIST train (${o.images} images), batch 128, ${threads} threads, ${os.cpus()[0]?.model ?? 'CPU'} (${os.cpus().length} cores), best of ${rounds}`,
  '',
  '| case | bnn-torch img/s | PyTorch img/s | ratio | bnn-torch epoch | PyTorch epoch | bnn-torch peak RSS | PyTorch peak RSS | memory ratio |',
  '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  `| ${result.case} | ${o.imagesPerSecond.toFixed(0)} | ${p.imagesPerSecond.toFixed(0)} | ${result.ratio.toFixed(2)}x | ${o.epochSeconds.toFixed(1)} s | ${p.epochSeconds.toFixed(1)} s | ${result.bnnMaxRssMiB.toFixed(0)} MiB | ${result.torchMaxRssMiB.toFixed(0)} MiB | ${result.memoryRatio.toFixed(2)}x |`,
  '',
  `Reading the dataset (not in the epoch time): bnn-torch ${o.loadSeconds.toFixed(2)} s, PyTorch ${p.loadSeconds.toFixed(2)} s.`,
];
console.log(lines.join('\n'));
fs.mkdirSync(path.join(here, 'results'), { recursive: true });
const out = path.join(here, 'results', 'epoch.json');
fs.writeFileSync(`${out}.tmp`, JSON.stringify({ machine: { cpu: os.cpus()[0]?.model, cores: os.cpus().length, threads, device: 'cpu' }, config: c, result }, null, 2));
fs.renameSync(`${out}.tmp`, out);
