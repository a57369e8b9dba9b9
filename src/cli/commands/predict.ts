// `bnn predict`: classify images or a test set with a packed 1-bit model (bnn export --packed) on
// the XNOR-popcount engine. It loads only bnn_infer.node: LibTorch stays out of the process.
import fs from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';

import type { Argv, ArgumentsCamelCase } from 'yargs';

import { INFER_ISAS, InferenceModel, type InferIsa, type PredictResult } from '../../infer/inference-model.js';
import { readIdx } from '../../io/idx.js';
import { writeFileAtomicSync } from '../../io/atomic-file.js';
import { UsageError } from '../common.js';

interface PredictArgs {
  model: string;
  inputs?: string[];
  data?: string;
  split: 'test' | 'train';
  limit?: number;
  top: number;
  threads: number;
  isa?: InferIsa;
  batchSize: number;
  json?: string;
}

export const command = 'predict [inputs..]';
export const describe = 'Classify images (files or class folders) or an IDX test set with a packed 1-bit model, without LibTorch';

export function builder(y: Argv): Argv<PredictArgs> {
  return y
    .positional('inputs', { type: 'string', array: true, describe: 'JPEG/PNG files, or folders of them (class sub-folders give labels and an accuracy)' })
    .option('model', { type: 'string', demandOption: true, describe: 'packed model (bnn export --packed)' })
    .option('data', { type: 'string', describe: 'an IDX folder (MNIST / Fashion-MNIST layout: t10k-images-idx3-ubyte[.gz], ...)' })
    .option('split', { type: 'string', choices: ['test', 'train'] as const, default: 'test' as const, describe: 'which IDX split' })
    .option('limit', { type: 'number', describe: 'the first N images only' })
    .option('top', { type: 'number', default: 3, describe: 'best classes listed per image' })
    .option('threads', { type: 'number', default: availableParallelism(), defaultDescription: 'the cores this process may use', describe: 'engine threads' })
    .option('isa', { type: 'string', choices: INFER_ISAS, describe: 'force an instruction set (default: the best this CPU has)' })
    .option('batch-size', { type: 'number', default: 64, describe: 'images per engine call' })
    .option('json', { type: 'string', describe: 'also write every prediction to this JSON file' })
    .example('$0 predict --model runs/main/final.packed.safetensors --data /usr/share/datasets/fashion-mnist', 'accuracy on the Fashion-MNIST test set')
    .example('$0 predict --model model.packed.safetensors photo1.jpg photo2.png', 'the best classes of two images') as unknown as Argv<PredictArgs>;
}

const IMAGE = /\.(jpe?g|png)$/i;

/** Image files and their labels (a folder's class sub-folders, sorted as torchvision sorts them). */
function listImages(inputs: string[]): { files: string[]; labels: (string | undefined)[] } {
  const files: string[] = [];
  const labels: (string | undefined)[] = [];
  for (const input of inputs) {
    if (!fs.existsSync(input)) throw new UsageError(`${input}: no such file or folder`);
    if (fs.statSync(input).isFile()) {
      files.push(input);
      labels.push(undefined);
      continue;
    }
    const entries = fs.readdirSync(input, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      const full = path.join(input, e.name);
      if (e.isFile() && IMAGE.test(e.name)) {
        files.push(full);
        labels.push(undefined);
      } else if (e.isDirectory()) {
        for (const f of fs.readdirSync(full).sort()) {
          if (IMAGE.test(f)) {
            files.push(path.join(full, f));
            labels.push(e.name);
          }
        }
      }
    }
  }
  return { files, labels };
}

/** Linux: whether a LibTorch library is mapped into this process (it should not be). */
function libtorchLoaded(): boolean | undefined {
  try {
    return /\/lib(torch|c10)[^/\s]*\.so/.test(fs.readFileSync('/proc/self/maps', 'utf8'));
  } catch {
    return undefined;
  }
}

export async function handler(a: ArgumentsCamelCase<PredictArgs>): Promise<void> {
  const inputs = a.inputs ?? [];
  if (!inputs.length && a.data === undefined) throw new UsageError('give images (files or folders) or --data <IDX folder>');
  if (inputs.length && a.data !== undefined) throw new UsageError('give images or --data, not both');
  if (a.limit !== undefined && !(Number.isInteger(a.limit) && a.limit >= 1)) throw new UsageError(`--limit must be a positive integer, got ${a.limit}`);
  using model = await InferenceModel.load(a.model, { threads: a.threads });
  const { info } = model;
  const names = info.classNames;
  const options = { topK: Math.min(a.top, info.numClasses), threads: a.threads, batchSize: a.batchSize, ...(a.isa ? { isa: a.isa } : {}) };
  let result: PredictResult;
  let truth: (number | undefined)[];
  let files: string[] | undefined;
  const started = performance.now();
  if (a.data !== undefined) {
    const prefix = a.split === 'test' ? 't10k' : 'train';
    const find = (kind: string): string => {
      for (const name of [`${prefix}-${kind}`, `${prefix}-${kind}.gz`]) if (fs.existsSync(path.join(a.data!, name))) return path.join(a.data!, name);
      throw new UsageError(`${a.data}: no ${prefix}-${kind}[.gz] (an IDX folder: MNIST / Fashion-MNIST layout)`);
    };
    const images = await readIdx(find('images-idx3-ubyte'));
    const labels = await readIdx(find('labels-idx1-ubyte'));
    if (images.shape.length !== 3) throw new UsageError(`${a.data}: the images file has shape [${images.shape.join(', ')}], not [N, H, W]`);
    const n = Math.min(images.shape[0]!, labels.shape[0]!, a.limit ?? Infinity);
    const [, h, w] = images.shape as [number, number, number];
    // The global average pool accepts any size, so a mismatch would give quietly wrong answers.
    const want = info.input;
    if (want && (want.height !== h || want.width !== w)) throw new UsageError(`${a.data}: the images are ${h}x${w}, the model was trained on ${want.height}x${want.width}`);
    if (want && want.channels !== 1) throw new UsageError(`${a.data}: IDX images have 1 channel, the model takes ${want.channels}`);
    result = await model.predict({ data: images.data.subarray(0, n * h * w), shape: [n, h, w, 1] }, options);
    truth = Array.from(labels.data.subarray(0, n));
  } else {
    const listed = listImages(inputs);
    if (!listed.files.length) throw new UsageError('no JPEG or PNG files in the inputs');
    files = listed.files.slice(0, a.limit ?? Infinity);
    result = await model.predictFiles(files, options);
    // Class folders match the model's class names, else are numbered, else sorted like the training
    // folder's classes.
    const sorted = [...new Set(listed.labels.filter((x): x is string => x !== undefined))].sort();
    truth = listed.labels.slice(0, files.length).map((l) => {
      if (l === undefined) return undefined;
      const byName = names?.indexOf(l) ?? -1;
      if (byName >= 0) return byName;
      return /^\d+$/.test(l) ? Number(l) : sorted.indexOf(l);
    });
  }
  const seconds = (performance.now() - started) / 1000;
  const labelled = truth.filter((t) => t !== undefined).length;
  const correct = truth.reduce<number>((acc, t, i) => acc + (t !== undefined && result.classes[i] === t ? 1 : 0), 0);
  const loaded = libtorchLoaded();
  if (files) {
    files.forEach((f, i) => {
      const best = result.top[i]!.map((s) => `${s.label ?? s.classIndex} ${(100 * s.probability).toFixed(1)}%`).join(', ');
      console.log(`${f}: ${best}`);
    });
  }
  const isa = a.isa ?? info.isa;
  console.log(
    `${result.count} images in ${seconds.toFixed(2)} s (${(result.count / seconds).toFixed(0)} images/s, ${isa}, ${a.threads} thread${a.threads === 1 ? '' : 's'}` +
      `${loaded === undefined ? '' : loaded ? ', LibTorch loaded' : ', LibTorch not loaded'})` +
      (labelled ? `; accuracy ${(100 * (correct / labelled)).toFixed(2)}% (${correct}/${labelled})` : ''),
  );
  if (a.json) {
    const rows = Array.from({ length: result.count }, (_, i) => ({
      ...(files ? { file: files[i] } : { index: i }),
      ...(truth[i] !== undefined ? { label: truth[i] } : {}),
      class: result.classes[i],
      top: result.top[i],
      logits: Array.from(result.logits.subarray(i * result.numClasses, (i + 1) * result.numClasses)),
    }));
    writeFileAtomicSync(a.json, `${JSON.stringify({ model: a.model, isa, threads: a.threads, ...(labelled ? { accuracy: correct / labelled } : {}), predictions: rows })}\n`);
  }
}
