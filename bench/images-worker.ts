// One bnn-torch measurement of `npm run bench:images` in its own process, so that its peak RSS and
// CPU time are its own. Driven by bench/images.ts with one JSON argument; prints one JSON line.
//
//   mode 'loader':  Dataset.fromImages(source) + DataLoader(batch, workers decoder threads), one or
//                   more epochs whose float batches are disposed as the trainer disposes them
//                   (train: RandomResizedCrop 224 + flip + normalise; eval: resize 256 + centre
//                   crop 224 + normalise, through DataLoader.forEval as `bnn eval` reads).
//   mode 'decode':  decodeImage (full-scale JPEG decode to RGB) over the files, one at a time: one
//                   decoding thread, the decode-only rate of one core.
//   mode 'prepare': prepareStore(folder, out) with `workers` threads.
//
// Memory: VmRSS of this process sampled every rssIntervalMs on the event loop (which is idle while
// a batch is awaited), and VmHWM (the kernel's own peak) at the end. CPU: process.cpuUsage(), every
// thread of the process (main, loader, decoders, sampler), over the measured part only.
import fs from 'node:fs';
import path from 'node:path';

import { native } from '../src/binding/native.js';
import { DataLoader, Dataset, decodeImage, prepareStore, VERSION } from '../src/index.js';

interface LoaderCase {
  mode: 'loader';
  source: string;
  split: 'train' | 'test';
  batchSize: number;
  workers: number;
  epochs: number;
  limit: number; // 0: all
  seed: number;
  rssIntervalMs: number;
  trace: boolean; // return every RSS sample (for the flatness check)
}
interface DecodeCase { mode: 'decode'; folder: string; limit: number } // folder/<class>/<file>
interface PrepareCase { mode: 'prepare'; folder: string; out: string; workers: number }
type Case = LoaderCase | DecodeCase | PrepareCase;

const cfg = JSON.parse(process.argv[2]!) as Case;

function statusMiB(key: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}
const cpuSeconds = (u: NodeJS.CpuUsage): number => (u.user + u.system) / 1e6;

native(); // load the addon (LibTorch) now, so that importRssMiB includes it as the peer's includes torch
const importRssMiB = statusMiB('VmRSS'); // node + tsx + the addon with LibTorch, before any data

async function runLoader(c: LoaderCase): Promise<Record<string, unknown>> {
  let t = performance.now();
  const dataset = await Dataset.fromImages(c.source, {
    split: c.split,
    workers: c.workers,
    ...(c.limit > 0 ? { limit: c.limit } : {}),
  });
  const openSeconds = (performance.now() - t) / 1000;
  const loader =
    c.split === 'train'
      ? new DataLoader(dataset, { batchSize: c.batchSize, workers: c.workers, seed: c.seed, shuffle: true })
      : DataLoader.forEval(dataset, { batchSize: c.batchSize, workers: c.workers });

  const samples: [number, number, number][] = []; // seconds, images so far, RSS MiB
  let images = 0;
  let peakSampled = 0;
  const t0 = performance.now();
  const sample = (): void => {
    const rss = statusMiB('VmRSS');
    peakSampled = Math.max(peakSampled, rss);
    if (c.trace) samples.push([Math.round(performance.now() - t0) / 1000, images, Math.round(rss * 10) / 10]);
  };
  const timer = setInterval(sample, c.rssIntervalMs);

  const epochs: Record<string, number | null>[] = [];
  const cpu0 = process.cpuUsage();
  for (let e = 0; e < c.epochs; e++) {
    let seen = 0;
    let firstN = 0;
    let tFirst: number | null = null;
    const start = performance.now();
    for await (const batch of loader.epoch(e)) {
      const n = batch.images.shape[0]!;
      batch.dispose(); // what the trainer does once the step has read it
      seen += n;
      images += n;
      if (tFirst === null) {
        tFirst = performance.now();
        firstN = n;
        sample(); // workers at full size: short epochs would otherwise see few samples
      }
    }
    const end = performance.now();
    epochs.push({
      images: seen,
      seconds: (end - start) / 1000,
      firstBatchSeconds: tFirst === null ? null : (tFirst - start) / 1000,
      imagesPerSecond: seen / ((end - start) / 1000),
      steadyImagesPerSecond: tFirst !== null && end > tFirst && seen > firstN ? (seen - firstN) / ((end - tFirst) / 1000) : null,
    });
  }
  const cpu = cpuSeconds(process.cpuUsage(cpu0));
  const wall = (performance.now() - t0) / 1000;
  clearInterval(timer);
  sample();
  const size = dataset.size;
  loader.dispose();
  dataset.dispose();
  const mean = (k: string): number | null => {
    const v = epochs.map((e) => e[k]).filter((x): x is number => typeof x === 'number');
    return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
  };
  return {
    datasetImages: size,
    images,
    epochs: c.epochs,
    openSeconds,
    seconds: wall,
    imagesPerSecond: images / wall,
    steadyImagesPerSecond: mean('steadyImagesPerSecond'),
    firstBatchSeconds: mean('firstBatchSeconds'),
    cpuSeconds: cpu,
    cpuSecondsPerImage: cpu / images,
    peakRssMiB: statusMiB('VmHWM'),
    peakSampledRssMiB: peakSampled,
    importRssMiB,
    epochStats: epochs,
    ...(c.trace ? { trace: samples } : {}),
  };
}

async function runDecode(c: DecodeCase): Promise<Record<string, unknown>> {
  const files = fs.readdirSync(c.folder).sort()
    .flatMap((cls) => fs.readdirSync(path.join(c.folder, cls)).sort().map((f) => path.join(c.folder, cls, f)))
    .slice(0, c.limit > 0 ? c.limit : undefined);
  // Warm the first file (thread pool start-up, first-call costs) outside the timing.
  await decodeImage(fs.readFileSync(files[0]!));
  let pixels = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (const f of files) {
    const d = await decodeImage(fs.readFileSync(f)); // one at a time: a single decoding thread
    pixels += d.width * d.height;
  }
  const wall = (performance.now() - t0) / 1000;
  const cpu = cpuSeconds(process.cpuUsage(cpu0));
  return {
    images: files.length,
    seconds: wall,
    imagesPerSecond: files.length / wall,
    cpuSeconds: cpu,
    cpuSecondsPerImage: cpu / files.length,
    megapixelsPerSecond: pixels / 1e6 / wall,
    meanMegapixels: pixels / 1e6 / files.length,
    peakRssMiB: statusMiB('VmHWM'),
    importRssMiB,
  };
}

async function runPrepare(c: PrepareCase): Promise<Record<string, unknown>> {
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  let last = 0;
  const r = await prepareStore(c.folder, c.out, {
    workers: c.workers,
    onProgress(done, total) {
      const now = performance.now();
      if (now - last > 2000 || done === total) {
        last = now;
        process.stderr.write(`  prepare: ${done}/${total}\n`);
      }
    },
  });
  const wall = (performance.now() - t0) / 1000;
  const cpu = cpuSeconds(process.cpuUsage(cpu0));
  return {
    read: r.read,
    written: r.written,
    skipped: r.skipped.length,
    seconds: wall,
    imagesPerSecond: r.written / wall,
    cpuSeconds: cpu,
    cpuSecondsPerImage: cpu / r.written,
    storeBytes: fs.statSync(c.out).size,
    peakRssMiB: statusMiB('VmHWM'),
  };
}

const result =
  cfg.mode === 'loader' ? await runLoader(cfg) : cfg.mode === 'decode' ? await runDecode(cfg) : await runPrepare(cfg);
console.log(JSON.stringify({ peer: 'bnn-torch', mode: cfg.mode, version: VERSION, ...result }));
