// `bnn summary`: the model summary table for a config or a saved model.
import type { Argv, ArgumentsCamelCase } from 'yargs';

import { resolveModelConfig } from '../../nn/model-config.js';
import { summarize } from '../../nn/summary.js';
import { readModelConfig } from './model-file.js';

interface SummaryArgs { checkpoint?: string; numClasses: number; inChannels: number; width: number; stem: 'small' | 'imagenet'; doubleSkip: boolean; binaryActivations: boolean; binaryWeights: boolean; height?: number; json: boolean }

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
    .option('binary-activations', { type: 'boolean', default: true })
    .option('binary-weights', { type: 'boolean', default: true, describe: 'summarize the stage-2 model (--no-binary-weights: stage 1)' })
    .option('height', { type: 'number', describe: 'input size (default 28 for 1 channel, 32 otherwise, 224 for the imagenet stem)' })
    .option('json', { type: 'boolean', default: false }) as unknown as Argv<SummaryArgs>;
}

export async function handler(a: ArgumentsCamelCase<SummaryArgs>): Promise<void> {
  const config = a.checkpoint
    ? resolveModelConfig((await readModelConfig(a.checkpoint)).config)
    : resolveModelConfig({ numClasses: a.numClasses, inChannels: a.inChannels, width: a.width, stem: a.stem, doubleSkip: a.doubleSkip, binaryActivations: a.binaryActivations, binaryWeights: a.binaryWeights });
  const s = summarize(config, a.height ? { height: a.height, width: a.height } : {});
  if (a.json) {
    const { text: _text, ...rest } = s;
    console.log(JSON.stringify(rest, null, 2));
  } else {
    console.log(s.text);
  }
}
