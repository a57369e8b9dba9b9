// Reads a model from a weights file (final.safetensors, stage1.safetensors, an export) or a
// training checkpoint, using the config stored in its metadata.
import { loadCheckpoint } from '../../train/checkpoint.js';
import { CONFIG_METADATA_KEY, createModel, type Model } from '../../nn/model.js';
import type { ModelConfig } from '../../nn/model-config.js';
import { readSafetensors } from '../../io/safetensors.js';
import { UsageError } from '../common.js';

export async function readModelConfig(file: string): Promise<{ config: ModelConfig; kind: 'weights' | 'checkpoint' }> {
  const { metadata } = await readSafetensors(file);
  if (metadata[CONFIG_METADATA_KEY]) return { config: JSON.parse(metadata[CONFIG_METADATA_KEY]) as ModelConfig, kind: 'weights' };
  if (metadata['bnn_torch.checkpoint']) {
    const meta = JSON.parse(metadata['bnn_torch.checkpoint']) as { stage: number; runConfig: { model: ModelConfig } };
    return { config: { ...meta.runConfig.model, binaryWeights: meta.stage === 2 }, kind: 'checkpoint' };
  }
  throw new UsageError(`${file}: not a bnn-torch weights file or checkpoint (no model config in its metadata)`);
}

/** Builds the model a file describes and loads its weights. */
export async function loadModelFile(file: string): Promise<Model> {
  const { config, kind } = await readModelConfig(file);
  const model = createModel(config);
  try {
    if (kind === 'weights') {
      await model.loadWeights(file);
    } else {
      const ckpt = await loadCheckpoint(file);
      try {
        model.loadStateDict(ckpt.model);
      } finally {
        ckpt.model.forEach((t) => t.dispose());
        ckpt.optimizer.forEach((t) => t.dispose());
        ckpt.rng.dispose();
      }
    }
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}
