// The image transforms a streamed dataset renders its samples with, as torchvision names them:
// train = RandomResizedCrop + RandomHorizontalFlip (+ RandomRotation, ColorJitter, PCA Lighting),
// eval = Resize(shorter side) + CenterCrop. The pixels are Pillow's (native/image/ matches them
// byte for byte at full decoding scale); the random draws come from (seed, epoch, sample).
import type { NativeTransform } from '../binding/image.js';
import { checkBoolean, checkInteger, checkNumber, checkOneOf } from '../core/check.js';
import { rangeError, typeError } from '../errors.js';

/** ImageNet's per-channel mean and std of pixel / 255 (torchvision's `Normalize` constants). */
export const IMAGENET_MEAN: readonly number[] = Object.freeze([0.485, 0.456, 0.406]);
export const IMAGENET_STD: readonly number[] = Object.freeze([0.229, 0.224, 0.225]);

/** ColorJitter strengths, as torchvision's `ColorJitter(brightness, contrast, saturation, hue)`. */
export interface ColorJitterOptions {
  brightness?: number;
  contrast?: number;
  saturation?: number;
  /** At most 0.5. */
  hue?: number;
}

/** How a streamed image dataset turns a file into a sample. */
export interface ImageTransformOptions {
  /** 'train': RandomResizedCrop and the random extras; 'eval': resize and centre crop. Default: by split. */
  mode?: 'train' | 'eval';
  /** Side of the square output. Default 224. */
  size?: number;
  /** RandomResizedCrop's area range, as a fraction of the image. Default [0.08, 1]. */
  scale?: readonly [number, number];
  /** RandomResizedCrop's aspect-ratio range. Default [3/4, 4/3]. */
  ratio?: readonly [number, number];
  /** Random horizontal flip (train). Default true. */
  hflip?: boolean;
  /** Random rotation by up to ± this many degrees (train; the tricks' CIFAR-100 recipe uses 15). Default 0. */
  rotation?: number;
  /** ColorJitter (train): one number for brightness, contrast and saturation alike (the tricks use 0.4). Default off. */
  colorJitter?: number | ColorJitterOptions;
  /** AlexNet's PCA lighting noise (train) with this standard deviation (the tricks use 0.1). Default 0. */
  lighting?: number;
  /** Eval: the shorter side before the centre crop. Default `round(size * 256 / 224)` (256 for 224). */
  resize?: number;
  /**
   * Decode JPEGs at 1/2, 1/4 or 1/8 scale in the DCT when the crop is shrunk by at least twice that
   * anyway (faster; within a fraction of a grey level of a full decode). Default true.
   */
  dctScaling?: boolean;
}

/** @internal The evaluation transform's shorter side for a `size` crop unless given: 256 for 224, as in ImageNet practice. */
export function defaultEvalResize(size: number): number {
  return Math.round((size * 256) / 224);
}

/** @internal Image channels: 1 (grey, as PIL's convert('L')) or 3 (RGB); default 3. */
export function checkChannels(channels: unknown): 1 | 3 {
  if (channels === undefined) return 3;
  const c = checkInteger(channels, 'channels', 1, 3);
  if (c === 2) throw rangeError('channels must be 1 (grey) or 3 (RGB), got 2');
  return c as 1 | 3;
}

/** @internal Fills defaults and checks every field, naming the first bad one. */
export function resolveTransform(options: ImageTransformOptions, defaultMode: 'train' | 'eval', channels: number): NativeTransform {
  if (typeof options !== 'object' || options === null) throw typeError('transform must be an object (or false)');
  const mode = checkOneOf(options.mode ?? defaultMode, 'transform.mode', ['train', 'eval'] as const);
  const size = checkInteger(options.size ?? 224, 'transform.size', 1, 8192);
  const pair = (v: readonly [number, number] | undefined, what: string, fallback: [number, number]): [number, number] => {
    if (v === undefined) return fallback;
    if (!Array.isArray(v)) throw typeError(`${what} must be [min, max]`);
    if (v.length !== 2) throw rangeError(`${what} must be [min, max], got ${v.length} value${v.length === 1 ? '' : 's'}`);
    return [checkNumber(v[0], `${what}[0]`, { above: 0 }), checkNumber(v[1], `${what}[1]`, { above: 0 })];
  };
  const [scaleMin, scaleMax] = pair(options.scale, 'transform.scale', [0.08, 1]);
  const [ratioMin, ratioMax] = pair(options.ratio, 'transform.ratio', [3 / 4, 4 / 3]);
  const jitter: ColorJitterOptions =
    options.colorJitter === undefined ? {}
    : typeof options.colorJitter === 'number' ? { brightness: options.colorJitter, contrast: options.colorJitter, saturation: options.colorJitter }
    : options.colorJitter;
  if (typeof jitter !== 'object' || jitter === null) throw typeError('transform.colorJitter must be a number or an object');
  return {
    mode,
    channels,
    size,
    scaleMin,
    scaleMax,
    ratioMin,
    ratioMax,
    hflip: checkBoolean(options.hflip, 'transform.hflip', true),
    rotation: checkNumber(options.rotation ?? 0, 'transform.rotation', { min: 0, max: 180 }),
    brightness: checkNumber(jitter.brightness ?? 0, 'transform.colorJitter.brightness', { min: 0 }),
    contrast: checkNumber(jitter.contrast ?? 0, 'transform.colorJitter.contrast', { min: 0 }),
    saturation: checkNumber(jitter.saturation ?? 0, 'transform.colorJitter.saturation', { min: 0 }),
    hue: checkNumber(jitter.hue ?? 0, 'transform.colorJitter.hue', { min: 0, max: 0.5 }),
    lighting: checkNumber(options.lighting ?? 0, 'transform.lighting', { min: 0 }),
    resize: checkInteger(options.resize ?? defaultEvalResize(size), 'transform.resize', 1, 65500),
    dctScaling: checkBoolean(options.dctScaling, 'transform.dctScaling', true),
  };
}
