// The raw binding of native/addon/mixup.cpp: mixup's draws, mixing and loss. Only src/ imports it.
import type { TensorHandle } from './tensor.js';

export interface MixupAddon {
  drawMixup(alpha: number, n: number, seed: number): { lambda: number; index: TensorHandle };
  mixImages(images: TensorHandle, lambda: number, index: TensorHandle): TensorHandle;
  mixupCrossEntropy(logits: TensorHandle, labels: TensorHandle, lambda: number, index: TensorHandle, labelSmoothing?: number): TensorHandle;
}
