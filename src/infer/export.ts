// Packing a trained network for the inference engine: 1-bit weights as bits, BatchNorm folded into
// thresholds (native/infer/, docs/packed-format.md). Reads the float weights file training writes,
// so it needs no LibTorch either.
import fs from 'node:fs/promises';
import path from 'node:path';

import { inferNative } from '../binding/infer.js';
import { rangeError, typeError } from '../errors.js';
import { checkInputSpec, CLASS_NAMES_METADATA_KEY, INPUT_METADATA_KEY, type InputSpec } from './inference-model.js';

/** Options of {@link exportPacked}. */
export interface ExportPackedOptions {
  /** The input size and normalisation the network was trained with (stored, used by predictFiles). */
  input?: InputSpec;
  /** Class names, in class-index order. */
  classNames?: readonly string[];
  /**
   * Pack a network trained with float weights (stage 1): its weights are binarised, which changes
   * its predictions. Default false: such a file is refused.
   */
  allowFloatWeights?: boolean;
}

/** What {@link exportPacked} wrote. */
export interface ExportPackedResult {
  path: string;
  /** Size of the float32 weights file it read. */
  floatBytes: number;
  /** Size of the packed file. */
  packedBytes: number;
}

/**
 * The training-only switches the packed engine cannot run exactly, from the weights file's config
 * (only its header is read). The engine itself refuses the structural switches (blockOrder,
 * blockActivation, rprelu included, and downsample); the learnable sign thresholds are extra
 * tensors it would silently ignore, so they are refused here. ApproxSign changes only the gradient:
 * the forward the engine runs is the same, so it packs.
 */
async function refuseUnpackable(weightsPath: string): Promise<void> {
  let config: { learnableThresholds?: unknown } | undefined;
  try {
    const file = await fs.open(weightsPath, 'r');
    try {
      const prefix = Buffer.alloc(8);
      await file.read(prefix, 0, 8, 0);
      const size = Number(prefix.readBigUInt64LE(0));
      if (size > 0 && size <= 100 * 1024 * 1024) {
        const header = Buffer.alloc(size);
        await file.read(header, 0, size, 8);
        const meta = (JSON.parse(header.toString('utf8')) as { __metadata__?: Record<string, string> }).__metadata__;
        const text = meta?.['bnn_torch.config'];
        if (typeof text === 'string') config = JSON.parse(text) as { learnableThresholds?: unknown };
      }
    } finally {
      await file.close();
    }
  } catch {
    return; // unreadable or malformed: the native exporter reports it with its own message
  }
  if (config?.learnableThresholds === true) {
    throw rangeError(
      `${weightsPath}: the model has learnableThresholds (ReActNet's RSign thresholds, layer*.sign_threshold*); the packed engine runs only the recipe's sign, so it cannot be packed`,
    );
  }
}

/**
 * Writes the packed form of a bnn-torch weights file (final.safetensors: 1-bit weights and binary
 * activations) for {@link InferenceModel}: a safetensors file ~20x smaller than the float one.
 * The write is atomic.
 */
export async function exportPacked(weightsPath: string, packedPath: string, options: ExportPackedOptions = {}): Promise<ExportPackedResult> {
  if (typeof weightsPath !== 'string' || weightsPath === '') throw typeError('weightsPath must be a non-empty string');
  if (typeof packedPath !== 'string' || packedPath === '') throw typeError('packedPath must be a non-empty string');
  if (path.resolve(weightsPath) === path.resolve(packedPath)) throw rangeError('the packed file must not overwrite the weights it is made from');
  const metadata: Record<string, string> = {};
  if (options.input !== undefined) metadata[INPUT_METADATA_KEY] = JSON.stringify(checkInputSpec(options.input));
  if (options.classNames !== undefined) {
    if (!Array.isArray(options.classNames) || options.classNames.some((n) => typeof n !== 'string')) throw typeError('classNames must be an array of strings');
    metadata[CLASS_NAMES_METADATA_KEY] = JSON.stringify(options.classNames);
  }
  await refuseUnpackable(weightsPath);
  const r = await inferNative().exportPacked(weightsPath, packedPath, { metadata, allowFloatWeights: options.allowFloatWeights === true });
  return { path: packedPath, floatBytes: r.floatBytes, packedBytes: r.packedBytes };
}
