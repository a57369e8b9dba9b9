// `bnn summary`: the model summary table for a config or a saved model.
import type { Argv, ArgumentsCamelCase } from 'yargs';

import { BLOCK_ACTIVATIONS, BLOCK_ORDERS, DOWNSAMPLES, resolveModelConfig, SIGN_GRADIENTS, type BlockActivation, type BlockOrder, type Downsample, type SignGradient } from '../../nn/model-config.js';
import { summarize } from '../../nn/summary.js';
import { getPreset, PRESETS, type PresetName } from '../../train/presets.js';
import { loadImages, modelSwitches } from '../common.js';
import { readModelConfig } from './model-file.js';

interface SummaryArgs { checkpoint?: string; numClasses: number; inChannels: number; width: number; stem: 'small' | 'imagenet'; doubleSkip: boolean; blockOrder: BlockOrder; blockActivation: BlockActivation; downsample: Downsample; signGradient: SignGradient; learnableThresholds: boolean; binaryActivations: boolean; binaryWeights: boolean; height?: number; data?: string; preset: PresetName; imageSize?: number; json: boolean }

export const command = 'summary';
export const describe = 'Print the model summary (1-bit/32-bit parameters, MACs, size) for a config or a saved model';

export function builder(y: Argv): Argv<SummaryArgs> {
  return y
    .option('checkpoint', { type: 'string', describe: 'read the config from weights or a checkpoint' })
    .option('num-classes', { type: 'number', default: 10 })
    .option('in-channels', { type: 'number', default: 1 })
    .option('width', { type: 'number', default: 16 })
    .option('stem', { type: 'string', choices: ['small', 'imagenet'] as const, default: 'small' as const })
    .option('double-skip', { type: 'boolean', default: true })
    .option('block-order', { type: 'string', choices: BLOCK_ORDERS, default: 'bn-sign-conv' as BlockOrder })
    .option('block-activation', { type: 'string', choices: BLOCK_ACTIVATIONS, default: 'prelu' as BlockActivation })
    .option('downsample', { type: 'string', choices: DOWNSAMPLES, default: 'avgpool' as Downsample })
    .option('sign-gradient', { type: 'string', choices: SIGN_GRADIENTS, default: 'ste' as SignGradient })
    .option('learnable-thresholds', { type: 'boolean', default: false, describe: "ReActNet's RSign thresholds (one parameter per sign input channel)" })
    .option('binary-activations', { type: 'boolean', default: true })
    .option('binary-weights', { type: 'boolean', default: true, describe: 'summarize the stage-2 model (--no-binary-weights: stage 1)' })
    .option('height', { type: 'number', describe: 'input size (default 28 for 1 channel, 32 otherwise, 224 for the imagenet stem)' })
    .option('data', { type: 'string', describe: 'image data (folder, list file or store): take the classes, channels and input size from it' })
    .option('preset', { type: 'string', choices: Object.keys(PRESETS) as PresetName[], default: 'imagenet' as PresetName, describe: 'with --data: the preset whose image size and stem apply' })
    .option('image-size', { type: 'number', describe: "with --data: the training crop's side (default: the preset's)" })
    .option('json', { type: 'boolean', default: false }) as unknown as Argv<SummaryArgs>;
}

export async function handler(a: ArgumentsCamelCase<SummaryArgs>): Promise<void> {
  let fromData: { numClasses: number; inChannels: number; height: number; stem: 'small' | 'imagenet' } | undefined;
  if (a.data !== undefined) {
    const preset = getPreset(a.preset);
    using data = await loadImages(a.data, 'train', preset, a.imageSize !== undefined ? { imageSize: a.imageSize } : {}, undefined);
    fromData = { numClasses: data.numClasses, inChannels: data.shape[0], height: data.shape[1], stem: data.streamed ? preset.stem : 'small' };
  }
  const config = a.checkpoint
    ? resolveModelConfig((await readModelConfig(a.checkpoint)).config)
    : resolveModelConfig({
        numClasses: fromData?.numClasses ?? a.numClasses,
        inChannels: fromData?.inChannels ?? a.inChannels,
        width: a.width,
        stem: fromData?.stem ?? a.stem,
        ...modelSwitches(a),
        binaryActivations: a.binaryActivations,
        binaryWeights: a.binaryWeights,
      });
  const height = a.height ?? fromData?.height;
  const s = summarize(config, height ? { height, width: height } : {});
  if (a.json) {
    const { text: _text, ...rest } = s;
    console.log(JSON.stringify(rest, null, 2));
  } else {
    console.log(s.text);
  }
}
