// Named training schedules. Epochs and milestones are 0-based epoch counts, as in the reference's
// adjust_learning_rate (the rate drops when epoch >= milestone).
import { rangeError } from '../errors.js';
import type { ImageTransformOptions } from '../image/transforms.js';

/** One stage's hyperparameters. */
export interface StageSchedule {
  epochs: number;
  lr: number;
  weightDecay: number;
  milestones: number[];
  gammas: number[];
  /**
   * Linear learning-rate warm-up over the stage's first k epochs (at most its epochs), ramped every
   * step as PyTorch's `LinearLR(start_factor=1/T, total_iters=T)`, T = k x batches per epoch, and
   * multiplying the step or cosine schedule, whose milestones count from epoch 0 (see
   * `warmupFactor`). Default 0: none.
   */
  warmupEpochs?: number;
}

/** A preset: both stages, plus the data settings it was tuned with. */
export interface Preset {
  name: PresetName;
  description: string;
  stage1: StageSchedule;
  stage2: StageSchedule;
  /** Suggested batch size and model width for this preset. */
  batchSize: number;
  width: number;
  /** Augmentation it was tuned with: random-crop padding in pixels (0: off), horizontal flips, rotation in degrees. */
  augment: { cropPadding: number; hflip: boolean; rotation?: number };
  /** The network's stem: 'imagenet' (7x7 stride-2 conv + max-pool) for 224 px images, else 'small'. */
  stem: 'small' | 'imagenet';
  /** The train transform of image folders and stores (the eval side is resize + centre crop). */
  images: ImageTransformOptions;
  /**
   * A wall-clock budget the CLI sizes the run to by default ('15m'): both stages' epochs and
   * milestones scale to this machine's measured speed. None: the epochs as written.
   */
  timeBudget?: string;
}

export type PresetName = 'recipe' | 'imagenet' | 'cifar100' | 'fashion-mnist-cpu' | 'fashion-mnist';

const tenth = [0.1, 0.1, 0.1];
const fifth = [0.2, 0.2, 0.2];

export const PRESETS: Readonly<Record<PresetName, Preset>> = Object.freeze({
  recipe: {
    name: 'recipe',
    description: 'The recipe as written: stage 1 lr 1e-3, wd 1e-5, x0.1 at 40/60/70, 75 epochs; stage 2 lr 2e-4, wd 0, x0.2 at 150/250/320, 350 epochs',
    stage1: { epochs: 75, lr: 1e-3, weightDecay: 1e-5, milestones: [40, 60, 70], gammas: tenth },
    stage2: { epochs: 350, lr: 2e-4, weightDecay: 0, milestones: [150, 250, 320], gammas: fifth },
    batchSize: 128,
    width: 64,
    augment: { cropPadding: 4, hflip: true },
    stem: 'small',
    images: { size: 224 },
  },
  imagenet: {
    name: 'imagenet',
    description: "The tricks' ImageNet schedule: x0.1 at 40/60/70, 75 epochs, in both stages",
    stage1: { epochs: 75, lr: 1e-3, weightDecay: 1e-5, milestones: [40, 60, 70], gammas: tenth },
    stage2: { epochs: 75, lr: 2e-4, weightDecay: 0, milestones: [40, 60, 70], gammas: tenth },
    batchSize: 256,
    width: 64,
    augment: { cropPadding: 4, hflip: true },
    stem: 'imagenet',
    // The tricks' ImageNet augmentation: RandomResizedCrop 224, flip, ColorJitter(0.4, 0.4, 0.4), PCA Lighting 0.1.
    images: { size: 224, colorJitter: 0.4, lighting: 0.1 },
  },
  cifar100: {
    name: 'cifar100',
    description: "The tricks' CIFAR-100 schedule: x0.2 at 150/250/320, 350 epochs, in both stages",
    stage1: { epochs: 350, lr: 1e-3, weightDecay: 1e-5, milestones: [150, 250, 320], gammas: fifth },
    stage2: { epochs: 350, lr: 2e-4, weightDecay: 0, milestones: [150, 250, 320], gammas: fifth },
    batchSize: 128,
    width: 64,
    // The tricks' CIFAR-100 recipe: crop with 4 px padding, flip, and a rotation of up to 15 degrees.
    augment: { cropPadding: 4, hflip: true, rotation: 15 },
    stem: 'small',
    // For CIFAR-sized images streamed from a store; a folder of 32 px images is decoded into
    // memory and augmented by `augment`.
    images: { size: 32, rotation: 15 },
  },
  'fashion-mnist-cpu': {
    name: 'fashion-mnist-cpu',
    description:
      'The main job on a 2-core CPU: width 16, stage 1 four epochs at 2e-3 (x0.1 for the last), stage 2 two epochs at 5e-4 (x0.2 for the last); measured: see README',
    stage1: { epochs: 4, lr: 2e-3, weightDecay: 1e-5, milestones: [3], gammas: [0.1] },
    stage2: { epochs: 2, lr: 5e-4, weightDecay: 0, milestones: [1], gammas: [0.2] },
    batchSize: 128,
    width: 16,
    // Short runs learn faster without augmentation (measured 91.7% at 4 + 2 epochs without it).
    augment: { cropPadding: 0, hflip: false },
    stem: 'small',
    images: { size: 28 },
    // The README's promise: the main job ends within 15 minutes on whatever 2-core CPU runs it.
    timeBudget: '15m',
  },
  'fashion-mnist': {
    name: 'fashion-mnist',
    description:
      'Fashion-MNIST for accuracy: width 32, horizontal flips, stage 1 ten epochs at 2e-3 (x0.1 at 6 and 8), stage 2 six epochs at 5e-4 (x0.2 at 3 and 5); measured 93.08% in 91 min on a 2-core CPU (README)',
    stage1: { epochs: 10, lr: 2e-3, weightDecay: 1e-5, milestones: [6, 8], gammas: [0.1, 0.1] },
    stage2: { epochs: 6, lr: 5e-4, weightDecay: 0, milestones: [3, 5], gammas: [0.2, 0.2] },
    batchSize: 128,
    // Width 16 underfits (the main job ends at 92.8% train, 91.6% test); four times the
    // parameters buys the capacity, and flips (clothes are left-right symmetric) the variety.
    width: 32,
    augment: { cropPadding: 0, hflip: true },
    stem: 'small',
    images: { size: 28 },
  },
});

/** Looks a preset up by name, with a clear error listing the known ones. */
export function getPreset(name: string): Preset {
  if (!Object.hasOwn(PRESETS, name)) throw rangeError(`unknown preset '${name}' (known: ${Object.keys(PRESETS).join(', ')})`);
  return PRESETS[name as PresetName];
}

/**
 * Shrinks (or stretches) a stage's epochs and milestones by `scale`, rounded, keeping the
 * schedule's shape: at least 1 epoch, milestones >= 1 and strictly increasing.
 */
export function scaleStage(stage: StageSchedule, scale: number): StageSchedule {
  if (typeof scale !== 'number' || !(scale > 0) || !Number.isFinite(scale)) throw rangeError(`epochsScale must be a positive number, got ${scale}`);
  const epochs = Math.max(1, Math.round(stage.epochs * scale));
  const milestones: number[] = [];
  for (const m of stage.milestones) {
    const scaled = Math.max(1, Math.round(m * scale), (milestones.at(-1) ?? 0) + 1);
    milestones.push(scaled);
  }
  const warmupEpochs = stage.warmupEpochs === undefined ? undefined : Math.round(stage.warmupEpochs * scale);
  return { ...stage, epochs, milestones, ...(warmupEpochs === undefined ? {} : { warmupEpochs }) };
}
