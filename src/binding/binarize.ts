// The raw binding of native/addon/binarize.cpp: the binary activation and ApproxSign. Only src/ imports it.
import type { TensorHandle } from './tensor.js';

export interface BinarizeAddon {
  binaryActivation(x: TensorHandle): TensorHandle;
  binaryActivationAsync(x: TensorHandle): Promise<TensorHandle>;
  binaryActivationReference(x: TensorHandle): TensorHandle;
  approxSign(x: TensorHandle): TensorHandle;
}
