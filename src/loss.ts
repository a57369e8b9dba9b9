import { rangeError } from './errors.js';
import { native } from './native.js';
import { requireTensor, Tensor } from './tensor.js';

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
  const smoothing = options.labelSmoothing ?? 0;
  if (typeof smoothing !== 'number' || !(smoothing >= 0 && smoothing < 1)) {
    throw rangeError(`labelSmoothing must be in [0, 1), got ${String(smoothing)}`);
  }
  return new Tensor(native().crossEntropy(requireTensor(logits, 'logits').handle, requireTensor(labels, 'labels').handle, smoothing));
}
