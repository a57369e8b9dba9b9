// Image input pipeline benchmark (issue 13, "Speed and memory"): bnn-torch's streamed image
// datasets against torchvision's ImageFolder + DataLoader(num_workers) with PIL on the same JPEG
// folder, side by side in one run, each case in its own process (so peak RSS is its own), the two
// libraries alternating, the order reversed every other round. Writes bench/results/images.json and
// prints a markdown table.
//
//   npm run bench:images                              # 2000-image corpus, 2 rounds
//   npm run bench:images -- --rss-epoch 50000         # also a 50,000-image epoch, RSS sampled
//   npm run bench:images -- --count 200 --rounds 1    # quick check
//
// Options: --count N (corpus images, 80% train; default 2000), --seed S (corpus seed, 0),
// --rounds R (2), --batch-size B (256), --workers W (decoder threads / DataLoader workers, 2),
// --decode-limit N (images of the decode-only case, default all train images), --rss-epoch N
// (0: off), --rss-epoch-peer (the same long epoch for torchvision too), --cache DIR (where the
// corpus and the store live; default $TMPDIR/bnn-bench-images; the corpus is reused, the store is
// always prepared again since preparing is measured). PEER_PYTHON overrides the peer's python
// (default: the last line of scripts/peer-venv); PYTHON the python running scripts/image-corpus.py.
//
// Cases (the corpus's train/ split, ~1600 ImageNet-sized photos, decoded from the page cache):
//   train  bnn-torch: Dataset.fromImages + DataLoader (RandomResizedCrop 224 + flip + normalise,
//          float NCHW batches, each disposed), from the folder and from a prepared store;
//          torchvision: ImageFolder + DataLoader(num_workers, shuffle) with PIL, the same transforms
//          (bench/peer/images.py --mode train).
//   eval   resize 256 + centre crop 224 + normalise, both sides, over the same train/ images.
//   decode full-scale JPEG decode to RGB only: bnn-torch decodeImage one file at a time (one
//          decoding thread), torchvision's loader (PIL open + convert) in one DataLoader worker.
// Measures: images/s in steady state (after the first batch) and including start-up (workers,
// threads, first batch; not the dataset scan, which is timed apart for bnn-torch and not at all by
// the peer), CPU seconds per image (every thread and child process; the peer's memory sampler
// subtracted), peak memory (bnn-torch: its VmHWM; torchvision: the max sum of PSS over the process
// tree, also its main process's VmHWM).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.join(here, '..');
const benchStart = performance.now();

// ---------------------------------------------------------------------------------------- options
function arg(name: string, fallback: number): number;
function arg(name: string, fallback: string): string;
function arg(name: string, fallback: number | string): number | string {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const v = process.argv[i + 1];
  if (v === undefined) throw new Error(`bench:images: --${name} needs a value`);
  if (typeof fallback === 'number') {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new Error(`bench:images: --${name} must be a number >= 0, got ${v}`);
    return n;
  }
  return v;
}
const count = arg('count', 2000);
const seed = arg('seed', 0);
const rounds = Math.max(1, arg('rounds', 2));
const batchSize = arg('batch-size', 256);
const workers = arg('workers', 2);
const decodeLimit = arg('decode-limit', 0);
const rssEpoch = arg('rss-epoch', 0);
const rssEpochPeer = process.argv.includes('--rss-epoch-peer');
const cache = arg('cache', path.join(os.tmpdir(), 'bnn-bench-images'));
const log = (s: string): void => void process.stderr.write(`${s}\n`);

// ---------------------------------------------------------------------------------------- machine
function cpuInfo(): { model: string; flags: string[] } {
  let model = os.cpus()[0]?.model ?? 'unknown CPU';
  let flags: string[] = [];
  try {
    const lscpu = spawnSync('lscpu', [], { encoding: 'utf8' }).stdout ?? '';
    model = /^Model name:\s*(.+)$/m.exec(lscpu)?.[1]?.trim() ?? model;
    const f = /^flags\s*:\s*(.+)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '';
    flags = f.split(/\s+/).filter((x) => x === 'avx2' || x === 'fma' || x.startsWith('avx512')).sort();
  } catch {
    /* not Linux */
  }
  return { model, flags };
}

/** Busy jiffies and total jiffies of all CPUs (/proc/stat). */
function cpuTimes(): { busy: number; total: number } {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = f as [number, number, number, number, number, number, number, number];
  const busy = user + nice + system + irq + softirq + (steal ?? 0);
  return { busy, total: busy + idle + iowait };
}

/** Cores busy with other work while this bench sits idle for `seconds` (other agents, etc.). */
async function backgroundLoad(seconds: number): Promise<number> {
  const a = cpuTimes();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const b = cpuTimes();
  return ((b.busy - a.busy) / Math.max(1, b.total - a.total)) * os.cpus().length;
}

// ---------------------------------------------------------------------------------- the processes
type Json = Record<string, unknown> & { cpuSecondsPerImage?: number };
interface Run { result: Json; processSeconds: number; machineBusyCores: number }

function spawnJson(cmd: string, args: string[]): Run {
  const a = cpuTimes();
  const t = performance.now();
  const r = spawnSync(cmd, args, { encoding: 'utf8', cwd: repo, maxBuffer: 1 << 28, stdio: ['ignore', 'pipe', 'pipe'] });
  const processSeconds = (performance.now() - t) / 1000;
  const b = cpuTimes();
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.signal}):\n${r.stderr}`);
  const line = r.stdout.trim().split('\n').pop()!;
  return {
    result: JSON.parse(line) as Json,
    processSeconds,
    machineBusyCores: ((b.busy - a.busy) / Math.max(1, b.total - a.total)) * os.cpus().length,
  };
}

const ours = (c: Record<string, unknown>): Run =>
  spawnJson(process.execPath, ['--import', 'tsx', path.join(here, 'images-worker.ts'), JSON.stringify(c)]);

function peerPython(): string {
  if (process.env.PEER_PYTHON) return process.env.PEER_PYTHON;
  log('peer: scripts/peer-venv (creates the torchvision venv on first use)');
  const r = spawnSync(path.join(repo, 'scripts', 'peer-venv'), [], { encoding: 'utf8', cwd: repo, stdio: ['ignore', 'pipe', 'inherit'] });
  if (r.status !== 0) throw new Error('bench:images: scripts/peer-venv failed');
  return r.stdout.trim().split('\n').pop()!;
}
const python = peerPython();

function peer(root: string, mode: 'train' | 'eval' | 'decode', extra: string[] = []): Run {
  const run = spawnJson(python, [
    path.join(here, 'peer', 'images.py'), '--root', root, '--mode', mode, '--batch-size', String(batchSize),
    '--workers', String(mode === 'decode' ? 1 : workers), '--epochs', '1', '--pss-interval', '0.5', ...extra,
  ]);
  // The peer's memory sampler thread runs inside the measured process: its CPU is not the loader's.
  const r = run.result as Json & { cpuSeconds: number; samplerCpuSeconds: number; images: number };
  r.cpuSecondsPerImage = (r.cpuSeconds - r.samplerCpuSeconds) / r.images;
  return run;
}

// The addon measured: a rebuild in the middle of a run would mix two builds (warned at the end).
function addonStamp(): { path: string; bytes: number; mtime: string } | null {
  const file = path.join(repo, 'build', 'Release', 'bnn_torch.node');
  const st = fs.statSync(file, { throwIfNoEntry: false });
  return st ? { path: path.relative(repo, file), bytes: st.size, mtime: st.mtime.toISOString() } : null;
}
const addonAtStart = addonStamp();
const gitHead = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repo, encoding: 'utf8' }).stdout?.trim() ?? '';

// ------------------------------------------------------------------------------- corpus and store
fs.mkdirSync(cache, { recursive: true });
const corpus = path.join(cache, `corpus-n${count}-s${seed}`);
if (!fs.existsSync(path.join(corpus, 'corpus.json'))) {
  log(`corpus: writing ${count} JPEGs to ${corpus}`);
  const py = process.env.PYTHON ?? 'python3';
  const hasPil = spawnSync(py, ['-c', 'import PIL, numpy'], { stdio: 'ignore' }).status === 0;
  const r = spawnSync(hasPil ? py : python, [path.join(repo, 'scripts', 'image-corpus.py'), corpus, '--count', String(count), '--seed', String(seed), '--force'], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (r.status !== 0) throw new Error('bench:images: scripts/image-corpus.py failed');
} else {
  log(`corpus: reusing ${corpus}`);
}
const trainDir = path.join(corpus, 'train');
const store = path.join(cache, `corpus-n${count}-s${seed}-train.bnnstore`);
fs.rmSync(store, { force: true });
log(`store: prepareStore(${trainDir}) with ${workers} workers`);
const prepared = ours({ mode: 'prepare', folder: trainDir, out: store, workers }).result;
log(`store: ${String(prepared.written)} images in ${(prepared.seconds as number).toFixed(1)} s (${(prepared.imagesPerSecond as number).toFixed(0)} images/s), ${((prepared.storeBytes as number) / 2 ** 20).toFixed(1)} MiB`);

// Page cache: read every file once so that the first case does not pay for the disk alone.
for (const cls of fs.readdirSync(trainDir)) for (const f of fs.readdirSync(path.join(trainDir, cls))) fs.readFileSync(path.join(trainDir, cls, f));

// ------------------------------------------------------------------------------------------ cases
interface CaseDef { key: string; side: 'bnn' | 'torch'; run(): Run }
const loaderCase = (source: string, split: 'train' | 'test', extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  mode: 'loader', source, split, batchSize, workers, epochs: 1, limit: 0, seed: 0, rssIntervalMs: 50, trace: false, ...extra,
});
const pairs: CaseDef[][] = [
  [
    { key: 'train-folder', side: 'bnn', run: () => ours(loaderCase(corpus, 'train')) },
    { key: 'train-store', side: 'bnn', run: () => ours(loaderCase(store, 'train')) },
    { key: 'train', side: 'torch', run: () => peer(corpus, 'train') },
  ],
  [
    { key: 'eval-folder', side: 'bnn', run: () => ours(loaderCase(trainDir, 'test')) },
    { key: 'eval-store', side: 'bnn', run: () => ours(loaderCase(store, 'test')) },
    { key: 'eval', side: 'torch', run: () => peer(trainDir, 'eval') }, // a folder without val/: its images, eval transform
  ],
  [
    { key: 'decode', side: 'bnn', run: () => ours({ mode: 'decode', folder: trainDir, limit: decodeLimit }) },
    { key: 'decode', side: 'torch', run: () => peer(trainDir, 'decode', decodeLimit > 0 ? ['--limit', String(decodeLimit)] : []) },
  ],
];

const runs: Record<string, Run[]> = {};
const background: number[] = [];
for (let round = 0; round < rounds; round++) {
  background.push(await backgroundLoad(2));
  log(`round ${round + 1}/${rounds}: other processes kept ${background.at(-1)!.toFixed(2)} of ${os.cpus().length} cores busy while the bench was idle`);
  for (const group of pairs) {
    const order = round % 2 === 0 ? group : [...group].reverse();
    for (const c of order) {
      const id = `${c.side}:${c.key}`;
      const run = c.run();
      (runs[id] ??= []).push(run);
      const r = run.result as Json & { imagesPerSecond: number; steadyImagesPerSecond?: number };
      log(
        `  ${id.padEnd(22)} ${(r.steadyImagesPerSecond ?? r.imagesPerSecond).toFixed(0).padStart(5)} img/s steady, ` +
          `${r.imagesPerSecond.toFixed(0).padStart(5)} incl. start-up, ${(r.cpuSecondsPerImage! * 1000).toFixed(2)} CPU ms/img, ` +
          `peak ${peakOf(c.side, r).toFixed(0)} MiB; machine busy ${run.machineBusyCores.toFixed(2)} cores`,
      );
    }
  }
}

function peakOf(side: 'bnn' | 'torch', r: Json): number {
  return side === 'bnn' ? (r.peakRssMiB as number) : ((r.peakPssMiB as number | null) ?? (r.peakRssMiB as number));
}

// ------------------------------------------------------------------------ the long epoch (option)
interface Flatness { images: number; seconds: number; samples: number; warmupImages: number; minMiB: number; maxMiB: number; medianMiB: number; firstMiB: number; lastMiB: number; withinPct: number; flat: boolean; body: { untilImages: number; minMiB: number; maxMiB: number; withinPct: number }; tailMaxMiB: number; peakMiB: number; imagesPerSecond: number; cpuSecondsPerImage: number }
type Spread = { min: number; max: number; median: number; withinPct: number };
function spread(v: number[]): Spread {
  const sorted = [...v].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)] ?? NaN;
  const min = sorted[0] ?? NaN;
  const max = sorted.at(-1) ?? NaN;
  return { min, max, median, withinPct: Math.max(max / median - 1, 1 - min / median) * 100 };
}
/**
 * RSS after warm-up (the first 10% of the epoch): the target's figure, every sample to the end.
 * Also the body alone, without the last 4 batches, which is where a short last batch would show
 * if it were prepared in fresh memory (it was, +15%, until the loader cut it from a full-size
 * buffer).
 */
function flatness(points: { images: number; mib: number }[], images: number): Omit<Flatness, 'images' | 'seconds' | 'peakMiB' | 'imagesPerSecond' | 'cpuSecondsPerImage'> {
  const warmupImages = Math.round(images * 0.1);
  const untilImages = images - 4 * batchSize;
  const after = points.filter((p) => p.images >= warmupImages);
  const all = spread(after.map((p) => p.mib));
  const body = spread(after.filter((p) => p.images < untilImages).map((p) => p.mib));
  const tail = after.filter((p) => p.images >= untilImages).map((p) => p.mib);
  return {
    samples: after.length, warmupImages, minMiB: all.min, maxMiB: all.max, medianMiB: all.median,
    firstMiB: after[0]?.mib ?? NaN, lastMiB: after.at(-1)?.mib ?? NaN, withinPct: all.withinPct, flat: all.withinPct <= 5,
    body: { untilImages, minMiB: body.min, maxMiB: body.max, withinPct: body.withinPct }, tailMaxMiB: tail.length ? Math.max(...tail) : NaN,
  };
}

let rssLong: { bnn?: Flatness & { trace: [number, number, number][] }; torch?: Flatness } | undefined;
if (rssEpoch > 0) {
  rssLong = {};
  // A list file naming the train images again and again (paths may repeat; the dataset cannot).
  const classes = fs.readdirSync(trainDir).filter((c) => fs.statSync(path.join(trainDir, c)).isDirectory()).sort();
  const files = classes.flatMap((c, label) => fs.readdirSync(path.join(trainDir, c)).sort().map((f) => `${path.join(trainDir, c, f)} ${label}`));
  const list = path.join(cache, `corpus-n${count}-s${seed}-train-x${rssEpoch}.txt`);
  fs.writeFileSync(list, `${Array.from({ length: rssEpoch }, (_, i) => files[i % files.length]).join('\n')}\n`);
  log(`rss epoch: bnn-torch, ${rssEpoch} images (list file ${list}), RSS every 0.5 s`);
  const run = ours(loaderCase(list, 'train', { rssIntervalMs: 500, trace: true }));
  const r = run.result as Json & { trace: [number, number, number][]; images: number; seconds: number; peakRssMiB: number; imagesPerSecond: number; cpuSecondsPerImage: number };
  rssLong.bnn = {
    images: r.images, seconds: r.seconds, peakMiB: r.peakRssMiB, imagesPerSecond: r.imagesPerSecond, cpuSecondsPerImage: r.cpuSecondsPerImage,
    ...flatness(r.trace.map(([, images, mib]) => ({ images, mib })), r.images), trace: r.trace,
  };
  log(`  bnn-torch: ${r.images} images in ${r.seconds.toFixed(0)} s, RSS after warm-up ${rssLong.bnn.minMiB.toFixed(0)}..${rssLong.bnn.maxMiB.toFixed(0)} MiB (±${rssLong.bnn.withinPct.toFixed(1)}% of the median; ±${rssLong.bnn.body.withinPct.toFixed(1)}% before the last 4 batches)`);
  if (rssEpochPeer) {
    const csv = path.join(cache, `peer-rss-trace-${rssEpoch}.csv`);
    log(`rss epoch: torchvision, ${rssEpoch} images (--limit repeats the folder)`);
    const p = peer(corpus, 'train', ['--limit', String(rssEpoch), '--rss-trace', csv]).result as Json & { images: number; seconds: number; peakPssMiB: number; imagesPerSecond: number; cpuSecondsPerImage: number };
    const rows = fs.readFileSync(csv, 'utf8').trim().split('\n').slice(1).map((l) => l.split(','));
    const pss = rows.filter((c) => c[3] !== '' && Number(c[5]) > 1).map((c) => ({ images: Number(c[1]), mib: Number(c[3]) }));
    rssLong.torch = { images: p.images, seconds: p.seconds, peakMiB: p.peakPssMiB, imagesPerSecond: p.imagesPerSecond, cpuSecondsPerImage: p.cpuSecondsPerImage, ...flatness(pss, p.images) };
    log(`  torchvision: PSS after warm-up ${rssLong.torch.minMiB.toFixed(0)}..${rssLong.torch.maxMiB.toFixed(0)} MiB (±${rssLong.torch.withinPct.toFixed(1)}%)`);
  }
}
background.push(await backgroundLoad(2));

// ---------------------------------------------------------------------------------------- summary
// Throughput: the best round (least disturbed by other processes); CPU per image: the lowest;
// memory: bnn-torch's highest against torchvision's lowest (the conservative pairing).
type R = Json & { imagesPerSecond: number; steadyImagesPerSecond?: number; cpuSecondsPerImage: number };
interface Summary { steady: number; startup: number; cpuMs: number; peakMiB: number; mainPeakMiB?: number; importMiB?: number; firstBatchSeconds?: number; openSeconds?: number; runs: number }
function summarise(id: string, side: 'bnn' | 'torch'): Summary {
  const rs = runs[id]!.map((x) => x.result as R);
  // Steady state needs a second batch; decode-only (bnn-torch) has no start-up inside its timing.
  const steadies = rs.map((r) => (r.mode === 'decode' && side === 'bnn' ? r.imagesPerSecond : r.steadyImagesPerSecond)).filter((x): x is number => typeof x === 'number' && x > 0); // the peer gives 0 for a one-batch epoch
  const steady = steadies.length > 0 ? Math.max(...steadies) : NaN;
  const startup = Math.max(...rs.map((r) => r.imagesPerSecond));
  const cpuMs = Math.min(...rs.map((r) => r.cpuSecondsPerImage)) * 1000;
  const peaks = rs.map((r) => peakOf(side, r));
  const s: Summary = { steady, startup, cpuMs, peakMiB: side === 'bnn' ? Math.max(...peaks) : Math.min(...peaks), runs: rs.length };
  if (side === 'torch') s.mainPeakMiB = Math.min(...rs.map((r) => r.mainPeakRssMiB as number));
  s.importMiB = Math.min(...rs.map((r) => r.importRssMiB as number));
  if (rs[0]!.firstBatchSeconds !== undefined) s.firstBatchSeconds = Math.min(...rs.map((r) => r.firstBatchSeconds as number));
  if (rs[0]!.openSeconds !== undefined) s.openSeconds = Math.min(...rs.map((r) => r.openSeconds as number));
  return s;
}
const S = {
  trainFolder: summarise('bnn:train-folder', 'bnn'), trainStore: summarise('bnn:train-store', 'bnn'), train: summarise('torch:train', 'torch'),
  evalFolder: summarise('bnn:eval-folder', 'bnn'), evalStore: summarise('bnn:eval-store', 'bnn'), eval: summarise('torch:eval', 'torch'),
  decode: summarise('bnn:decode', 'bnn'), decodePeer: summarise('torch:decode', 'torch'),
};
const peerInfo = runs['torch:train']![0]!.result;
const images = (runs['bnn:train-folder']![0]!.result.images as number);
const cudaImportMiB = 360; // anonymous memory the CUDA torch wheel's static initialisers add at import (scripts/peer-venv)

const f0 = (x: number): string => (Number.isFinite(x) ? x.toFixed(0) : 'n/a');
const f2 = (x: number): string => x.toFixed(2);
const x2 = (x: number): string => (Number.isFinite(x) ? `${x.toFixed(2)}x` : 'n/a');
function row(name: string, o: Summary, p: Summary): string {
  return `| ${name} | ${f0(o.steady)} / ${f0(o.startup)} | ${f0(p.steady)} / ${f0(p.startup)} | ${x2(o.steady / p.steady)} / ${x2(o.startup / p.startup)} | ` +
    `${f2(o.cpuMs)} | ${f2(p.cpuMs)} | ${x2(p.cpuMs / o.cpuMs)} | ${f0(o.peakMiB)} MiB | ${f0(p.peakMiB)} MiB (main ${f0(p.mainPeakMiB!)}) | ${x2(o.peakMiB / p.peakMiB)} |`;
}
const verdict = (ok: boolean, value: number): string => (!Number.isFinite(value) ? 'n/a ' : ok ? 'PASS' : 'FAIL');
const targets = [
  { target: 'images/s from the JPEG folder >= 2x torchvision (train, steady)', value: S.trainFolder.steady / S.train.steady, goal: 2, below: false },
  { target: 'images/s from the JPEG folder >= 2x torchvision (train, incl. start-up)', value: S.trainFolder.startup / S.train.startup, goal: 2, below: false },
  { target: 'images/s from the prepared store >= 3x torchvision (train, steady)', value: S.trainStore.steady / S.train.steady, goal: 3, below: false },
  { target: 'images/s from the prepared store >= 3x torchvision (train, incl. start-up)', value: S.trainStore.startup / S.train.startup, goal: 3, below: false },
  { target: 'peak memory <= 0.5x torchvision (train from the folder; bnn VmHWM vs torchvision PSS sum)', value: S.trainFolder.peakMiB / S.train.peakMiB, goal: 0.5, below: true },
  { target: 'peak memory <= 0.5x torchvision (train from the store; bnn VmHWM vs torchvision PSS sum)', value: S.trainStore.peakMiB / S.train.peakMiB, goal: 0.5, below: true },
  ...(rssLong?.bnn ? [{ target: `RSS flat within ±5% over a ${rssLong.bnn.images}-image epoch (bnn-torch, every sample after the first 10%, to the end)`, value: rssLong.bnn.withinPct, goal: 5, below: true }] : []),
  ...(rssLong?.bnn ? [{ target: `(diagnosis, not the target) the same, before the last 4 batches (images < ${rssLong.bnn.body.untilImages})`, value: rssLong.bnn.body.withinPct, goal: 5, below: true }] : []),
].map((t) => ({ ...t, pass: t.below ? t.value <= t.goal : t.value >= t.goal }));
const cpuBoundTargets = [
  { target: 'CPU per image: torchvision / bnn-torch from the folder >= 2 (the throughput target on an unloaded machine)', value: S.train.cpuMs / S.trainFolder.cpuMs, goal: 2 },
  { target: 'CPU per image: torchvision / bnn-torch from the store >= 3', value: S.train.cpuMs / S.trainStore.cpuMs, goal: 3 },
].map((t) => ({ ...t, pass: t.value >= t.goal }));

const cpu = cpuInfo();
const cores = os.cpus().length;
const coresPer1000 = (ms: number): string => (ms).toFixed(1); // cores per 1000 img/s = CPU ms per image
const imagenetMinutes = (ms: number): string => ((1281167 * ms) / 1000 / cores / 60).toFixed(0);
const pv = peerInfo as { torch: string; torchvision: string; pillow: string };
const lines = [
  `Image input pipeline, ${images} ImageNet-sized JPEGs (scripts/image-corpus.py --count ${count} --seed ${seed}: train/ split, mean ${(runs['bnn:decode']![0]!.result.meanMegapixels as number).toFixed(2)} MP), ` +
    `batch ${batchSize}, ${workers} decoder threads (bnn-torch) / DataLoader(num_workers=${workers}) (torchvision ${pv.torchvision}, torch ${pv.torch}, Pillow ${pv.pillow}), ` +
    `${cpu.model}, ${cores} cores (${cpu.flags.join(' ') || 'no AVX2'}), best of ${rounds} rounds; files in the page cache.`,
  '',
  '| case | bnn-torch img/s (steady / incl. start-up) | torchvision img/s (steady / incl. start-up) | ratio | bnn-torch CPU ms/img | torchvision CPU ms/img | CPU ratio | bnn-torch peak RSS | torchvision peak PSS | memory ratio |',
  '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  row('train, JPEG folder', S.trainFolder, S.train),
  row('train, prepared store vs torchvision folder', S.trainStore, S.train),
  row('eval, JPEG folder', S.evalFolder, S.eval),
  row('eval, prepared store vs torchvision folder', S.evalStore, S.eval),
  `| decode only, full scale, 1 thread / 1 worker | ${f0(S.decode.steady)} | ${f0(S.decodePeer.steady)} / ${f0(S.decodePeer.startup)} | ${x2(S.decode.steady / S.decodePeer.steady)} | ${f2(S.decode.cpuMs)} | ${f2(S.decodePeer.cpuMs)} | ${x2(S.decodePeer.cpuMs / S.decode.cpuMs)} | ${f0(S.decode.peakMiB)} MiB | ${f0(S.decodePeer.peakMiB)} MiB (main ${f0(S.decodePeer.mainPeakMiB!)}) | |`,
  '',
  `- Preparing the store (prepareStore, ${workers} threads): ${String(prepared.written)} images in ${f2(prepared.seconds as number)} s = ${f0(prepared.imagesPerSecond as number)} images/s ` +
    `(${f2((prepared.cpuSecondsPerImage as number) * 1000)} CPU ms/img), ${((prepared.storeBytes as number) / 2 ** 20).toFixed(1)} MiB (shorter side <= 256, JPEG q90).`,
  `- Decode only, per core: bnn-torch (libjpeg-turbo, decodeImage one at a time) ${f0(S.decode.steady)} images/s on one thread, ${f0(1000 / S.decode.cpuMs)} images per CPU second; ` +
    `torchvision's loader (PIL open + convert('RGB')) ${f0(S.decodePeer.steady)} images/s in one worker, ${f0(1000 / S.decodePeer.cpuMs)} per CPU second.`,
  `- Cores needed per 1000 images/s of GPU training speed (= CPU ms per image): bnn-torch ${coresPer1000(S.trainFolder.cpuMs)} from the folder, ${coresPer1000(S.trainStore.cpuMs)} from a store; ` +
    `torchvision ${coresPer1000(S.train.cpuMs)}. One ImageNet epoch (1,281,167 images) of the train pipeline on these ${cores} cores, CPU-bound: bnn-torch ${imagenetMinutes(S.trainFolder.cpuMs)} min from the folder, ` +
    `${imagenetMinutes(S.trainStore.cpuMs)} min from a store; torchvision ${imagenetMinutes(S.train.cpuMs)} min.`,
  `- Start-up: first batch after ${f2(S.trainFolder.firstBatchSeconds!)} s (bnn-torch, folder) / ${f2(S.train.firstBatchSeconds!)} s (torchvision, forking ${workers} workers); ` +
    `bnn-torch's Dataset.fromImages scan (headers of every file, not in the img/s) ${f2(S.trainFolder.openSeconds!)} s for the folder, ${f2(S.trainStore.openSeconds!)} s for the store.`,
  `- Whole process, launch to exit (imports, scan, epoch, shutdown), train from the folder: bnn-torch ${f2(Math.min(...runs['bnn:train-folder']!.map((r) => r.processSeconds)))} s, ` +
    `torchvision ${f2(Math.min(...runs['torch:train']!.map((r) => r.processSeconds)))} s (importing the CUDA torch wheel included).`,
  `- Memory: bnn-torch's figure is its process's VmHWM (one process: Node, tsx, LibTorch; ${f0(S.trainFolder.importMiB!)} MiB before any data). torchvision's is the peak sum of PSS over the main process and its workers ` +
    `(shared pages counted once), sampled every 0.5 s; its main process alone peaked at ${f0(S.train.mainPeakMiB!)} MiB. The peer's torch is the CUDA 13 wheel (the only torch 2.14.1 on the mirror): ` +
    `${f0(S.train.importMiB!)} MiB after import, ~${cudaImportMiB} MiB of it the CUDA libraries' static initialisers that a CPU wheel would not have; against torchvision minus that ` +
    `(${f0(S.train.peakMiB - cudaImportMiB)} MiB) the train-from-folder memory ratio is ${x2(S.trainFolder.peakMiB / (S.train.peakMiB - cudaImportMiB))}.`,
  ...(rssLong?.bnn
    ? [`- RSS over a ${rssLong.bnn.images}-image epoch (bnn-torch from the JPEG folder through a list file, train transform, sampled every 0.5 s): ` +
        `${f0(rssLong.bnn.minMiB)}..${f0(rssLong.bnn.maxMiB)} MiB after the first ${rssLong.bnn.warmupImages} images (median ${f0(rssLong.bnn.medianMiB)}, first ${f0(rssLong.bnn.firstMiB)}, last ${f0(rssLong.bnn.lastMiB)}; ` +
        `within ±${rssLong.bnn.withinPct.toFixed(1)}%), peak ${f0(rssLong.bnn.peakMiB)} MiB, ${f0(rssLong.bnn.imagesPerSecond)} images/s over ${f0(rssLong.bnn.seconds)} s. ` +
        `Up to image ${rssLong.bnn.body.untilImages} (before the last 4 batches) ${rssLong.bnn.body.minMiB.toFixed(1)}..${rssLong.bnn.body.maxMiB.toFixed(1)} MiB (±${rssLong.bnn.body.withinPct.toFixed(1)}%); ` +
        `the last batches reach ${f0(rssLong.bnn.tailMaxMiB)} MiB${rssLong.bnn.images % batchSize !== 0 ? ` (the epoch ends with a partial batch of ${rssLong.bnn.images % batchSize} images)` : ''}.` +
        (rssLong.torch ? ` torchvision, same epoch: PSS ${f0(rssLong.torch.minMiB)}..${f0(rssLong.torch.maxMiB)} MiB (±${rssLong.torch.withinPct.toFixed(1)}%), ${f0(rssLong.torch.imagesPerSecond)} images/s.` : '')]
    : []),
  `- Noise: other processes kept ${background.map((b) => b.toFixed(2)).join(', ')} of ${cores} cores busy in idle probes before each round and at the end; ` +
    `throughput is the best of ${rounds} rounds, CPU per image the lowest, memory bnn-torch's highest against torchvision's lowest. CPU per image is the steadier figure on a shared machine.`,
  '',
  'Targets (issue 13):',
  ...targets.map((t) => `- ${verdict(t.pass, t.value)}  ${t.target}: ${t.value.toFixed(2)}${t.target.includes('RSS') || t.target.includes('the same, before') ? '%' : 'x'}`),
  ...cpuBoundTargets.map((t) => `- ${verdict(t.pass, t.value)}  ${t.target}: ${t.value.toFixed(2)}x`),
];
console.log(lines.join('\n'));

const addonAtEnd = addonStamp();
const addonChanged = JSON.stringify(addonAtStart) !== JSON.stringify(addonAtEnd);
if (addonChanged) log(`bench:images: WARNING: ${addonAtStart?.path ?? 'the addon'} changed during the run (${addonAtStart?.mtime} -> ${addonAtEnd?.mtime}): the bnn-torch cases may mix two builds`);
const benchSeconds = (performance.now() - benchStart) / 1000;
log(`bench:images: ${benchSeconds.toFixed(0)} s`);
fs.mkdirSync(path.join(here, 'results'), { recursive: true });
const out = path.join(here, 'results', 'images.json');
fs.writeFileSync(`${out}.tmp`, JSON.stringify({
  build: { gitHead, addonAtStart, addonAtEnd, addonChanged },
  machine: { cpu: cpu.model, flags: cpu.flags, cores, node: process.version, backgroundCores: background, loadavgAtEnd: os.loadavg() },
  config: { count, seed, rounds, batchSize, workers, decodeLimit, rssEpoch, corpus, store, images },
  prepare: prepared,
  summary: S,
  targets: [...targets, ...cpuBoundTargets],
  rssEpoch: rssLong ?? null,
  runs,
  table: lines.join('\n'),
  benchSeconds,
}, null, 2));
fs.renameSync(`${out}.tmp`, out);
log(`bench:images: wrote ${path.relative(repo, out)}`);
