// Single images through the native decoders and transforms: what a dataset does per sample,
// exposed for checking a transform by eye or against another library.
import { native } from '../binding/native.js';
import { checkInteger } from '../core/check.js';
import { typeError } from '../errors.js';
import { checkChannels, resolveTransform, type ImageTransformOptions } from './transforms.js';

/** A decoded image: interleaved uint8 pixels (HWC), 1 (grey) or 3 (RGB) channels. */
export interface DecodedImage {
  data: Uint8Array;
  width: number;
  height: number;
  channels: 1 | 3;
}

/** What a file's header says. */
export interface ImageInfo {
  format: 'jpeg' | 'png';
  width: number;
  height: number;
  /** As stored: 1 grey, 2 grey + alpha, 3 colour, 4 RGBA or CMYK. */
  channels: number;
}

function checkBytes(bytes: unknown): Uint8Array {
  if (!(bytes instanceof Uint8Array)) throw typeError('the image must be a Uint8Array or Buffer of a JPEG or PNG file');
  return bytes;
}

/** Reads a JPEG or PNG header (format, size, stored channels) without decoding. */
export function imageInfo(bytes: Uint8Array): ImageInfo {
  return native().imageInfo(checkBytes(bytes));
}

/**
 * Decodes a JPEG (libjpeg-turbo) or PNG (libspng) to RGB or grey, giving the pixels Pillow gives
 * for `Image.open(f).convert('RGB' | 'L')`: grey, CMYK and progressive JPEGs, 16-bit, palette and
 * alpha PNGs included (alpha is dropped, as `convert` does). Runs on a worker thread.
 */
export async function decodeImage(bytes: Uint8Array, options: { channels?: 1 | 3 } = {}): Promise<DecodedImage> {
  const channels = checkChannels(options.channels);
  const d = await native().decodeImage(checkBytes(bytes), { channels });
  return { data: d.data, width: d.width, height: d.height, channels: d.channels as 1 | 3 };
}

/**
 * One sample of an image through a transform, exactly as a streamed dataset renders sample
 * `sample` of epoch `epoch` with a loader seeded `seed`: size x size x channels uint8 (HWC).
 */
export async function renderImage(
  bytes: Uint8Array,
  transform: ImageTransformOptions,
  options: { channels?: 1 | 3; seed?: number; epoch?: number; sample?: number } = {},
): Promise<DecodedImage> {
  const channels = checkChannels(options.channels);
  const spec = resolveTransform(transform, 'eval', channels);
  const data = await native().renderImage(checkBytes(bytes), spec, {
    seed: checkInteger(options.seed ?? 0, 'seed', 0),
    epoch: checkInteger(options.epoch ?? 0, 'epoch', 0),
    sample: checkInteger(options.sample ?? 0, 'sample', 0),
  });
  return { data, width: spec.size, height: spec.size, channels };
}
