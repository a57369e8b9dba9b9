// Helpers for the image tests: independent references computed by Pillow (in one python3
// subprocess per call, never one per image), a small corpus of real photographs built on demand
// by scripts/image-corpus.py, torchvision's ImageFolder ordering re-implemented in Python, and a
// tiny PNG writer so that folders of exactly known pixels need no Python at all.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { TestContext } from 'node:test';
import zlib from 'node:zlib';

import { packageRoot } from '../../src/binding/native.js';
import { tempDir } from './data-files.js';

export const PYTHON = process.env.BNN_PYTHON ?? 'python3';
export const SCRIPTS = path.join(packageRoot, 'scripts');
export const FASHION_ROOT = '/usr/share/datasets/fashion-mnist';

const problems = new Map<string, string | undefined>();

/** Why `python3` with these modules cannot run here, or undefined when it can. */
export function pythonProblem(modules: readonly string[]): string | undefined {
  const key = modules.join(',');
  if (!problems.has(key)) {
    // find_spec, not import: scikit-image is only read for its bundled photographs.
    const r = spawnSync(PYTHON, ['-c', `import importlib.util, sys\nmissing = [m for m in sys.argv[1:] if importlib.util.find_spec(m) is None]\nprint(' '.join(missing))`, ...modules], {
      encoding: 'utf8',
    });
    problems.set(
      key,
      r.error ? `${PYTHON} is not available (${r.error.message})`
      : r.status !== 0 ? `${PYTHON} failed: ${r.stderr.trim()}`
      : r.stdout.trim() ? `${PYTHON} lacks the module(s) ${r.stdout.trim()} (pip install pillow numpy scikit-image)`
      : undefined,
    );
  }
  return problems.get(key);
}

/**
 * Skips the test (returning false) when a prerequisite is missing, with the reason; under CI
 * (process.env.CI set) fails instead, so that CI cannot pass by silently skipping.
 */
export function need(t: TestContext, problem: string | undefined): boolean {
  if (problem === undefined) return true;
  if (process.env.CI) assert.fail(`${problem} (required under CI)`);
  t.skip(problem);
  return false;
}

/** Runs a Python program (its text) with arguments; returns stdout, throws with stderr on failure. */
export function runPython(code: string, args: readonly string[] = [], input?: string): string {
  const r = spawnSync(PYTHON, ['-c', code, ...args], { encoding: 'utf8', input, maxBuffer: 64 << 20 });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`python3 failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

/** Runs one of the repository's Python scripts. */
export function runScript(name: string, args: readonly string[]): void {
  const r = spawnSync(PYTHON, [path.join(SCRIPTS, name), ...args], { encoding: 'utf8' });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${name} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
}

/** One file of the corpus, as scripts/image-corpus.py's corpus.json lists it. */
export interface CorpusFile {
  path: string; // absolute
  kind: string;
  split: 'train' | 'val';
  class: string;
  width: number;
  height: number;
}

export const CORPUS_MODULES = ['PIL', 'numpy', 'skimage'];
let corpus: { root: string; files: CorpusFile[] } | undefined;

/**
 * A small corpus of real photographs (scikit-image's bundled ones) cut into ImageNet-sized images
 * in ImageFolder layout, built once per process: 33 images in 3 classes, so every special kind
 * (grey, CMYK and progressive JPEGs; RGBA, palette + tRNS, 16-bit, grey + alpha PNGs) occurs.
 */
export function imageCorpus(): { root: string; files: CorpusFile[] } {
  if (corpus === undefined) {
    const root = path.join(tempDir('corpus'), 'photos');
    runScript('image-corpus.py', [root, '--count', '33', '--seed', '1', '--kinds', 'all', '--sources', 'skimage', '--classes', '3', '--jobs', '1']);
    const manifest = JSON.parse(fs.readFileSync(path.join(root, 'corpus.json'), 'utf8')) as { files: (Omit<CorpusFile, 'path'> & { path: string })[] };
    corpus = { root, files: manifest.files.map((f) => ({ ...f, path: path.join(root, f.path) })) };
  }
  return corpus;
}

// Pillow's decode of each file: convert('RGB') and convert('L'). For a 16-bit grey PNG Pillow
// opens mode I;16 and convert() clamps every sample above 255, which turns a photograph almost
// white; bnn-torch deliberately keeps the high byte instead, so for those files the reference
// is the high byte (numpy) and Pillow's clamped bytes are written too, to show they differ.
const PY_DECODE = String.raw`
import json, sys
import numpy as np
from PIL import Image
out, files = sys.argv[1], json.load(sys.stdin)
meta = []
for i, f in enumerate(files):
    with Image.open(f) as img:
        img.load()
        mode = img.mode
        if mode in ('I;16', 'I;16B', 'I;16L', 'I'):
            a = np.asarray(img)
            assert a.dtype.itemsize >= 2 and a.max() <= 65535, (f, a.dtype)
            high = (a.astype(np.uint32) >> 8).astype(np.uint8)
            rgb, grey = np.repeat(high[..., None], 3, axis=2), high
            open(f'{out}/{i}.pil-rgb', 'wb').write(img.convert('RGB').tobytes())
        else:
            rgb, grey = np.asarray(img.convert('RGB')), np.asarray(img.convert('L'))
        open(f'{out}/{i}.rgb', 'wb').write(np.ascontiguousarray(rgb).tobytes())
        open(f'{out}/{i}.l', 'wb').write(np.ascontiguousarray(grey).tobytes())
        meta.append({'mode': mode, 'width': img.width, 'height': img.height})
json.dump(meta, sys.stdout)
`;

export interface PillowDecoded {
  mode: string;
  width: number;
  height: number;
  rgb: Uint8Array;
  grey: Uint8Array;
  /** 16-bit grey only: what Pillow's own convert('RGB') gives (clamped). */
  pillowRgb?: Uint8Array;
}

/** Pillow's pixels for each file (see PY_DECODE), from one python3 process. */
export function pillowDecode(files: readonly string[]): PillowDecoded[] {
  const dir = tempDir('pil-decode');
  const meta = JSON.parse(runPython(PY_DECODE, [dir], JSON.stringify(files))) as { mode: string; width: number; height: number }[];
  return meta.map((m, i) => {
    const extra = path.join(dir, `${i}.pil-rgb`);
    return {
      ...m,
      rgb: fs.readFileSync(path.join(dir, `${i}.rgb`)),
      grey: fs.readFileSync(path.join(dir, `${i}.l`)),
      ...(fs.existsSync(extra) ? { pillowRgb: fs.readFileSync(extra) } : {}),
    };
  });
}

// torchvision's eval transform on the PIL image, written out step by step so that it does not
// need torchvision: Resize(resize) -> F.resize -> img.resize((w, h), BILINEAR) with the shorter
// side `resize` and the longer int(resize * long / short); then CenterCrop(size) with
// int(round((h - size) / 2.0)). Decoding as PY_DECODE (high byte for 16-bit grey).
const PY_EVAL = String.raw`
import json, sys
import numpy as np
from PIL import Image
out = sys.argv[1]
job = json.load(sys.stdin)
for i, f in enumerate(job['files']):
    with Image.open(f) as img:
        img.load()
        if img.mode in ('I;16', 'I;16B', 'I;16L', 'I'):
            img = Image.fromarray((np.asarray(img).astype(np.uint32) >> 8).astype(np.uint8))
        for j, cfg in enumerate(job['configs']):
            for mode in ('RGB', 'L'):
                im = img.convert(mode)
                w, h = im.size
                short, long = (w, h) if w <= h else (h, w)
                new_short, new_long = cfg['resize'], int(cfg['resize'] * long / short)
                nw, nh = (new_short, new_long) if w <= h else (new_long, new_short)
                im = im.resize((nw, nh), Image.BILINEAR)
                s = cfg['size']
                top, left = int(round((nh - s) / 2.0)), int(round((nw - s) / 2.0))
                im = im.crop((left, top, left + s, top + s))
                open(f'{out}/{i}-{j}-{mode}', 'wb').write(im.tobytes())
`;

/** reference[file][config] = { rgb, grey }: torchvision's eval transform on Pillow (see PY_EVAL). */
export function pillowEval(files: readonly string[], configs: readonly { size: number; resize: number }[]): { rgb: Uint8Array; grey: Uint8Array }[][] {
  const dir = tempDir('pil-eval');
  runPython(PY_EVAL, [dir], JSON.stringify({ files, configs }));
  return files.map((_, i) =>
    configs.map((_c, j) => ({ rgb: fs.readFileSync(path.join(dir, `${i}-${j}-RGB`)), grey: fs.readFileSync(path.join(dir, `${i}-${j}-L`)) })),
  );
}

// torchvision.datasets.folder's find_classes + make_dataset, verbatim in logic (without importing
// torchvision): classes are the sorted sub-folder names; files come from sorted(os.walk(...,
// followlinks=True)) and sorted(fnames), kept when their extension is one bnn-torch reads.
const PY_ORDER = String.raw`
import json, os, sys
root = sys.argv[1]
classes = sorted(entry.name for entry in os.scandir(root) if entry.is_dir())
samples = []
for label, target_class in enumerate(classes):
    target_dir = os.path.join(root, target_class)
    for r, _, fnames in sorted(os.walk(target_dir, followlinks=True)):
        for fname in sorted(fnames):
            p = os.path.join(r, fname)
            if p.lower().endswith(('.jpg', '.jpeg', '.png')):
                samples.append([os.path.relpath(p, root), label])
json.dump({'classes': classes, 'samples': samples}, sys.stdout)
`;

/** torchvision's ImageFolder classes and (path relative to root, label) list. */
export function torchvisionOrder(root: string): { classes: string[]; samples: [string, number][] } {
  return JSON.parse(runPython(PY_ORDER, [root])) as { classes: string[]; samples: [string, number][] };
}

// Small seed images for the fuzzers, every JPEG and PNG variant Pillow writes, synthetic (smooth
// gradients plus noise, so they code like photographs) and small, so that a mutation is likely
// to land in a header, a marker or a chunk rather than deep in entropy-coded data.
const PY_SEEDS = String.raw`
import os, sys
import numpy as np
from PIL import Image
out = sys.argv[1]
rng = np.random.default_rng(7)
h, w = 24, 40
yy, xx = np.mgrid[0:h, 0:w]
rgb = np.stack([xx * 6, yy * 9, (xx + yy) * 4], -1) + rng.integers(0, 24, (h, w, 3))
rgb = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
grey = rgb.convert('L')
rgb.save(f'{out}/baseline.jpg', quality=85)
rgb.save(f'{out}/progressive.jpg', quality=90, progressive=True)
rgb.save(f'{out}/444.jpg', quality=95, subsampling=0)
grey.save(f'{out}/grey.jpg', quality=80)
Image.merge('CMYK', [grey, grey.point(lambda v: 255 - v), grey, grey]).save(f'{out}/cmyk.jpg', quality=85)
rgb.save(f'{out}/rgb.png')
rgb.convert('RGBA').save(f'{out}/rgba.png')
grey.save(f'{out}/grey.png')
Image.merge('LA', [grey, grey]).save(f'{out}/grey-alpha.png')
rgb.quantize(16).save(f'{out}/palette.png', transparency=bytes([0, 128, 255]))
Image.fromarray(np.asarray(grey).astype(np.uint16) * 257).save(f'{out}/grey16.png')
`;

/** Writes the fuzz seeds (see PY_SEEDS) into a fresh folder and returns their paths. */
export function fuzzSeeds(): string[] {
  const dir = tempDir('fuzz-seeds');
  runPython(PY_SEEDS, [dir]);
  return fs.readdirSync(dir).sort().map((f) => path.join(dir, f));
}

function chunk(type: string, body: Uint8Array): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(body.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(Buffer.concat([head.subarray(4), body])) >>> 0, 0);
  return Buffer.concat([head, body, crc]);
}

/** An 8-bit PNG (1 = grey, 3 = RGB, 4 = RGBA) of interleaved pixels, written here byte by byte. */
export function encodePng(width: number, height: number, channels: 1 | 3 | 4, pixels: Uint8Array): Buffer {
  assert.equal(pixels.length, width * height * channels);
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8;
  ihdr[9] = { 1: 0, 3: 2, 4: 6 }[channels];
  const row = width * channels;
  const raw = Buffer.alloc((row + 1) * height); // filter byte 0 (none) per row
  for (let y = 0; y < height; y++) raw.set(pixels.subarray(y * row, (y + 1) * row), y * (row + 1) + 1);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(raw)),
    chunk('IEND', new Uint8Array(0)),
  ]);
}

/** A w x h RGB PNG of one colour. */
export function solidPng(width: number, height: number, rgb: readonly [number, number, number]): Buffer {
  const pixels = new Uint8Array(width * height * 3);
  for (let i = 0; i < width * height; i++) pixels.set(rgb, i * 3);
  return encodePng(width, height, 3, pixels);
}

/** Writes `bytes` to root/rel, creating folders. */
export function put(root: string, rel: string, bytes: Uint8Array | string): string {
  const file = path.join(root, rel);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, bytes);
  return file;
}

/** Mean absolute difference of two equally long byte arrays, and the largest difference. */
export function pixelDiff(a: Uint8Array, b: Uint8Array): { mean: number; max: number } {
  assert.equal(a.length, b.length, `pixel counts ${a.length} != ${b.length}`);
  let sum = 0;
  let max = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    sum += d;
    if (d > max) max = d;
  }
  return { mean: a.length === 0 ? 0 : sum / a.length, max };
}

/** The first index where two byte arrays differ, -1 when equal (for messages that say where). */
export function firstDifference(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}
