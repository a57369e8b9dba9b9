// GPU training-step benchmark (issue: fast on CUDA machines): bnn-torch against PyTorch peers of
// the same network on the same GPU, in one run: (a) eager float32, (b) the best eager setup a
// careful user writes (bf16 autocast + channels-last + fused Adam + cudnn.benchmark) and (c)
// torch.compile of (b). Width 64, batch 256, 224x224x3 (ImageNet stem, 1000 classes) and 32x32x3
// (CIFAR stem, 100 classes), both stages. bnn-torch runs bfloat16 (its CUDA default), bfloat16 with
// its fused CUDA kernels off (the column "fusion" is the gain from them), bfloat16 with the step
// captured in a CUDA graph (cudaGraph; "graph" is its gain), float32, and float32 reading the loss
// every step. Peak GPU memory is max-allocated per variant.
// Writes bench/results/gpu-step.json (and $OUT/gpu-step.json when OUT is set).
//
//   node --import tsx bench/gpu-step.ts      # scripts/gpu-check runs it
//   BENCH_COMPILE=0 ...                      # without the torch.compile peer (compiling takes ~1 min a case)
//   BENCH_COMPILE=s1 ...                     # torch.compile for the stage-1 cases only
//   BENCH_COMPILE=only ...                   # torch.compile alone (after a run with BENCH_COMPILE=0)
//   BENCH_ONLY=224 ...                       # cases whose name contains this
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const python = process.env.PYTHON ?? 'python3';
const compileMode = process.env.BENCH_COMPILE ?? 'all';

interface Measure { imagesPerSecond: number; peakMiB: number; warmupSeconds: number; loss: number }
type Outcome = Measure | string;
interface Case { name: string; size: number; stem: 'small' | 'imagenet'; classes: number; stage: 1 | 2; batch: number; steps: number; warmup: number }

const cases: Case[] = [];
for (const [size, stem, classes, steps] of [[224, 'imagenet', 1000, 12], [32, 'small', 100, 40]] as const) {
  for (const stage of [1, 2] as const) {
    cases.push({ name: `${size}px s${stage}`, size, stem, classes, stage, batch: 256, steps, warmup: size === 224 ? 4 : 8 });
  }
}
const only = process.env.BENCH_ONLY;
const selected = only ? cases.filter((c) => c.name.includes(only)) : cases;

// A dead worker's last words: its error line (a stack's head) and the end of its stderr.
function failure(r: { status: number | null; signal: NodeJS.Signals | null; stderr: string }): string {
  const lines = (r.stderr || '').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('at ') && !l.startsWith('Node.js v') && !/^[\^}]+$/.test(l));
  const head = lines.find((l) => /(Error|Exception)\b.*:/.test(l));
  const tail = lines.slice(-3).filter((l) => l !== head);
  return `failed (${r.status ?? r.signal}): ${[head, ...tail].filter(Boolean).join(' | ').slice(0, 400)}`;
}

function run(cmd: string, args: string[], timeoutMs: number): Record<string, Outcome> | string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', cwd: path.join(here, '..'), timeout: timeoutMs });
  if (r.status !== 0) return failure(r);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, Outcome>;
}

const BNN_VARIANTS = ['bf16', 'bf16Unfused', 'bf16Graph', 'fp32', 'fp32Synced'];
let bnnTorch = ''; // the LibTorch bnn-torch was built against, as its worker says

// bnn-torch's variants of one case, each worker reporting a line per variant. When a worker dies
// (a CUDA error poisons its context), the variant it was on is marked failed with the worker's last
// words and a fresh worker takes the variants after it, so one broken path (say the fused kernels)
// still leaves the others' figures in the table.
function runBnn(c: Case, timeoutMs: number): Record<string, Outcome> {
  const out: Record<string, Outcome> = {};
  let left = [...BNN_VARIANTS];
  while (left.length > 0) {
    const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(here, 'gpu-step-worker.ts'), JSON.stringify(c), left.join(',')], {
      encoding: 'utf8',
      cwd: path.join(here, '..'),
      timeout: timeoutMs,
    });
    for (const line of (r.stdout ?? '').split('\n')) {
      if (!line.startsWith('{')) continue;
      let msg: { variant?: string; result?: Measure; torch?: string };
      try {
        msg = JSON.parse(line) as typeof msg;
      } catch {
        continue; // a line cut short by the worker's death
      }
      if (msg.torch) bnnTorch = msg.torch;
      if (msg.variant && msg.result) out[msg.variant] = msg.result;
    }
    const failedAt = left.find((v) => !(v in out));
    if (failedAt === undefined) break;
    out[failedAt] = r.status === 0 ? 'failed: the worker ended without reporting it' : failure(r);
    left = left.slice(left.indexOf(failedAt) + 1);
  }
  return out;
}

interface Row { case: string; bnn: Record<string, Outcome> | string; peer: Record<string, Outcome> | string; compile?: Record<string, Outcome> | string }
const rows: Row[] = [];
let gpu = '';
let torchVersion = '';
const pick = (r: Record<string, Outcome> | string | undefined, k: string): Outcome => (r === undefined ? 'not run' : typeof r === 'string' ? r : (r[k] ?? 'missing'));
const ips = (m: Outcome) => (typeof m === 'string' ? NaN : m.imagesPerSecond);
const mem = (m: Outcome) => (typeof m === 'string' ? NaN : m.peakMiB);
const f = (v: number, d = 0) => (Number.isFinite(v) ? v.toFixed(d) : 'n/a');
const x = (v: number) => (Number.isFinite(v) ? `${v.toFixed(2)}x` : 'n/a');

function report(): void {
  const lines = [
    `Training step on ${gpu || 'the GPU'} (PyTorch ${torchVersion}, bnn-torch's LibTorch ${bnnTorch || 'n/a'}), width 64, batch 256: images/s, and peak GPU memory allocated`,
    '',
    '| case | bnn bf16 | bnn bf16 unfused | fusion | bnn bf16 graph | graph | bnn fp32 | bnn fp32, read every step | (a) eager fp32 | (b) bf16+CL+fused Adam | (c) compile of (b) | bnn/(a) | bnn/(b) | bnn/(c) | peak bnn bf16 | peak (a) | peak (b) | memory bnn/(a) |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    ...rows.map((r) => {
      const o = pick(r.bnn, 'bf16');
      const a = pick(r.peer, 'eager');
      const b = pick(r.peer, 'tuned');
      const c = pick(r.compile, 'compile');
      const u = pick(r.bnn, 'bf16Unfused');
      const g = pick(r.bnn, 'bf16Graph');
      return `| ${r.case} | ${f(ips(o))} | ${f(ips(u))} | ${x(ips(o) / ips(u))} | ${f(ips(g))} | ${x(ips(g) / ips(o))} | ${f(ips(pick(r.bnn, 'fp32')))} | ${f(ips(pick(r.bnn, 'fp32Synced')))} | ${f(ips(a))} | ${f(ips(b))} | ${f(ips(c))} | ${x(ips(o) / ips(a))} | ${x(ips(o) / ips(b))} | ${x(ips(o) / ips(c))} | ${f(mem(o))} MiB | ${f(mem(a))} MiB | ${f(mem(b))} MiB | ${x(mem(o) / mem(a))} |`;
    }),
  ];
  console.log(lines.join('\n'));
  const file = path.join(here, 'results', 'gpu-step.json');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(`${file}.tmp`, JSON.stringify({ gpu, torch: torchVersion, bnnTorch, rows }, null, 2));
  fs.renameSync(`${file}.tmp`, file);
  if (process.env.OUT) fs.copyFileSync(file, path.join(process.env.OUT, compileMode === 'only' ? 'gpu-step-compile.json' : 'gpu-step.json'));
}

function complain(c: Case, what: string, r: Record<string, Outcome> | string): void {
  if (typeof r === 'string') return console.error(`${c.name} ${what}: ${r}`);
  for (const [k, v] of Object.entries(r)) if (typeof v === 'string' && v.startsWith('failed')) console.error(`${c.name} ${what} ${k}: ${v}`);
}

for (const c of compileMode === 'only' ? [] : selected) {
  const bnn = runBnn(c, 180_000);
  const peer = run(python, [path.join(here, 'peer', 'gpu_step.py'), JSON.stringify({ ...c, modes: ['eager', 'tuned'] })], 180_000);
  complain(c, 'bnn-torch', bnn);
  complain(c, 'PyTorch', peer);
  if (typeof peer !== 'string') {
    gpu = String(peer.gpu ?? gpu);
    torchVersion = String(peer.torch ?? torchVersion);
  }
  rows.push({ case: c.name, bnn, peer });
  console.error(`${c.name}: bnn bf16 ${f(ips(pick(bnn, 'bf16')))} img/s, fp32 ${f(ips(pick(bnn, 'fp32')))}; peer (a) ${f(ips(pick(peer, 'eager')))}, (b) ${f(ips(pick(peer, 'tuned')))}`);
}
if (compileMode !== 'only') report();
if (compileMode !== '0') {
  // Last, and reported again after each case: compiling is slow and may be cut short.
  for (const c of selected) {
    if (compileMode === 's1' && c.stage !== 1) continue;
    const compiled = run(python, [path.join(here, 'peer', 'gpu_step.py'), JSON.stringify({ ...c, modes: ['compile'] })], 300_000);
    complain(c, 'torch.compile', compiled);
    if (typeof compiled !== 'string') gpu = String(compiled.gpu ?? gpu);
    let row = rows.find((r) => r.case === c.name);
    if (!row) rows.push((row = { case: c.name, bnn: 'not run', peer: 'not run' }));
    row.compile = compiled;
    console.error(`${c.name}: torch.compile ${f(ips(pick(compiled, 'compile')))} img/s`);
    report();
  }
}
