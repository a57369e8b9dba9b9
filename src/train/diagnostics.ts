// What binary networks need watched while they train, read cheaply from the weights once per
// epoch: how many latent weights changed sign (Larq's flip ratio), how many left the
// straight-through window |W| <= 1 (they get no gradient and cannot come back), and the
// distributions of latent weights and BatchNorm scales; plus the callbacks that write all of it,
// and the training curves, to TensorBoard. Activation statistics (share of |x| >= 1, sign balance,
// collapsed channels) come from one forward pass on a fixed batch (Model.activationStatistics).
import fs from 'node:fs';

import { checkBoolean, checkInteger } from '../core/check.js';
import { scope } from '../core/scope.js';
import { Tensor } from '../core/tensor.js';
import { rangeError, typeError } from '../errors.js';
import { readSafetensors, toTypedArray } from '../io/safetensors.js';
import type { TensorBoardWriter } from '../io/tensorboard.js';
import { Model, type ActivationStatistics, type StateDict } from '../nn/model.js';
import type { BatchEndInfo, EpochEndContext, EpochLog, TrainerCallbacks } from './types.js';

/** A tensor already on the host: its shape and float values (e.g. read from a safetensors file). */
export interface HostTensor {
  shape: readonly number[];
  data: ArrayLike<number>;
}

/** Where weights are read from: a model, a state dict of tensors, or host arrays by PyTorch name. */
export type WeightSource = Model | StateDict | ReadonlyMap<string, HostTensor>;

/** The weights diagnostics look at, copied to the host, by layer name (`layer1.0.conv`, `layer1.0.bn`). */
export interface WeightSnapshot {
  /** Latent (real-valued) weights of each binary convolution. */
  binaryConvs: Map<string, Float32Array>;
  /** Scale (gamma) of each BatchNorm. */
  batchNormScales: Map<string, Float32Array>;
}

// The recipe's binary convolutions are the blocks' `conv`s (`conv1`, `conv2` in classic two-conv
// blocks); the stem (`conv1` at the top level), the downsampling 1x1 convolutions and the
// classifier stay full precision (see nn/summary.ts), unless the model binarises its shortcuts
// (downsample 'binary'), whose conv has the full-precision one's name: a state dict cannot tell.
const BINARY_CONV = /^layer\d+\.\d+\.conv[12]?\.weight$/;
const SHORTCUT_CONV = /^layer\d+\.\d+\.downsample\.0\.weight$/;

/** Options of {@link snapshotWeights} and {@link WeightDiagnostics.measure}. */
export interface WeightSnapshotOptions {
  /**
   * The blocks' shortcut convolutions (`layer2.0.downsample.0`) are binary too, as in a model with
   * `downsample: 'binary'`. Default: from the model's config when the source is a {@link Model};
   * false for a state dict (which cannot tell), so give it for one of such a model.
   */
  binaryDownsample?: boolean;
}

/**
 * Copies the binary convolutions' latent weights and the BatchNorm scales to the host. A BatchNorm
 * is any `<name>.weight` with a `<name>.running_mean` beside it. Native tensors made here are freed
 * before it returns.
 */
export function snapshotWeights(source: WeightSource, options: WeightSnapshotOptions = {}): WeightSnapshot {
  const binaryDownsample = checkBoolean(options.binaryDownsample, 'binaryDownsample', source instanceof Model && source.config.downsample === 'binary');
  const isBinaryConv = (name: string): boolean => BINARY_CONV.test(name) || (binaryDownsample && SHORTCUT_CONV.test(name));
  return scope(() => {
    let entries: [string, Tensor | HostTensor][];
    if (source instanceof Model) entries = [...source.stateDict()];
    else if (source instanceof Map) entries = [...(source as ReadonlyMap<string, Tensor | HostTensor>)];
    else if (typeof source === 'object' && source !== null) entries = Object.entries(source as Readonly<Record<string, Tensor>>);
    else throw typeError('snapshotWeights takes a Model, a state dict (Map or object of tensors) or a Map of host tensors');
    const names = new Set(entries.map(([k]) => k));
    const host = (name: string, t: Tensor | HostTensor): Float32Array => {
      if (t instanceof Tensor) {
        const a = t.toTypedArray();
        return a instanceof Float32Array ? a : Float32Array.from(a as ArrayLike<number>);
      }
      if (typeof t !== 'object' || t === null || !Array.isArray(t.shape) || typeof t.data?.length !== 'number') throw typeError(`'${name}' is neither a Tensor nor { shape, data }`);
      return t.data instanceof Float32Array ? t.data : Float32Array.from(t.data);
    };
    const snapshot: WeightSnapshot = { binaryConvs: new Map(), batchNormScales: new Map() };
    for (const [name, t] of entries) {
      if (isBinaryConv(name)) snapshot.binaryConvs.set(name.slice(0, -'.weight'.length), host(name, t));
      else if (name.endsWith('.weight') && names.has(`${name.slice(0, -'.weight'.length)}.running_mean`)) {
        snapshot.batchNormScales.set(name.slice(0, -'.weight'.length), host(name, t));
      }
    }
    return snapshot;
  });
}

/** One binary convolution's figures from one measurement. */
export interface LayerDiagnostics {
  /** The layer's name (`layer2.1.conv`). */
  layer: string;
  /** Number of weights. */
  weights: number;
  /**
   * Share of weights whose sign (W >= 0 counts as +1, as the 1-bit weights do) changed since the
   * previous measurement: Larq's flip ratio. In stage 2 these are the 1-bit weights' flips, in
   * stage 1 the latent weights'. Undefined at the first measurement.
   */
  flipRatio?: number;
  /** Share of latent weights with |W| > 1, outside the straight-through window: they get no gradient. */
  outsideWindow: number;
}

/**
 * Per-layer weight diagnostics of binary convolutions, measured from the weights alone (no forward
 * pass): flip ratio since the previous {@link WeightDiagnostics.measure} and the share of latent
 * weights outside [-1, 1]. Keeps one byte per weight of the previous signs.
 *
 * @example
 * const diagnostics = new WeightDiagnostics();
 * // after each epoch:
 * for (const d of diagnostics.measure(model)) console.log(d.layer, d.flipRatio, d.outsideWindow);
 */
export class WeightDiagnostics {
  readonly #signs = new Map<string, Uint8Array>();

  /**
   * Measures every binary convolution of `source` (a model, state dict, or {@link snapshotWeights}
   * result; `options` apply to the first two).
   */
  measure(source: WeightSource | WeightSnapshot, options: WeightSnapshotOptions = {}): LayerDiagnostics[] {
    const snapshot = isSnapshot(source) ? source : snapshotWeights(source, options);
    const out: LayerDiagnostics[] = [];
    for (const [layer, w] of snapshot.binaryConvs) {
      let previous = this.#signs.get(layer);
      if (previous && previous.length !== w.length) previous = undefined; // another model: start over
      const signs = previous ?? new Uint8Array(w.length);
      let flips = 0;
      let outside = 0;
      for (let i = 0; i < w.length; i++) {
        const v = w[i]!;
        const s = v >= 0 ? 1 : 0;
        flips += s ^ signs[i]!;
        signs[i] = s;
        if (v > 1 || v < -1) outside++;
      }
      this.#signs.set(layer, signs);
      const n = w.length;
      out.push({ layer, weights: n, ...(previous && n > 0 ? { flipRatio: flips / n } : {}), outsideWindow: n > 0 ? outside / n : 0 });
    }
    return out;
  }

  /** Forgets the previous signs: the next measurement has no flip ratio. */
  reset(): void {
    this.#signs.clear();
  }
}

function isSnapshot(x: unknown): x is WeightSnapshot {
  return typeof x === 'object' && x !== null && !(x instanceof Map) && (x as WeightSnapshot).binaryConvs instanceof Map && (x as WeightSnapshot).batchNormScales instanceof Map;
}

/** Options of {@link tensorBoardCallbacks}. */
export interface TensorBoardCallbackOptions {
  /** Where everything is written; flushed at the end of every epoch. The caller closes it. */
  writer: TensorBoardWriter;
  /**
   * Where the weights are read at the end of each epoch, for histograms and diagnostics: the model,
   * or a function giving a {@link WeightSource} (undefined: skip this epoch). Without it, only
   * scalars are written.
   */
  weights?: Model | (() => WeightSource | undefined | Promise<WeightSource | undefined>);
  /**
   * The blocks' shortcut convolutions are binary (`downsample: 'binary'`), so they are watched too
   * ({@link WeightSnapshotOptions.binaryDownsample}). Default: from the model when `weights` gives
   * a {@link Model}; give it when `weights` gives a state dict.
   */
  binaryDownsample?: boolean;
  /** Training steps between `train/*` scalars. Default 50. */
  stepInterval?: number;
  /**
   * Training steps of the whole of stage 1, where stage 2's global steps start. Default: counted
   * while stage 1 runs (give it when a run resumes in stage 2).
   */
  stage1Steps?: number | (() => number);
  /** Multiplies the reported images/s (data-parallel: the number of processes). Default 1. */
  imagesPerSecondScale?: number;
  /** Text (markdown) shown in the Text tab under `config` when training starts, e.g. the run's config. */
  config?: string | (() => string | undefined);
  /** Per-epoch histograms of latent weights and BatchNorm scales. Default true. */
  histograms?: boolean;
  /**
   * A fixed batch of input images (on the model's device, normalised as in training) on which every
   * epoch's activation statistics are measured: {@link Model.activationStatistics} of the trained
   * model. The caller owns (and disposes) it. Without it, no activation figures are written.
   */
  activationBatch?: Tensor;
  /**
   * Called with each epoch's per-layer diagnostics once they are measured (epochs whose weights
   * could not be read are skipped), e.g. to keep them beside the run's metrics; `activations` when
   * that option gave some.
   */
  onDiagnostics?: (layers: LayerDiagnostics[], log: EpochLog, activations?: readonly ActivationStatistics[]) => void | Promise<void>;
}

/**
 * Trainer callbacks that write a run to TensorBoard, with one global step that keeps increasing
 * across both stages (step = training batches done):
 * - every `stepInterval` steps: `train/loss`, `train/accuracy` (running means of the epoch so far),
 *   `train/learning_rate`, `train/images_per_second`;
 * - every epoch, as Keras and TensorFlow.js split them: `train/epoch_loss`,
 *   `train/epoch_accuracy`, `train/epoch_learning_rate`, `train/epoch_seconds` (training and
 *   evaluation) and `test/loss`, `test/accuracy`; with `weights`, histograms `weights/<layer>`
 *   (binary convolutions' latent weights) and `batchnorm/<layer>/scale`, and scalars
 *   `diagnostics/<layer>/flip_ratio`, `diagnostics/<layer>/outside_window` and their
 *   weight-weighted means `diagnostics/all/...` ({@link WeightDiagnostics}); with `activationBatch`,
 *   `diagnostics/<layer>/activation_saturated` (share of |x| >= 1), `.../activation_positive`
 *   (share of +1), `.../constant_channels` and their value-weighted means under `diagnostics/all/`;
 * - the `config` text when training starts.
 */
export function tensorBoardCallbacks(options: TensorBoardCallbackOptions): TrainerCallbacks & { readonly diagnostics: WeightDiagnostics } {
  const { writer } = options;
  if (typeof writer !== 'object' || writer === null || typeof writer.addScalar !== 'function') throw typeError('writer must be a TensorBoardWriter');
  const interval = checkInteger(options.stepInterval ?? 50, 'stepInterval', 1);
  const scale = options.imagesPerSecondScale ?? 1;
  if (typeof scale !== 'number' || !(scale > 0)) throw rangeError(`imagesPerSecondScale must be positive, got ${scale}`);
  const histograms = options.histograms ?? true;
  const diagnostics = new WeightDiagnostics();
  const batches: Record<1 | 2, number> = { 1: 0, 2: 0 };
  let stage1Epochs = 0;
  let configWritten = false;
  const stage1Steps = (): number => {
    const given = typeof options.stage1Steps === 'function' ? options.stage1Steps() : options.stage1Steps;
    return given ?? stage1Epochs * batches[1];
  };
  const globalStep = (stage: 1 | 2, epoch: number, batch: number): number => (stage === 2 ? stage1Steps() : 0) + epoch * batches[stage] + batch;
  const weightsOf = async (): Promise<WeightSource | undefined> => {
    const w = options.weights;
    return w === undefined ? undefined : w instanceof Model ? w : await w();
  };

  return {
    diagnostics,
    onTrainBegin({ stage, epochs }) {
      if (stage === 1) stage1Epochs = epochs;
      if (!configWritten && options.config !== undefined) {
        const text = typeof options.config === 'function' ? options.config() : options.config;
        if (text !== undefined) writer.addText('config', text, stage === 1 ? 0 : stage1Steps());
        configWritten = true;
      }
    },
    onBatchEnd(b: BatchEndInfo) {
      batches[b.stage] = b.batches;
      const step = globalStep(b.stage, b.epoch, b.batch);
      if (step % interval !== 0 || Number.isNaN(b.loss)) return;
      writer.addScalar('train/loss', b.loss, step);
      writer.addScalar('train/accuracy', b.accuracy, step);
      writer.addScalar('train/learning_rate', b.lr, step);
      writer.addScalar('train/images_per_second', b.imagesPerSecond * scale, step);
    },
    async onEpochEnd(log: EpochLog, context: EpochEndContext) {
      const step = globalStep(log.stage, log.epoch + 1, 0);
      writer.addScalar('train/epoch_loss', log.trainLoss, step);
      writer.addScalar('train/epoch_accuracy', log.trainAccuracy, step);
      if (log.testLoss !== undefined) writer.addScalar('test/loss', log.testLoss, step);
      if (log.testAccuracy !== undefined) writer.addScalar('test/accuracy', log.testAccuracy, step);
      writer.addScalar('train/epoch_learning_rate', log.lr, step);
      writer.addScalar('train/epoch_seconds', log.seconds, step);
      if (log.dataWaitSeconds !== undefined) writer.addScalar('train/epoch_data_wait_seconds', log.dataWaitSeconds, step);
      if (options.activationBatch && !(context?.model instanceof Model)) {
        throw typeError('activationBatch needs the model: call onEpochEnd(log, { model }) as the Trainer does');
      }
      const activations = options.activationBatch ? await context.model.activationStatistics(options.activationBatch) : undefined;
      if (activations !== undefined && activations.length > 0) {
        let values = 0;
        let saturated = 0;
        let positive = 0;
        let channels = 0;
        let constant = 0;
        for (const a of activations) {
          writer.addScalar(`diagnostics/${a.layer}/activation_saturated`, a.saturated, step);
          writer.addScalar(`diagnostics/${a.layer}/activation_positive`, a.positive, step);
          writer.addScalar(`diagnostics/${a.layer}/constant_channels`, a.constantChannels, step);
          values += a.values;
          saturated += a.saturated * a.values;
          positive += a.positive * a.values;
          channels += a.channels;
          constant += a.constantChannels * a.channels;
        }
        if (values > 0) {
          writer.addScalar('diagnostics/all/activation_saturated', saturated / values, step);
          writer.addScalar('diagnostics/all/activation_positive', positive / values, step);
        }
        if (channels > 0) writer.addScalar('diagnostics/all/constant_channels', constant / channels, step);
      }
      const source = await weightsOf();
      if (source !== undefined) {
        const snapshot = snapshotWeights(source, options.binaryDownsample === undefined ? {} : { binaryDownsample: options.binaryDownsample });
        if (histograms) {
          for (const [layer, w] of snapshot.binaryConvs) writer.addHistogram(`weights/${layer}`, w, step);
          for (const [layer, g] of snapshot.batchNormScales) writer.addHistogram(`batchnorm/${layer}/scale`, g, step);
        }
        let flips = 0;
        let flipWeights = 0;
        let outside = 0;
        let all = 0;
        const measured = diagnostics.measure(snapshot);
        for (const d of measured) {
          writer.addScalar(`diagnostics/${d.layer}/outside_window`, d.outsideWindow, step);
          outside += d.outsideWindow * d.weights;
          all += d.weights;
          if (d.flipRatio !== undefined) {
            writer.addScalar(`diagnostics/${d.layer}/flip_ratio`, d.flipRatio, step);
            flips += d.flipRatio * d.weights;
            flipWeights += d.weights;
          }
        }
        if (all > 0) writer.addScalar('diagnostics/all/outside_window', outside / all, step);
        if (flipWeights > 0) writer.addScalar('diagnostics/all/flip_ratio', flips / flipWeights, step);
        writer.flush();
        await options.onDiagnostics?.(measured, log, activations);
        return;
      }
      writer.flush();
    },
  };
}

/**
 * The model tensors of a bnn-torch checkpoint file (`checkpoint.safetensors`, names `model/...`) as
 * host arrays, for {@link snapshotWeights}; undefined when the file does not exist. Reads the file
 * without LibTorch.
 */
export async function checkpointWeights(path: string): Promise<Map<string, HostTensor> | undefined> {
  if (!fs.existsSync(path)) return undefined;
  const file = await readSafetensors(path);
  const out = new Map<string, HostTensor>();
  for (const [name, t] of file.tensors) {
    if (name.startsWith('model/') && t.dtype === 'F32') out.set(name.slice(6), { shape: t.shape, data: toTypedArray(t) as Float32Array });
  }
  return out;
}
