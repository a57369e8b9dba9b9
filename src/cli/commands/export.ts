// `bnn export`: weights with PyTorch names as safetensors, and the config beside them; or, with
// --packed, the packed 1-bit model for the inference engine (bnn predict, InferenceModel).
import fs from 'node:fs';
import path from 'node:path';

import type { Argv, ArgumentsCamelCase } from 'yargs';

import type { DatasetName } from '../../data/datasets.js';
import { exportPacked, type ExportPackedOptions, type ExportPackedResult } from '../../infer/export.js';
import { writeFileAtomicSync } from '../../io/atomic-file.js';
import { getPreset, type PresetName } from '../../train/presets.js';
import { defaultEvalResize } from '../../image/transforms.js';
import { DATASETS, loadData } from '../common.js';
import { loadModelFile, readModelConfig } from './model-file.js';

interface ExportArgs { checkpoint: string; out?: string; packed: boolean; allowFloatWeights: boolean; dataset?: DatasetName; data?: string }

export const command = 'export';
export const describe = 'Export weights (PyTorch names, safetensors) and their config.json, or (--packed) the packed 1-bit model for bnn predict';

export function builder(y: Argv): Argv<ExportArgs> {
  return y
    .option('checkpoint', { type: 'string', demandOption: true, describe: 'weights or checkpoint file' })
    .option('out', { type: 'string', describe: 'output .safetensors (default: <checkpoint>-export.safetensors, or <checkpoint>.packed.safetensors with --packed)' })
    .option('packed', { type: 'boolean', default: false, describe: 'write the packed 1-bit model (bits, folded BatchNorm thresholds) for the inference engine' })
    .option('allow-float-weights', { type: 'boolean', default: false, describe: 'with --packed: binarise a stage-1 (float-weight) network, which changes its predictions' })
    .option('dataset', { type: 'string', choices: DATASETS, describe: "with --packed: the dataset whose input size, normalisation and class names to store (default: the run's config.json)" })
    .option('data', { type: 'string', describe: "with --packed: that dataset's folder or image data (default: the run's config.json)" }) as unknown as Argv<ExportArgs>;
}

interface RunConfig {
  dataset?: string;
  data?: string;
  preset?: PresetName;
  cli?: { preset?: PresetName; imageSize?: number; channels?: number };
}

/** Input size, normalisation and class names, from the dataset the run trained on. */
async function inputOf(a: ExportArgs): Promise<Pick<ExportPackedOptions, 'input' | 'classNames'>> {
  const configFile = path.join(path.dirname(a.checkpoint), 'config.json');
  const run: RunConfig = fs.existsSync(configFile) ? (JSON.parse(fs.readFileSync(configFile, 'utf8')) as RunConfig) : {};
  const named = (DATASETS as readonly string[]).includes(run.dataset ?? '') ? (run.dataset as DatasetName) : undefined;
  const name = a.dataset ?? named;
  const data = a.data ?? run.data;
  if (name === undefined && data === undefined) return {};
  const preset = getPreset(run.cli?.preset ?? 'fashion-mnist-cpu');
  const flags = { ...(run.cli?.imageSize !== undefined ? { imageSize: run.cli.imageSize } : {}), ...(run.cli?.channels !== undefined ? { channels: run.cli.channels } : {}) };
  using test = await loadData(name ?? 'fashion-mnist', data, 'test', preset, flags, 1);
  const [channels, height, width] = test.shape;
  // Photographs were evaluated through resize + centre crop (loadImages' eval transform, with its
  // defaults): the engine's predictFiles must cut them the same way.
  const crop = test.streamed ? { resize: defaultEvalResize(height), dctScaling: true } : {};
  return { input: { channels, height, width, mean: [...test.mean], std: [...test.std], ...crop }, classNames: [...test.classNames] };
}

export async function handler(a: ArgumentsCamelCase<ExportArgs>): Promise<void> {
  if (a.packed) {
    const out = a.out ?? a.checkpoint.replace(/\.safetensors$/, '') + '.packed.safetensors';
    const { kind } = await readModelConfig(a.checkpoint);
    const extra = await inputOf(a);
    if (!extra.input) console.error('note: no dataset known (no config.json beside the weights, no --dataset): the packed model will not know its input size and normalisation');
    const options = { ...extra, allowFloatWeights: a.allowFloatWeights };
    let r: ExportPackedResult;
    if (kind === 'checkpoint') {
      // The packer reads weights files: the model writes the checkpoint's weights as one first.
      const model = await loadModelFile(a.checkpoint);
      try {
        r = await model.exportPacked(out, options);
      } finally {
        model.dispose();
      }
    } else {
      r = await exportPacked(a.checkpoint, out, options);
    }
    const mb = (b: number) => `${(b / 1e6).toFixed(2)} MB`;
    console.log(`packed: ${out}\n  ${mb(r.packedBytes)} against ${mb(r.floatBytes)} of float32 weights (${(r.floatBytes / r.packedBytes).toFixed(1)}x smaller)\n  predict: npx bnn predict --model ${out} <images>`);
    return;
  }
  const out = a.out ?? a.checkpoint.replace(/\.safetensors$/, '') + '-export.safetensors';
  const model = await loadModelFile(a.checkpoint);
  try {
    await model.saveWeights(out);
    const configPath = path.join(path.dirname(out), `${path.basename(out, '.safetensors')}.config.json`);
    writeFileAtomicSync(configPath, `${JSON.stringify(model.config, null, 2)}\n`);
    console.log(`weights: ${out}\nconfig:  ${configPath}\nload in PyTorch: model.load_state_dict(safetensors.torch.load_file('${out}'), strict=True)`);
  } finally {
    model.dispose();
  }
}
