// A training checkpoint: one safetensors file holding everything needed to continue a run exactly
// (model weights and BatchNorm buffers, Adam state, RNG state) plus JSON metadata (stage, epoch,
// history, the run's config, the library version). Written atomically.
import { bnnError } from '../errors.js';
import type { Tensor } from '../core/tensor.js';
import { SafetensorsError } from '../io/safetensors.js';
import { readStateFile, writeStateFile } from '../io/state-file.js';
import { VERSION } from '../core/version.js';
import type { PartialEpoch } from './types.js';

export const CHECKPOINT_FORMAT = 1;
const META_KEY = 'bnn_torch.checkpoint';

/** The JSON part of a checkpoint. */
export interface CheckpointMeta {
  format: number;
  version: string;
  /** The stage being trained (1 or 2) and the epochs of it already completed. */
  stage: 1 | 2;
  epochsDone: number;
  /** Whatever identifies the run: compared on resume so a checkpoint from another config is refused. */
  runConfig: Record<string, unknown>;
  /** Free-form record of the run so far (per-epoch logs, timings). */
  history: unknown[];
  /** Set when the run was interrupted mid-epoch: where epoch `epochsDone` stopped and its running totals. */
  partial?: PartialEpoch;
}

export interface Checkpoint {
  meta: CheckpointMeta;
  model: Map<string, Tensor>;
  optimizer: Map<string, Tensor>;
  rng: Tensor;
}

/** Writes a checkpoint atomically (temp file + rename): an interruption leaves the previous one intact. */
export async function saveCheckpoint(path: string, checkpoint: Checkpoint): Promise<void> {
  const tensors: [string, Tensor][] = [
    ...[...checkpoint.model].map(([k, t]): [string, Tensor] => [`model/${k}`, t]),
    ...[...checkpoint.optimizer].map(([k, t]): [string, Tensor] => [`optimizer/${k}`, t]),
    ['rng/cpu', checkpoint.rng],
  ];
  await writeStateFile(path, tensors, { [META_KEY]: JSON.stringify(checkpoint.meta) });
}

/** Reads and checks a checkpoint; the caller disposes its tensors. */
export async function loadCheckpoint(path: string): Promise<Checkpoint> {
  const file = await readStateFile(path);
  try {
    return splitCheckpoint(path, file.metadata[META_KEY], file.tensors);
  } catch (e) {
    file.tensors.forEach((t) => t.dispose());
    throw e;
  }
}

function splitCheckpoint(path: string, raw: string | undefined, tensors: Map<string, Tensor>): Checkpoint {
  if (raw === undefined) throw new SafetensorsError(`${path}: not a bnn-torch checkpoint (no ${META_KEY} metadata)`, path);
  let meta: CheckpointMeta;
  try {
    meta = JSON.parse(raw) as CheckpointMeta;
  } catch {
    throw new SafetensorsError(`${path}: the checkpoint metadata is not valid JSON`, path);
  }
  if (typeof meta !== 'object' || meta === null || meta.format !== CHECKPOINT_FORMAT) {
    throw new SafetensorsError(`${path}: unsupported checkpoint format ${String((meta as { format?: unknown } | null)?.format)} (this bnn-torch reads format ${CHECKPOINT_FORMAT})`, path);
  }
  const [major, minor] = String(meta.version).split('.');
  const [ourMajor, ourMinor] = VERSION.split('.');
  if (major !== ourMajor || (ourMajor === '0' && minor !== ourMinor)) {
    throw bnnError(`${path}: written by bnn-torch ${meta.version}, which is incompatible with this version (${VERSION})`, 'BNN_IO');
  }
  if ((meta.stage !== 1 && meta.stage !== 2) || !Number.isInteger(meta.epochsDone) || meta.epochsDone < 0) {
    throw new SafetensorsError(`${path}: the checkpoint's stage or epoch is invalid`, path);
  }
  const model = new Map<string, Tensor>();
  const optimizer = new Map<string, Tensor>();
  let rng: Tensor | undefined;
  for (const [key, t] of tensors) {
    if (key.startsWith('model/')) model.set(key.slice(6), t);
    else if (key.startsWith('optimizer/')) optimizer.set(key.slice(10), t);
    else if (key === 'rng/cpu') rng = t;
    else throw new SafetensorsError(`${path}: unexpected tensor '${key}' in a checkpoint`, path);
  }
  if (!rng || model.size === 0) throw new SafetensorsError(`${path}: the checkpoint has no ${rng ? 'model weights' : 'RNG state'}`, path);
  return { meta, model, optimizer, rng };
}

/** Lists the fields where two run configs differ (shallow JSON comparison), for resume checks. */
export function configDifferences(saved: Record<string, unknown>, current: Record<string, unknown>): string[] {
  const keys = new Set([...Object.keys(saved), ...Object.keys(current)]);
  const out: string[] = [];
  for (const k of keys) {
    const a = JSON.stringify(saved[k]);
    const b = JSON.stringify(current[k]);
    if (a !== b) out.push(`${k}: checkpoint has ${a ?? 'nothing'}, this run has ${b ?? 'nothing'}`);
  }
  return out;
}
