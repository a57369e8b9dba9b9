// bnn-torch's image pipeline against torchvision itself (not a re-implementation): the eval
// transform (Resize 256 + CenterCrop 224) on real photographs, and ImageFolder's classes and
// sample order. The tests compare against Pillow calls that mirror torchvision; this runs the real
// thing in the peer venv (scripts/peer-venv: torch 2.14.1 + torchvision 0.29.1).
//
//   node --import tsx bench/transforms.ts <ImageFolder split, e.g. /tmp/corpus/val> [--images 100]
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { native } from '../src/binding/native.js';
import { DataLoader, Dataset, renderImage } from '../src/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = process.argv[2];
if (!root) throw new Error('usage: bench/transforms.ts <ImageFolder split> [--images N]');
const at = process.argv.indexOf('--images');
const count = at > 0 ? Number(process.argv[at + 1]) : 100;

// Our order and labels: an eval loader without shuffle visits samples in dataset order.
const dataset = await Dataset.fromImages(root, { transform: { mode: 'eval' } });
const labels: number[] = [];
const loader = DataLoader.forEval(dataset, { batchSize: 64 });
for await (const b of loader.epoch(0)) {
  labels.push(...Array.from(b.labels.toTypedArray() as BigInt64Array, Number));
  b.dispose();
}
loader.dispose();

// The files in the dataset's order, from the same scan the dataset was built from.
const { paths: files } = await native().imageFiles('folder', root, []);
const out = fs.mkdtempSync(path.join(os.tmpdir(), 'bnn-transforms-'));
const n = Math.min(count, files.length);
for (let i = 0; i < n; i++) {
  const img = await renderImage(fs.readFileSync(files[i]!), { mode: 'eval', size: 224, resize: 256 });
  fs.writeFileSync(path.join(out, `${i}.raw`), img.data);
}
fs.writeFileSync(path.join(out, 'order.json'), JSON.stringify({ classNames: dataset.classNames, labels, rendered: files.slice(0, n) }));
const python = process.env.PEER_PYTHON ?? execFileSync(path.join(here, '..', 'scripts', 'peer-venv'), { encoding: 'utf8' }).trim().split('\n').at(-1)!;
const result = JSON.parse(execFileSync(python, [path.join(here, 'peer', 'transforms.py'), '--root', root, '--ours', out], { encoding: 'utf8' })) as Record<string, unknown>;
fs.rmSync(out, { recursive: true, force: true });
dataset.dispose();
console.log(`${root}: ${dataset.size} images, ${dataset.numClasses} classes`);
console.log(`ImageFolder classes match torchvision: ${String(result.classes_match)}; labels in sample order match: ${String(result.labels_match)}`);
console.log(
  `eval transform (Resize 256, CenterCrop 224) vs torchvision on ${String(result.images)} photographs: ${String(result.exact)} identical; ` +
    `mean absolute difference per image: mean ${(result.mean_abs_diff_mean as number).toFixed(4)}, worst ${(result.mean_abs_diff_max as number).toFixed(4)} grey levels`,
);
