// Data-parallel scaling on this machine: 1 process vs N processes (Gloo over loopback) for the
// same global batch, bnn-torch next to PyTorch's DistributedDataParallel, alternating, with the
// cores shared out among the processes. Writes bench/results/distributed.json and prints a table.
//
//   npm run bench:distributed              # width 16 Fashion-MNIST shapes, 1 vs 2 processes
//   BENCH_QUICK=1 npm run bench:distributed
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { freePort } from '../src/cli/launcher.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const quick = process.env.BENCH_QUICK === '1';
const cores = Number(process.env.BENCH_THREADS ?? os.availableParallelism());
const python = process.env.PYTHON ?? 'python3';
const rounds = Number(process.env.BENCH_ROUNDS ?? 2);
const procs = (process.env.BENCH_PROCS ?? '1,2').split(',').map(Number);
const width = Number(process.env.BENCH_WIDTH ?? 16);

interface Measure { imagesPerSecond: number; maxRssMiB: number }

async function runGroup(cmd: string, args: (job: string) => string[], nproc: number): Promise<Measure> {
  const threads = Math.max(1, Math.floor(cores / nproc));
  const job = JSON.stringify({ width, inChannels: 1, size: 28, stage: 1, globalBatch: 128, steps: quick ? 3 : 10, warmup: 2, threads });
  const port = await freePort();
  const outputs = await Promise.all(
    Array.from({ length: nproc }, (_, rank) =>
      new Promise<string>((resolve, reject) => {
        const env = nproc > 1 ? { ...process.env, RANK: String(rank), WORLD_SIZE: String(nproc), LOCAL_RANK: String(rank), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port) } : process.env;
        const child = spawn(cmd, args(job), { cwd: path.join(here, '..'), env, stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        child.stderr.on('data', (d: Buffer) => (err += d.toString()));
        child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} rank ${rank} exited ${code}:\n${err}`))));
      }),
    ),
  );
  return JSON.parse(outputs[0]!.trim().split('\n').pop()!) as Measure;
}

const rows = [];
for (const n of procs) {
  const ours: Measure[] = [];
  const peer: Measure[] = [];
  for (let r = 0; r < rounds; r++) {
    ours.push(await runGroup(process.execPath, (j) => ['--import', 'tsx', path.join(here, 'distributed-worker.ts'), j], n));
    peer.push(await runGroup(python, (j) => [path.join(here, 'peer', 'ddp_step.py'), j], n));
  }
  const best = (ms: Measure[]) => Math.max(...ms.map((m) => m.imagesPerSecond));
  rows.push({ processes: n, threadsPerProcess: Math.max(1, Math.floor(cores / n)), bnnImagesPerSecond: best(ours), torchImagesPerSecond: best(peer), ratio: best(ours) / best(peer) });
}
const base = rows[0]!;
const table = [
  `| processes x threads | bnn-torch img/s | scaling | PyTorch DDP img/s | scaling | bnn / PyTorch |`,
  `|---|---|---|---|---|---|`,
  ...rows.map((r) => `| ${r.processes} x ${r.threadsPerProcess} | ${r.bnnImagesPerSecond.toFixed(0)} | ${(r.bnnImagesPerSecond / base.bnnImagesPerSecond).toFixed(2)}x | ${r.torchImagesPerSecond.toFixed(0)} | ${(r.torchImagesPerSecond / base.torchImagesPerSecond).toFixed(2)}x | ${r.ratio.toFixed(2)}x |`),
];
console.log(`data-parallel training steps, width ${width} binary ResNet-18, 28x28x1, global batch 128, ${cores} cores, best of ${rounds}`);
console.log(table.join('\n'));
fs.mkdirSync(path.join(here, 'results'), { recursive: true });
fs.writeFileSync(path.join(here, 'results', 'distributed.json'), JSON.stringify({ machine: `${os.cpus()[0]?.model} x ${cores}`, width, rows }, null, 2));
