import { checkNumber } from '../core/check.js';
import { native } from '../binding/native.js';
import { requireTensor, Tensor } from '../core/tensor.js';
import { checkDistillSettings } from './distill.js';

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

/** Options of {@link distillationLoss}. */
export interface DistillationLossOptions {
  /** Softening temperature T > 0. Default 1. */
  temperature?: number;
  /** Weight w in [0, 1] of the distillation term. Default 0.5. */
  weight?: number;
  /** Label smoothing of the cross-entropy term, in [0, 1). Default 0. */
  labelSmoothing?: number;
}

/**
 * The knowledge-distillation loss of student logits [N, classes] against a teacher's logits of the
 * same shape and int64 labels [N]:
 * `(1 - w) * CE(student, labels) + w * T² * KL(softmax(teacher / T) || softmax(student / T))`, the
 * KL summed over classes and averaged over the batch, i.e. PyTorch's
 * `(1 - w) * F.cross_entropy(s, y, label_smoothing=e) + w * F.kl_div(F.log_softmax(s / T, 1), F.softmax(t / T, 1), reduction='batchmean') * T * T`.
 * The teacher's logits are constants: no gradient flows into them.
 */
export function distillationLoss(student: Tensor, teacher: Tensor, labels: Tensor, options: DistillationLossOptions = {}): Tensor {
  const { temperature, weight } = checkDistillSettings(options.temperature, options.weight, 'distillationLoss');
  const smoothing = checkNumber(options.labelSmoothing ?? 0, 'labelSmoothing', { min: 0, below: 1 });
  return new Tensor(
    native().distillationLoss(requireTensor(student, 'student').handle, requireTensor(teacher, 'teacher').handle, requireTensor(labels, 'labels').handle, temperature, weight, smoothing),
  );
}
