import { native } from '../binding/native.js';
import { requireTensor, Tensor } from '../core/tensor.js';

/**
 * The recipe's binary activation: +1 where x >= 0, -1 where x < 0, differentiable with the
 * straight-through estimator clipped to |x| < 1 (the gradient is 0 where |x| >= 1).
 *
 * Unlike PyTorch's `sign`, 0 maps to +1, so every output is truly binary. NaN stays NaN. Runs as
 * one fused native kernel (CPU or CUDA, by the tensor's device) and keeps only a 1-byte mask per
 * element for the backward pass.
 */
export function binaryActivation(x: Tensor): Tensor {
  return new Tensor(native().binaryActivation(requireTensor(x, 'x').handle));
}

/** {@link binaryActivation} on a worker thread, for large tensors. */
export async function binaryActivationAsync(x: Tensor): Promise<Tensor> {
  return new Tensor(await native().binaryActivationAsync(requireTensor(x, 'x').handle));
}

/**
 * @internal The binary activation composed from stock ATen ops: the reference the fused kernels
 * must match in tests. Not exported from the package.
 */
export function binaryActivationReference(x: Tensor): Tensor {
  return new Tensor(native().binaryActivationReference(requireTensor(x, 'x').handle));
}

/**
 * Bi-Real Net's ApproxSign (Liu et al. 2018): the same forward as {@link binaryActivation} (+1 where
 * x >= 0, -1 where x < 0, NaN stays NaN) with the gradient of the piecewise polynomial
 * -1 | x² + 2x | -x² + 2x | 1 (breaks at -1, 0, 1): the incoming gradient times 2 - 2|x| where
 * |x| < 1, and 0 elsewhere. The model uses it with `signGradient: 'approx-sign'`. It keeps the float
 * input for the backward pass (the straight-through estimator keeps a 1-byte mask).
 */
export function approxSign(x: Tensor): Tensor {
  return new Tensor(native().approxSign(requireTensor(x, 'x').handle));
}
