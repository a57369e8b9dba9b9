// Named tensors in a safetensors file: the one conversion between tensors and files that model
// weights (`Model.saveWeights`) and training checkpoints share. Which tensors a file must hold is
// decided by its reader (the native state-dict check for weights, the checkpoint's own layout).
import type { Device } from '../core/device.js';
import { scope } from '../core/scope.js';
import { Tensor, type DType } from '../core/tensor.js';
import { rangeError } from '../errors.js';
import { fromTypedArray, readSafetensors, SafetensorsError, toTypedArray, writeSafetensors, type SafetensorsDType, type SafetensorsTensor } from './safetensors.js';

/** How each tensor dtype is stored; the others (float16, bfloat16, bool) are not written. */
const FILE_DTYPE: Partial<Record<DType, SafetensorsDType>> = { float32: 'F32', float64: 'F64', int64: 'I64', int32: 'I32', uint8: 'U8' };

/** A state file's content. The caller owns (and disposes) the tensors. */
export interface StateFile {
  tensors: Map<string, Tensor>;
  metadata: Record<string, string>;
}

/** Writes named tensors (copied to the host) and string metadata atomically. */
export async function writeStateFile(path: string, tensors: Iterable<readonly [string, Tensor]>, metadata: Readonly<Record<string, string>>): Promise<void> {
  const stored = new Map<string, SafetensorsTensor>();
  for (const [name, t] of tensors) {
    const dtype = FILE_DTYPE[t.dtype];
    if (!dtype) throw rangeError(`cannot save '${name}': dtype ${t.dtype} is not supported in state files`);
    stored.set(name, fromTypedArray(t.toTypedArray(), t.shape, dtype));
  }
  await writeSafetensors(path, stored, metadata);
}

/**
 * Reads every tensor of a safetensors file onto `device`. A dtype bnn-torch tensors cannot hold
 * (I16, I8, F16, ...) is a BNN_IO error naming the file and the tensor, and nothing is left
 * allocated.
 */
export async function readStateFile(path: string, device: Device = 'cpu'): Promise<StateFile> {
  const file = await readSafetensors(path);
  const tensors = scope(() => {
    const out = new Map<string, Tensor>();
    for (const [name, stored] of file.tensors) {
      const array = toTypedArray(stored);
      if (array instanceof Int16Array || array instanceof Int8Array || array instanceof Uint16Array) {
        throw new SafetensorsError(`${path}: '${name}' has an unsupported dtype ${stored.dtype}`, path);
      }
      out.set(name, Tensor.fromArray(array, stored.shape, { device }));
    }
    return out;
  });
  return { tensors, metadata: file.metadata };
}
