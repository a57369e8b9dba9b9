// Helpers for bnn-torch's own tests and benchmarks; not part of the public API.
import { native } from './native.js';
import { requireTensor, Tensor } from './tensor.js';

/** The binary activation composed from stock ATen ops, the reference the fused kernels must match. */
export function binaryActivationReference(x: Tensor): Tensor {
  return new Tensor(native().binaryActivationReference(requireTensor(x, 'x').handle));
}
