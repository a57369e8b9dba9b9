// Mixup (Zhang et al. 2018): a step trains on a convex combination of its batch and a permutation
// of it, against the same combination of the two label sets. The maths is native
// (native/train/mixup.h); these are its typed entry points, for the Trainer and for tests.
import { checkInteger, checkNumber } from '../core/check.js';
import { native } from '../binding/native.js';
import { requireTensor, Tensor } from '../core/tensor.js';
import { typeError } from '../errors.js';

/** One batch's mixing: the weight of the batch itself, and each sample's partner. */
export interface Mixing {
  /** The batch's own weight in [0, 1]; its partners get 1 - lambda. */
  lambda: number;
  /** int64 [N], a permutation of 0..N-1: sample i is mixed with sample index[i]. */
  index: Tensor;
}

/** What a training step mixes with: drawn natively from `alpha` and `seed` ({@link drawMixup}), or given. */
export type StepMixup = { alpha: number; seed: number } | Mixing;

/**
 * Draws one batch's mixing: lambda ~ Beta(alpha, alpha) and a uniform permutation of n, from a CPU
 * generator seeded with `seed` alone (PyTorch's mt19937; lambda from `torch._sample_dirichlet` on
 * [alpha, alpha], as `torch.distributions.Beta` draws; then `torch.randperm(n)` on the same
 * generator). Below alpha = 0.05, where that sampler underflows (both Gamma draws 0, so lambda
 * 0.5: at alpha = 1e-3 a quarter of its draws), lambda is drawn in log space instead, from
 * Gamma(alpha + 1) and a uniform. The same seed gives the same draw on every machine. Dispose the
 * returned index.
 */
export function drawMixup(alpha: number, n: number, seed: number): Mixing {
  checkNumber(alpha, 'mixup alpha', { above: 0 });
  checkInteger(n, 'n', 1);
  checkInteger(seed, 'seed', 0);
  const d = native().drawMixup(alpha, n, seed);
  return { lambda: d.lambda, index: new Tensor(d.index) };
}

/** lambda x images + (1 - lambda) x images[index] (differentiable; on the images' device). */
export function mixImages(images: Tensor, mixing: Mixing): Tensor {
  const m = checkMixing(mixing);
  return new Tensor(native().mixImages(requireTensor(images, 'images').handle, m.lambda, m.index.handle));
}

/**
 * lambda x CE(logits, labels) + (1 - lambda) x CE(logits, labels[index]), each term PyTorch's
 * `F.cross_entropy` with the given label smoothing: the loss a mixup step learns.
 */
export function mixupCrossEntropy(logits: Tensor, labels: Tensor, mixing: Mixing, options: { labelSmoothing?: number } = {}): Tensor {
  const m = checkMixing(mixing);
  const smoothing = checkNumber(options.labelSmoothing ?? 0, 'labelSmoothing', { min: 0, below: 1 });
  return new Tensor(native().mixupCrossEntropy(requireTensor(logits, 'logits').handle, requireTensor(labels, 'labels').handle, m.lambda, m.index.handle, smoothing));
}

/**
 * The seed of one training step's mixup draw: SplitMix64 folded over (run seed, stage, epoch,
 * step), keeping 53 bits. A pure function of the step's position, so a run resumed at any step
 * draws exactly what the uninterrupted run drew there, and no generator state needs saving.
 */
export function mixupSeed(seed: number, stage: number, epoch: number, step: number): number {
  let h = 0n;
  for (const [v, name] of [[seed, 'seed'], [stage, 'stage'], [epoch, 'epoch'], [step, 'step']] as const) {
    h = splitmix64(h ^ BigInt(checkInteger(v, name, 0)));
  }
  return Number(h >> 11n);
}

const MASK64 = (1n << 64n) - 1n;

function splitmix64(x: bigint): bigint {
  let z = (x + 0x9e3779b97f4a7c15n) & MASK64;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK64;
  return z ^ (z >> 31n);
}

/** @internal Checks a step's mixup option; returns the mixing or the draw's parameters. */
export function checkStepMixup(m: unknown): StepMixup {
  if (typeof m !== 'object' || m === null) throw typeError('mixup must be an object: { alpha, seed } or { lambda, index }');
  if ('index' in m) return checkMixing(m as Mixing);
  const { alpha, seed } = m as { alpha: unknown; seed: unknown };
  return { alpha: checkNumber(alpha, 'mixup.alpha', { above: 0 }), seed: checkInteger(seed, 'mixup.seed', 0) };
}

function checkMixing(m: Mixing): Mixing {
  if (typeof m !== 'object' || m === null) throw typeError('mixing must be an object { lambda, index }');
  checkNumber(m.lambda, 'mixup lambda', { min: 0, max: 1 });
  requireTensor(m.index, 'mixup index');
  return m;
}
