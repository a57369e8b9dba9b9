// The raw binding of native/addon/loss.cpp: losses. Only src/ imports it.
import type { TensorHandle } from './tensor.js';

export interface LossAddon {
  crossEntropy(logits: TensorHandle, labels: TensorHandle, labelSmoothing?: number): TensorHandle;
  distillationLoss(student: TensorHandle, teacher: TensorHandle, labels: TensorHandle, temperature: number, weight: number, labelSmoothing?: number): TensorHandle;
}
