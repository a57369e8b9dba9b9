// The learnable toy task the training tests share: 8x8 single-channel images in which each of the
// four classes lights a different quadrant, plus noise.
import { mulberry32 } from '../../src/data/batches.js';

export const TOY_CLASSES = 4;
export const TOY_SHAPE = [1, 8, 8];

/** n images (flattened [n, 1, 8, 8]) and their labels (i % 4), the noise drawn from `seed`. */
export function toyData(n: number, seed: number): { images: Float32Array; labels: Int32Array } {
  const rand = mulberry32(seed);
  const images = new Float32Array(n * 64);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = i % TOY_CLASSES;
    labels[i] = c;
    for (let y = 0; y < 8; y++) {
      for (let x = 0; x < 8; x++) {
        const lit = (y < 4 ? 0 : 2) + (x < 4 ? 0 : 1) === c;
        images[i * 64 + y * 8 + x] = (lit ? 1.5 : -0.5) + (rand() - 0.5);
      }
    }
  }
  return { images, labels };
}
