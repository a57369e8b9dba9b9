// Inference with a packed 1-bit model (bnn export --packed): the XNOR-popcount engine of
// native/infer/ through bnn_infer.node, an addon that does not link LibTorch. Nothing here loads
// the training addon, so a process that only predicts never maps LibTorch into memory.
import fs from 'node:fs/promises';
import { availableParallelism } from 'node:os';

import { inferNative, type NativeInferModel, type NativeInferModelInfo } from '../binding/infer.js';
import { checkInteger, checkNumber } from '../core/check.js';
import { NativeResource } from '../core/handle.js';
import { rangeError, typeError } from '../errors.js';

/**
 * The instruction sets the engine's kernels exist for: `avx512` (with VPOPCNTDQ: Ice Lake, Zen 4
 * and later), `avx512bw` (AVX-512 without it: Skylake-SP, Cascade Lake), `avx2`, `neon` (AArch64)
 * and `baseline` (portable C++).
 */
export type InferIsa = 'avx512' | 'avx512bw' | 'avx2' | 'baseline' | 'neon';
/** Every {@link InferIsa}, best first (frozen: validation reads it). */
export const INFER_ISAS: readonly InferIsa[] = Object.freeze(['avx512', 'avx512bw', 'avx2', 'baseline', 'neon'] as const satisfies readonly InferIsa[]);

/** Metadata keys the exporter writes beside the engine's own. */
export const INPUT_METADATA_KEY = 'bnn_torch.input';
export const CLASS_NAMES_METADATA_KEY = 'bnn_torch.class_names';

/** What the network expects: the image size it was trained on and the normalisation it saw. */
export interface InputSpec {
  channels: number;
  height: number;
  width: number;
  /** Per-channel mean of pixel/255. */
  mean: number[];
  /** Per-channel standard deviation of pixel/255. */
  std: number[];
  /**
   * How {@link InferenceModel.predictFiles} sizes a photo, as the training run's evaluation did:
   * given, the shorter side is resized to this many pixels and the centre `height` x `width` cut
   * out (torchvision's Resize + CenterCrop; needs height = width). Absent, the whole image is
   * resized to `height` x `width` (datasets of small images, e.g. Fashion-MNIST written as PNGs).
   */
  resize?: number;
  /** With `resize`: decode JPEGs at a reduced DCT scale where the evaluation transform did (bnn-torch's default, true). */
  dctScaling?: boolean;
}

/**
 * (v/255 - mean) / std for v = 0..255 in float32, step by step as the training loader (and
 * PyTorch's ToTensor + Normalize) computes it. Each JavaScript operation on float32 values is
 * rounded back with Math.fround, which gives float32's own correctly rounded result.
 */
export function normalizationTable(mean: number, std: number): Float32Array {
  const m = Math.fround(mean);
  const s = Math.fround(std);
  return Float32Array.from({ length: 256 }, (_, v) => Math.fround(Math.fround(Math.fround(v / 255) - m) / s));
}

/** A packed model's description. */
export interface InferenceModelInfo {
  /** The packed format's version (docs/packed-format.md). */
  formatVersion: number;
  inChannels: number;
  numClasses: number;
  /** Base width (channels of the first stage). */
  width: number;
  stem: 'small' | 'imagenet';
  doubleSkip: boolean;
  /** Input size and normalisation, when the exporter knew them. */
  input?: InputSpec;
  /** Class names, when the exporter knew them. */
  classNames?: string[];
  /** The instruction set predict() uses by default. */
  isa: string;
  /** The file's `__metadata__` entries other than the format's own (`bnn_infer.*`, `bnn_torch.config`, `format`). */
  metadata: Record<string, string>;
}

/** @internal Checks an input spec, naming the field (`what` prefixes the names). */
export function checkInputSpec(spec: InputSpec, what = 'input'): InputSpec {
  if (typeof spec !== 'object' || spec === null) throw typeError(`${what} must be { channels, height, width, mean, std }`);
  const channels = checkInteger(spec.channels, `${what}.channels`, 1, 4096);
  const height = checkInteger(spec.height, `${what}.height`, 1, 1 << 16);
  const width = checkInteger(spec.width, `${what}.width`, 1, 1 << 16);
  for (const key of ['mean', 'std'] as const) {
    const v = spec[key];
    if (!Array.isArray(v) || v.length !== channels) throw rangeError(`${what}.${key} must hold ${channels} number(s), one per channel`);
    v.forEach((x, i) => checkNumber(x, `${what}.${key}[${i}]`, key === 'std' ? { above: 0 } : {}));
  }
  const out: InputSpec = { channels, height, width, mean: [...spec.mean], std: [...spec.std] };
  if (spec.resize !== undefined) {
    out.resize = checkInteger(spec.resize, `${what}.resize`, 1, 65500);
    if (height !== width) throw rangeError(`${what}: a centre crop (resize ${out.resize}) needs a square input, got ${height} x ${width}`);
    if (out.resize < height) throw rangeError(`${what}.resize (${out.resize}) must be at least the crop's side (${height})`);
  }
  if (spec.dctScaling !== undefined) {
    if (typeof spec.dctScaling !== 'boolean') throw typeError(`${what}.dctScaling must be a boolean`);
    if (out.resize === undefined) throw rangeError(`${what}.dctScaling applies only with resize`);
    out.dctScaling = spec.dctScaling;
  }
  return out;
}

/** The engine's instruction sets on this CPU. */
export function inferenceIsas(): { best: InferIsa; supported: InferIsa[] } {
  const r = inferNative().isaInfo();
  return { best: r.best as InferIsa, supported: r.supported as InferIsa[] };
}

/**
 * Images for {@link InferenceModel.predict}: either the training model's input (normalised float
 * NCHW), or raw pixels (uint8 NHWC, 0..255) that the model normalises with the mean and standard
 * deviation stored in its file.
 */
export type InferenceInput =
  | { data: Float32Array; shape: readonly [number, number, number, number] }
  | { data: Uint8Array; shape: readonly [number, number, number, number] };

/** Options of {@link InferenceModel.predict}. */
export interface PredictOptions {
  /** How many best classes to list per image. Default 5 (at most the number of classes). */
  topK?: number;
  /** Threads (over batch and output channels). Default: the model's (see {@link LoadOptions}). */
  threads?: number;
  /** Force an instruction set (an error if this CPU lacks it). Default: the best it has. */
  isa?: InferIsa;
  /** Images per native call; larger inputs are split. Default 64. */
  batchSize?: number;
}

/** One of an image's best classes. */
export interface ClassScore {
  classIndex: number;
  /** The class name, when the file has them. */
  label?: string;
  /** Softmax probability. */
  probability: number;
  logit: number;
}

/** What {@link InferenceModel.predict} returns. */
export interface PredictResult {
  count: number;
  numClasses: number;
  /** Logits, `count * numClasses`, image-major. */
  logits: Float32Array;
  /** The best class of each image (the first one on a tie, as torch.argmax). */
  classes: Int32Array;
  /** Each image's `topK` best classes, best first. */
  top: ClassScore[][];
}

/** Options of {@link InferenceModel.load}. */
export interface LoadOptions {
  /** Default threads of predict(). Default: the cores this process may use (`os.availableParallelism()`). */
  threads?: number;
}

function parseJson<T>(text: string | undefined, what: string): T | undefined {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text) as T;
  } catch {
    throw rangeError(`the packed model's ${what} metadata is not valid JSON`);
  }
}

/**
 * A packed 1-bit network loaded into the XNOR-popcount engine. Free it with {@link dispose} (or
 * `using`).
 *
 * @example
 * ```ts
 * using model = await InferenceModel.load('runs/main/final.bnnpk.safetensors');
 * const { top } = await model.predictFiles(['shirt.png']);
 * console.log(top[0][0]); // { classIndex: 6, label: 'Shirt', probability: 0.93, logit: 4.1 }
 * ```
 */
export class InferenceModel extends NativeResource<NativeInferModel> {
  readonly info: InferenceModelInfo;
  readonly #threads: number;

  private constructor(handle: NativeInferModel, threads: number) {
    super('inference model', handle);
    const raw: NativeInferModelInfo = handle.info();
    const spec = parseJson<InputSpec>(raw.metadata[INPUT_METADATA_KEY], INPUT_METADATA_KEY);
    const input = spec === undefined ? undefined : checkInputSpec(spec, `the packed model's ${INPUT_METADATA_KEY}`);
    if (input && input.channels !== raw.inChannels) throw rangeError(`the packed model's ${INPUT_METADATA_KEY} has ${input.channels} channel(s), the network ${raw.inChannels}`);
    if (input && input.channels !== 1 && input.channels !== 3) throw rangeError(`the packed model's ${INPUT_METADATA_KEY} has ${input.channels} channels: images decode to 1 or 3`);
    const classNames = parseJson<string[]>(raw.metadata[CLASS_NAMES_METADATA_KEY], CLASS_NAMES_METADATA_KEY);
    if (classNames !== undefined && (!Array.isArray(classNames) || classNames.some((n) => typeof n !== 'string'))) {
      throw rangeError(`the packed model's ${CLASS_NAMES_METADATA_KEY} is not a list of strings`);
    }
    this.info = Object.freeze({
      formatVersion: raw.formatVersion,
      inChannels: raw.inChannels,
      numClasses: raw.numClasses,
      width: raw.width,
      stem: raw.stem,
      doubleSkip: raw.doubleSkip,
      ...(input ? { input } : {}),
      ...(classNames ? { classNames } : {}),
      isa: raw.isa,
      metadata: { ...raw.metadata },
    });
    this.#threads = threads;
  }

  /** Reads and checks a packed model file (format, version, every tensor's shape). */
  static async load(path: string, options: LoadOptions = {}): Promise<InferenceModel> {
    if (typeof path !== 'string' || path === '') throw typeError('path must be a non-empty string');
    const threads = options.threads === undefined ? Math.min(1024, availableParallelism()) : checkInteger(options.threads, 'threads', 1, 1024);
    const handle = await inferNative().loadModel(path);
    try {
      return new InferenceModel(handle, threads);
    } catch (e) {
      handle.dispose();
      if (e instanceof Error) e.message = `${path}: ${e.message}`;
      throw e;
    }
  }

  /** Logits and the best classes of a batch of images (see {@link InferenceInput}). */
  async predict(input: InferenceInput, options: PredictOptions = {}): Promise<PredictResult> {
    const { numClasses, inChannels } = this.info;
    const topK = options.topK === undefined ? Math.min(5, numClasses) : checkInteger(options.topK, 'topK', 1, numClasses);
    const threads = options.threads === undefined ? this.#threads : checkInteger(options.threads, 'threads', 1, 1024);
    const chunk = options.batchSize === undefined ? 64 : checkInteger(options.batchSize, 'batchSize', 1);
    if (options.isa !== undefined && !(INFER_ISAS as readonly string[]).includes(options.isa)) {
      throw rangeError(`isa must be one of ${INFER_ISAS.map((i) => `'${i}'`).join(', ')}, got ${JSON.stringify(options.isa)}`);
    }
    if (typeof input !== 'object' || input === null || !Array.isArray(input.shape) || input.shape.length !== 4) {
      throw typeError('images must be { data, shape: [n, c, h, w] } (Float32Array) or { data, shape: [n, h, w, c] } (Uint8Array)');
    }
    input.shape.forEach((d, i) => checkInteger(d, `shape[${i}]`, 1));
    const isFloat = input.data instanceof Float32Array;
    if (!isFloat && !(input.data instanceof Uint8Array)) {
      throw typeError('images.data must be a Float32Array (normalised NCHW) or a Uint8Array (pixels, NHWC)');
    }
    const [n, d1, d2, d3] = input.shape;
    const [c, h, w] = isFloat ? [d1, d2, d3] : [d3, d1, d2];
    if (c !== inChannels) throw rangeError(`the model takes ${inChannels} channel(s), got shape [${input.shape.join(', ')}] (${isFloat ? 'NCHW' : 'NHWC'})`);
    const perImage = c * h * w;
    if (input.data.length !== n * perImage) {
      throw rangeError(`images.data has ${input.data.length} values, but shape [${input.shape.join(', ')}] needs ${n * perImage}`);
    }
    const floats = input.data instanceof Float32Array ? input.data : this.#normalize(input.data, n, h, w, c);
    const handle = this.handle;
    const logits = new Float32Array(n * numClasses);
    for (let start = 0; start < n; start += chunk) {
      const m = Math.min(chunk, n - start);
      const part = await handle.predict(floats.subarray(start * perImage, (start + m) * perImage), [m, c, h, w], {
        threads,
        ...(options.isa ? { isa: options.isa } : {}),
      });
      logits.set(part, start * numClasses);
    }
    return this.#scores(logits, n, topK);
  }

  /**
   * Decodes JPEG or PNG files (natively, libjpeg-turbo and libspng), sizes them as the training
   * run's evaluation did (resize of the shorter side and centre crop for photographs, see
   * {@link InputSpec.resize}; a plain resize for small images), normalises them as in training and
   * predicts. Needs the input spec the exporter stores.
   */
  async predictFiles(paths: readonly string[], options: PredictOptions = {}): Promise<PredictResult> {
    const spec = this.info.input;
    if (!spec) throw rangeError('this packed model has no input size and normalisation in its metadata: export it with them, or pass tensors to predict()');
    if (!Array.isArray(paths) || paths.length === 0) throw typeError('paths must be a non-empty array of file names');
    const { channels, height, width } = spec;
    const pixels = new Uint8Array(paths.length * height * width * channels);
    const native = inferNative();
    for (let i = 0; i < paths.length; i++) {
      const bytes = await fs.readFile(paths[i]!);
      let decoded: Uint8Array;
      try {
        decoded = await native.decodeImage(bytes, {
          width,
          height,
          channels: channels as 1 | 3,
          ...(spec.resize !== undefined ? { resize: spec.resize, dctScaling: spec.dctScaling ?? true } : {}),
        });
      } catch (e) {
        if (e instanceof Error) e.message = `${paths[i]}: ${e.message}`;
        throw e;
      }
      pixels.set(decoded, i * height * width * channels);
    }
    return this.predict({ data: pixels, shape: [paths.length, height, width, channels] }, options);
  }

  #normalize(pixels: Uint8Array, n: number, h: number, w: number, c: number): Float32Array {
    const spec = this.info.input;
    if (!spec) throw rangeError('uint8 images need the normalisation stored in the packed model, and this file has none: pass normalised Float32Array images');
    if (spec.mean.length !== c || spec.std.length !== c) throw rangeError(`the packed model's normalisation has ${spec.mean.length} channel(s), the images ${c}`);
    // A 256-entry table per channel with the training loader's float32 arithmetic (ToTensor then
    // Normalize: v/255 first), so uint8 images reach the network as the same floats they did in
    // training.
    const tables = spec.mean.map((m, ch) => normalizationTable(m, spec.std[ch]!));
    const out = new Float32Array(n * c * h * w);
    const plane = h * w;
    for (let b = 0; b < n; b++) {
      const src = b * plane * c;
      for (let ch = 0; ch < c; ch++) {
        const dst = (b * c + ch) * plane;
        const table = tables[ch]!;
        for (let p = 0; p < plane; p++) out[dst + p] = table[pixels[src + p * c + ch]!]!;
      }
    }
    return out;
  }

  #scores(logits: Float32Array, n: number, topK: number): PredictResult {
    const k = this.info.numClasses;
    const names = this.info.classNames;
    const classes = new Int32Array(n);
    const top: ClassScore[][] = [];
    for (let i = 0; i < n; i++) {
      const row = logits.subarray(i * k, (i + 1) * k);
      let best = 0;
      let max = row[0]!;
      for (let j = 1; j < k; j++) {
        if (row[j]! > max) {
          max = row[j]!;
          best = j;
        }
      }
      classes[i] = best;
      let sum = 0;
      for (let j = 0; j < k; j++) sum += Math.exp(row[j]! - max);
      // Best first, NaN last (a consistent order even then); the stable sort keeps the lower index
      // first on equal logits, as argmax does.
      const key = (j: number): number => (Number.isNaN(row[j]!) ? -Infinity : row[j]!);
      const order = Array.from({ length: k }, (_, j) => j).sort((a, b) => key(b) - key(a) || a - b);
      top.push(
        order.slice(0, topK).map((j) => ({
          classIndex: j,
          ...(names && names[j] !== undefined ? { label: names[j] } : {}),
          probability: Math.exp(row[j]! - max) / sum,
          logit: row[j]!,
        })),
      );
    }
    return { count: n, numClasses: k, logits, classes, top };
  }
}

/** Options of {@link benchBinaryConv}. */
export interface BinaryConvBenchOptions {
  inChannels: number;
  outChannels: number;
  height: number;
  width: number;
  stride: 1 | 2;
  batch: number;
  threads?: number;
  isa?: InferIsa;
  /** Calls timed. Default 10. */
  iterations?: number;
}

/**
 * Times the engine's binary 3x3 convolution (padding 1) on random bits of the given shape: seconds
 * per call, on the instruction set that ran. For benchmarks (bench/infer.ts, `bnn bench-infer`).
 */
export async function benchBinaryConv(o: BinaryConvBenchOptions): Promise<{ seconds: number; isa: string }> {
  const dims = {
    inChannels: checkInteger(o.inChannels, 'inChannels', 1, 8192),
    outChannels: checkInteger(o.outChannels, 'outChannels', 1, 8192),
    height: checkInteger(o.height, 'height', 1, 4096),
    width: checkInteger(o.width, 'width', 1, 4096),
    batch: checkInteger(o.batch, 'batch', 1, 4096),
  };
  if (o.stride !== 1 && o.stride !== 2) throw rangeError(`stride must be 1 or 2, got ${String(o.stride)}`);
  return inferNative().benchConv({
    ...dims,
    stride: o.stride,
    threads: o.threads === undefined ? 2 : checkInteger(o.threads, 'threads', 1, 1024),
    iterations: o.iterations === undefined ? 10 : checkInteger(o.iterations, 'iterations', 1),
    ...(o.isa !== undefined ? { isa: o.isa } : {}),
  });
}
