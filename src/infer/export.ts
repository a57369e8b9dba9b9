// Packing a trained network for the inference engine: 1-bit weights as bits, BatchNorm (and RSign's
// learned thresholds) folded into thresholds (native/infer/, docs/packed-format.md). Reads the float
// weights file training writes, so it needs no LibTorch either. The engine refuses what it cannot
// run (other block structures, RPReLU) with an error naming the field; ApproxSign changes only the
// gradient, so its models pack as they are.
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
  const r = await inferNative().exportPacked(weightsPath, packedPath, { metadata, allowFloatWeights: options.allowFloatWeights === true });
  return { path: packedPath, floatBytes: r.floatBytes, packedBytes: r.packedBytes };
}
