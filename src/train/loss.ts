import { checkNumber } from '../core/check.js';
import { native } from '../binding/native.js';
import { requireTensor, Tensor } from '../core/tensor.js';

/** Options of {@link crossEntropy}. */
export interface CrossEntropyOptions {
  /** Label smoothing in [0, 1), as PyTorch's `label_smoothing`. Default 0. */
  labelSmoothing?: number;
}

/**
 * Mean cross-entropy of logits [N, classes] against int64 labels [N], as PyTorch's
 * `F.cross_entropy`. Labels outside [0, classes) are a clear error.
 */
export function crossEntropy(logits: Tensor, labels: Tensor, options: CrossEntropyOptions = {}): Tensor {
  const smoothing = checkNumber(options.labelSmoothing ?? 0, 'labelSmoothing', { min: 0, below: 1 });
  return new Tensor(native().crossEntropy(requireTensor(logits, 'logits').handle, requireTensor(labels, 'labels').handle, smoothing));
}
