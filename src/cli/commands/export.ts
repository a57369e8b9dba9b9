// `bnn export`: weights with PyTorch names as safetensors, and the config beside them.
import path from 'node:path';

import type { Argv, ArgumentsCamelCase } from 'yargs';

import { writeFileAtomicSync } from '../../io/atomic-file.js';
import { loadModelFile } from './model-file.js';

interface ExportArgs { checkpoint: string; out?: string }

export const command = 'export';
export const describe = 'Export weights (PyTorch names, safetensors) and their config.json from weights or a checkpoint';

export function builder(y: Argv): Argv<ExportArgs> {
  return y
    .option('checkpoint', { type: 'string', demandOption: true, describe: 'weights or checkpoint file' })
    .option('out', { type: 'string', describe: 'output .safetensors (default: <checkpoint>-export.safetensors)' }) as unknown as Argv<ExportArgs>;
}

export async function handler(a: ArgumentsCamelCase<ExportArgs>): Promise<void> {
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
