// Model weights as safetensors files with PyTorch names: what `saveWeights` writes,
// `safetensors.torch.load_file` + `load_state_dict(strict=True)` reads, and the reverse.
import type { DType } from './tensor.js';
import { Tensor } from './tensor.js';
import { bnnError, rangeError } from './errors.js';
import { readSafetensors, writeSafetensors, fromTypedArray, toTypedArray, type SafetensorsDType, type SafetensorsTensor } from './safetensors.js';
import { scope } from './scope.js';
import type { Model } from './model.js';

const TO_FILE: Partial<Record<DType, SafetensorsDType>> = { float32: 'F32', float64: 'F64', int64: 'I64', int32: 'I32', uint8: 'U8' };

/** Metadata key holding the model config as JSON, so a weights file says what it fits. */
export const CONFIG_METADATA_KEY = 'bnn_torch.config';

/** @internal */
export async function saveWeightsFile(model: Model, path: string): Promise<void> {
  const tensors = new Map<string, SafetensorsTensor>();
  scope(() => {
    for (const [name, t] of model.stateDict()) {
      const dtype = TO_FILE[t.dtype];
      if (!dtype) throw rangeError(`cannot save '${name}': dtype ${t.dtype} is not supported in weights files`);
      tensors.set(name, fromTypedArray(t.toTypedArray(), t.shape, dtype));
    }
  });
  await writeSafetensors(path, tensors, { format: 'pt', [CONFIG_METADATA_KEY]: JSON.stringify(model.config) });
}

/** @internal */
export async function loadWeightsFile(model: Model, path: string): Promise<void> {
  const file = await readSafetensors(path);
  const problems: string[] = [];
  scope(() => {
    const own = model.stateDict();
    for (const [name, t] of own) {
      const stored = file.tensors.get(name);
      if (!stored) {
        problems.push(`missing key '${name}'`);
        continue;
      }
      if (stored.shape.join(',') !== t.shape.join(',')) {
        problems.push(`'${name}' has shape [${stored.shape.join(', ')}] but the model expects [${t.shape.join(', ')}]`);
      }
      if (stored.dtype !== TO_FILE[t.dtype]) problems.push(`'${name}' has dtype ${stored.dtype} but the model expects ${TO_FILE[t.dtype] ?? t.dtype}`);
    }
    for (const name of file.tensors.keys()) if (!own.has(name)) problems.push(`unexpected key '${name}'`);
    if (problems.length > 0) {
      throw Object.assign(
        bnnError(`${path}: the weights do not fit this model (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n  - ${problems.join('\n  - ')}`, 'BNN_INVALID_ARGUMENT'),
        { problems },
      );
    }
    const state = new Map<string, Tensor>();
    for (const [name, stored] of file.tensors) {
      const array = toTypedArray(stored);
      if (array instanceof Int16Array || array instanceof Int8Array || array instanceof Uint16Array) {
        throw bnnError(`${path}: '${name}' has an unsupported dtype ${stored.dtype}`, 'BNN_IO');
      }
      state.set(name, Tensor.fromArray(array, stored.shape, { device: model.device }));
    }
    model.loadStateDict(state);
  });
}
