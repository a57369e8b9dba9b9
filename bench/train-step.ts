// Training-step benchmark: bnn-torch vs a plain PyTorch peer of the same network, same machine,
// batch and threads, alternating the two in one run. Each measurement is its own process so peak
// RSS is comparable. Writes bench/results/train-step.json and prints a table.
//
//   npm run bench                       # the CPU cases below
//   BENCH_DEVICE=cuda npm run bench     # (scripts/gpu-check) the same on a GPU
//   BENCH_QUICK=1 npm run bench         # fewer steps
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const quick = process.env.BENCH_QUICK === '1';
const threads = Number(process.env.BENCH_THREADS ?? os.availableParallelism());
const rounds = Number(process.env.BENCH_ROUNDS ?? 2);
const python = process.env.PYTHON ?? 'python3';
const device = process.env.BENCH_DEVICE === 'cuda' ? 'cuda' : 'cpu';

interface Case { name: string; width: number; inChannels: number; size: number; stage: 1 | 2; batch: number; steps: number; warmup: number; threads: number; device: 'cpu' | 'cuda' }
interface Measure { imagesPerSecond: number; evalImagesPerSecond: number; maxRssMiB: number; cpuIsa?: string }

const cases: Case[] = [];
for (const [data, inChannels, size] of [['fmnist', 1, 28], ['cifar', 3, 32]] as const) {
  for (const width of [16, 64]) {
    for (const stage of [1, 2] as const) {
      const steps = device === 'cuda' ? 50 : quick ? 3 : width === 64 ? 4 : 10;
      cases.push({ name: `${data} w${width} s${stage}`, width, inChannels, size, stage, batch: 128, steps, warmup: device === 'cuda' ? 10 : 2, threads, device });
    }
  }
}
const only = process.env.BENCH_ONLY;
const selected = only ? cases.filter((c) => c.name.includes(only)) : cases;

function run(cmd: string, args: string[]): Measure {
  const r = spawnSync(cmd, args, { encoding: 'utf8', cwd: path.join(here, '..') });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed:\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Measure;
}

const isa = { bnn: '', torch: '' };
const best = (ms: Measure[]): Measure => ({
  imagesPerSecond: Math.max(...ms.map((m) => m.imagesPerSecond)),
  evalImagesPerSecond: Math.max(...ms.map((m) => m.evalImagesPerSecond)),
  maxRssMiB: Math.min(...ms.map((m) => m.maxRssMiB)),
});

const results = [];
for (const c of selected) {
  const ours: Measure[] = [];
  const peer: Measure[] = [];
  for (let i = 0; i < rounds; i++) {
    ours.push(run(process.execPath, ['--import', 'tsx', path.join(here, 'train-step-worker.ts'), JSON.stringify(c)]));
    peer.push(run(python, [path.join(here, 'peer', 'train_step.py'), JSON.stringify(c)]));
  }
  const o = best(ours);
  const p = best(peer);
  isa.bnn = ours[0]?.cpuIsa ?? '';
  isa.torch = peer[0]?.cpuIsa ?? '';
  const row = {
    case: c.name,
    bnnImagesPerSecond: o.imagesPerSecond,
    torchImagesPerSecond: p.imagesPerSecond,
    trainRatio: o.imagesPerSecond / p.imagesPerSecond,
    bnnEvalImagesPerSecond: o.evalImagesPerSecond,
    torchEvalImagesPerSecond: p.evalImagesPerSecond,
    evalRatio: o.evalImagesPerSecond / p.evalImagesPerSecond,
    bnnMaxRssMiB: o.maxRssMiB,
    torchMaxRssMiB: p.maxRssMiB,
    memoryRatio: o.maxRssMiB / p.maxRssMiB,
  };
  results.push(row);
  console.error(`${c.name}: train ${row.trainRatio.toFixed(2)}x, eval ${row.evalRatio.toFixed(2)}x, memory ${row.memoryRatio.toFixed(2)}x`);
}

const header = '| case | bnn-torch img/s | PyTorch img/s | ratio | eval ratio | bnn-torch peak RSS | PyTorch peak RSS | memory ratio |';
const lines = [
  `Training step on ${device}, batch 128, ${threads} threads, ${os.cpus()[0]?.model ?? 'CPU'} (${os.cpus().length} cores), best of ${rounds} alternating runs; ` +
    `bnn-torch kernels ${isa.bnn}, PyTorch's ATen capability ${isa.torch}${process.env.ONEDNN_MAX_CPU_ISA ? `, ONEDNN_MAX_CPU_ISA=${process.env.ONEDNN_MAX_CPU_ISA}` : ''}`,
  '',
  header,
  '|---|---:|---:|---:|---:|---:|---:|---:|',
  ...results.map((r) =>
    `| ${r.case} | ${r.bnnImagesPerSecond.toFixed(0)} | ${r.torchImagesPerSecond.toFixed(0)} | ${r.trainRatio.toFixed(2)}x | ${r.evalRatio.toFixed(2)}x | ${r.bnnMaxRssMiB.toFixed(0)} MiB | ${r.torchMaxRssMiB.toFixed(0)} MiB | ${r.memoryRatio.toFixed(2)}x |`),
];
console.log(lines.join('\n'));
fs.mkdirSync(path.join(here, 'results'), { recursive: true });
const out = path.join(here, 'results', `train-step-${device}.json`);
fs.writeFileSync(`${out}.tmp`, JSON.stringify({ machine: { cpu: os.cpus()[0]?.model, cores: os.cpus().length, threads, device, isa }, results }, null, 2));
fs.renameSync(`${out}.tmp`, out);
