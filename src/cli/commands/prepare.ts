// `bnn prepare`: an image folder or list file written into one prepared store (image/store.ts).
import path from 'node:path';

import type { Argv, ArgumentsCamelCase } from 'yargs';

import { prepareStore } from '../../image/store.js';
import { UsageError } from '../common.js';

interface PrepareArgs {
  source: string;
  out: string;
  maxSide: number;
  rawMaxSide: number;
  quality: number;
  skipBad: boolean;
  workers?: number;
  progress: boolean;
}

export const command = 'prepare <source>';
export const describe = 'Write an image folder (ImageFolder layout) or list file into one prepared store for fast training';

export function builder(y: Argv): Argv<PrepareArgs> {
  return y
    .positional('source', { type: 'string', demandOption: true, describe: 'a folder of class folders (or one split of it, e.g. train/), or a "path label" list file' })
    .option('out', { type: 'string', demandOption: true, describe: 'the store file to write (it appears only when complete)' })
    .option('max-side', { type: 'number', default: 256, describe: "shrink images until the shorter side is at most this (ImageNet's 256 keeps Resize(256) exact)" })
    .option('raw-max-side', { type: 'number', default: 64, describe: 'store images up to this size as raw pixels' })
    .option('quality', { type: 'number', default: 90, describe: 'JPEG quality of re-encoded images' })
    .option('skip-bad', { type: 'boolean', default: false, describe: 'leave out unreadable files (listed at the end) instead of failing on the first' })
    .option('workers', { type: 'number', describe: 'decoder threads (default: one per core)' })
    .option('progress', { type: 'boolean', default: true, describe: 'live progress on a terminal' }) as unknown as Argv<PrepareArgs>;
}

export async function handler(a: ArgumentsCamelCase<PrepareArgs>): Promise<void> {
  const live = a.progress && process.stderr.isTTY === true;
  let shown = 0;
  const started = performance.now();
  const r = await prepareStore(a.source, a.out, {
    maxSide: a.maxSide,
    rawMaxSide: a.rawMaxSide,
    quality: a.quality,
    skipBad: a.skipBad,
    ...(a.workers !== undefined ? { workers: a.workers } : {}),
    onProgress: (done, total) => {
      const rate = done / ((performance.now() - started) / 1000);
      if (live) process.stderr.write(`\r${done}/${total} images  ${rate.toFixed(0)} img/s\x1b[K`);
      else if (done === total || done - shown >= total / 10) {
        shown = done;
        process.stderr.write(`${done}/${total} images  ${rate.toFixed(0)} img/s\n`);
      }
    },
  }).catch((e: unknown) => {
    if (e instanceof Error && /does not exist|no class folders|cannot open the list/.test(e.message)) throw new UsageError(e.message);
    throw e;
  });
  if (live) process.stderr.write('\r\x1b[K');
  console.log(`${path.resolve(r.path)}: read ${r.read} files, wrote ${r.written} images, skipped ${r.skipped.length} (${r.seconds.toFixed(1)} s, ${(r.written / r.seconds).toFixed(0)} img/s)`);
  const reasons = new Map<string, string[]>();
  for (const s of r.skipped) reasons.set(s.reason, [...(reasons.get(s.reason) ?? []), s.file]);
  for (const [reason, files] of reasons) console.log(`  ${files.length} ${reason}: ${files.slice(0, 3).join(', ')}${files.length > 3 ? ', ...' : ''}`);
}
