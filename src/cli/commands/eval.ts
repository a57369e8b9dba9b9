// `bnn eval`: test accuracy, loss and per-class accuracy of saved weights.
import type { Argv, ArgumentsCamelCase } from 'yargs';

import { DataLoader } from '../../data/loader.js';
import type { DatasetName } from '../../data/datasets.js';
import { evaluate } from '../../train/trainer.js';
import { getPreset, PRESETS, type PresetName } from '../../train/presets.js';
import { applyThreads, DATASETS, isImageData, loadData, resolveDevice } from '../common.js';
import { loadModelFile } from './model-file.js';

interface EvalArgs {
  checkpoint: string;
  dataset: DatasetName;
  data?: string;
  preset: PresetName;
  imageSize?: number;
  channels?: number;
  workers?: number;
  batchSize: number;
  device: string;
  threads?: number;
  limit?: number;
  json: boolean;
}

export const command = 'eval';
export const describe = 'Evaluate weights or a checkpoint on a test set';

export function builder(y: Argv): Argv<EvalArgs> {
  return y
    .option('checkpoint', { type: 'string', demandOption: true, describe: 'weights (.safetensors) or checkpoint file' })
    .option('dataset', { type: 'string', choices: DATASETS, default: 'fashion-mnist' as DatasetName })
    .option('data', { type: 'string', describe: 'dataset folder, or image data (folder, list file or store; its val/ or test/ split)' })
    .option('preset', { type: 'string', choices: Object.keys(PRESETS) as PresetName[], default: 'fashion-mnist-cpu' as PresetName, describe: 'image data: the preset whose image size to evaluate at' })
    .option('image-size', { type: 'number', describe: "image data: side of the centre crop (default: the preset's)" })
    .option('channels', { type: 'number', choices: [1, 3], describe: 'image data: 3 (RGB, default) or 1 (grey)' })
    .option('workers', { type: 'number', describe: 'image data: decoder threads (default: one per core)' })
    .option('batch-size', { type: 'number', default: 500 })
    .option('device', { type: 'string', default: 'cpu' })
    .option('threads', { type: 'number' })
    .option('limit', { type: 'number', describe: 'evaluate the first N test samples only' })
    .option('json', { type: 'boolean', default: false, describe: 'print the metrics as JSON' }) as unknown as Argv<EvalArgs>;
}

export async function handler(a: ArgumentsCamelCase<EvalArgs>): Promise<void> {
  const device = resolveDevice(a.device);
  applyThreads(a.threads);
  const model = await loadModelFile(a.checkpoint);
  const test = await loadData(a.dataset, a.data, 'test', getPreset(a.preset), { imageSize: a.imageSize, channels: a.channels, workers: a.workers }, a.limit);
  const loader = DataLoader.forEval(test, { batchSize: a.batchSize, device, ...(a.workers !== undefined ? { workers: a.workers } : {}) });
  try {
    model.to(device);
    const m = await evaluate(model, loader);
    if (a.json) {
      console.log(JSON.stringify({ ...m, classNames: test.classNames }, null, 2));
      return;
    }
    console.log(`${a.checkpoint} on ${a.data !== undefined && isImageData(a.data) ? test.name : a.dataset} test (${m.count} samples): accuracy ${(100 * m.accuracy).toFixed(2)}%, loss ${m.loss.toFixed(4)}`);
    const width = Math.max(...test.classNames.map((n) => n.length));
    test.classNames.forEach((name, i) => console.log(`  ${name.padEnd(width)}  ${(100 * (m.classAccuracy[i] ?? NaN)).toFixed(2)}%`));
  } finally {
    loader.dispose();
    test.dispose();
    model.dispose();
  }
}
