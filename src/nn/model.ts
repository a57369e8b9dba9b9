import type { Device } from '../core/device.js';
import { checkBoolean, checkDevice } from '../core/check.js';
import { ExclusiveResource } from '../core/handle.js';
import type { ModelHandle, TensorHandle } from '../binding/addon.js';
import { bnnError, isBnnError, typeError } from '../errors.js';
import { resolveModelConfig, type ModelConfig, type ResolvedModelConfig } from './model-config.js';
import { native } from '../binding/native.js';
import { summarize, type ModelSummary, type SummaryOptions } from './summary.js';
import { requireTensor, Tensor } from '../core/tensor.js';
import { readStateFile, writeStateFile } from '../io/state-file.js';
import { scope } from '../core/scope.js';
import { exportPacked, type ExportPackedOptions, type ExportPackedResult } from '../infer/export.js';
import * as fsp from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Metadata key of a weights file holding the model config as JSON, so the file says what it fits. */
export const CONFIG_METADATA_KEY = 'bnn_torch.config';

/** A state dict: tensors by PyTorch name (`layer1.0.conv.weight`, `bn1.running_mean`, ...). */
export type StateDict = ReadonlyMap<string, Tensor> | Readonly<Record<string, Tensor>>;

function wrapNamed(entries: [string, TensorHandle][]): Map<string, Tensor> {
  return new Map(entries.map(([name, handle]) => [name, new Tensor(handle)]));
}

/** One sign activation's input on a batch: see {@link Model.activationStatistics}. */
export interface ActivationStatistics {
  /**
   * The binary convolution the sign feeds, e.g. `layer1.0.conv` (the name its weights have, less
   * `.weight`); with `downsample: 'binary'` also the shortcuts' `layer2.0.downsample.0`, whose sign
   * sees the block's input.
   */
  layer: string;
  /** Elements signed (batch × channels × height × width). */
  values: number;
  /**
   * Share with |x| >= 1: outside the straight-through window, where the clipped gradient is zero,
   * so nothing before this point learns from them.
   */
  saturated: number;
  /** Share with x >= 0, which the sign maps to +1; near 0 or 1 the layer passes almost no information. */
  positive: number;
  /** Channels of the input. */
  channels: number;
  /** Share of channels with the same sign at every position of the batch: collapsed channels. */
  constantChannels: number;
}

/**
 * The recipe's binary ResNet-18 (LibTorch modules in native code). Parameter and buffer names are
 * PyTorch's, so {@link Model.stateDict} loads into a PyTorch module of the same structure.
 *
 * Tensors returned by `parameters()`, `stateDict()` etc. share storage with the model: disposing
 * them releases only the JS handle, never the model's weights.
 */
export class Model extends ExclusiveResource<ModelHandle> {
  /** @internal Use {@link createModel}. */
  constructor(handle: ModelHandle) {
    super('model', 'the model is busy with an async call (forwardAsync or a training step); await it first', handle);
  }

  /** The full configuration, with the current binary-weights state. */
  get config(): ResolvedModelConfig {
    return this.handle.config();
  }

  /** Runs the network: input [N, C, H, W] float32 on the model's device, output logits [N, numClasses]. */
  forward(x: Tensor): Tensor {
    return new Tensor(this.handle.forward(requireTensor(x, 'input').handle));
  }

  /** {@link forward} on a worker thread. The model cannot be used by other calls until it settles. */
  async forwardAsync(x: Tensor): Promise<Tensor> {
    const input = requireTensor(x, 'input').handle;
    return new Tensor(await this.exclusive((h) => h.forwardAsync(input)));
  }

  /**
   * Statistics of the input of every sign activation on one batch, in network order: what binary
   * networks need watched and float networks do not. BatchNorm normalises with the batch's own
   * statistics, as the signs see them in training; the running statistics, the train/eval mode and
   * SyncBatchNorm are left untouched and no gradient is recorded, so it can run between training
   * steps. Empty for a model without binary activations. Runs on a worker thread.
   *
   * @example
   * for (const a of await model.activationStatistics(batch.images)) {
   *   console.log(a.layer, a.saturated, a.positive, a.constantChannels);
   * }
   */
  async activationStatistics(input: Tensor): Promise<ActivationStatistics[]> {
    const x = requireTensor(input, 'input').handle;
    const raw = await this.exclusive((h) => h.activationStatistics(x));
    return raw.map((r) => ({
      layer: r.layer,
      values: r.values,
      saturated: r.values > 0 ? r.saturated / r.values : 0,
      positive: r.values > 0 ? r.positive / r.values : 0,
      channels: r.channels,
      constantChannels: r.channels > 0 ? r.constantChannels / r.channels : 0,
    }));
  }

  /** Training mode (BatchNorm uses and updates batch statistics). Returns the model. */
  train(on = true): this {
    checkBoolean(on, 'train(on)');
    this.handle.train(on);
    return this;
  }

  /** Evaluation mode (BatchNorm uses running statistics). Returns the model. */
  eval(): this {
    return this.train(false);
  }

  /** True in training mode. */
  get training(): boolean {
    return this.handle.isTraining();
  }

  /** Moves every parameter and buffer to `device`, in place. Returns the model. */
  to(device: Device): this {
    this.handle.to(checkDevice(device));
    return this;
  }

  /** Where the model's weights live. */
  get device(): Device {
    return this.handle.device() as Device;
  }

  /** Switches the binary convolutions to 1-bit weights (stage 2) or back, keeping the latent weights. */
  setBinaryWeights(on: boolean): this {
    checkBoolean(on, 'setBinaryWeights(on)');
    this.handle.setBinaryWeights(on);
    return this;
  }

  /** True when the binary convolutions use 1-bit weights. */
  get binaryWeights(): boolean {
    return this.handle.config().binaryWeights;
  }

  /** Trainable parameters, in registration order (the order PyTorch's `parameters()` gives). */
  parameters(): Tensor[] {
    return [...this.namedParameters().values()];
  }

  /** Trainable parameters by name. */
  namedParameters(): Map<string, Tensor> {
    return wrapNamed(this.handle.namedParameters());
  }

  /** BatchNorm running statistics and counters by name. */
  buffers(): Map<string, Tensor> {
    return wrapNamed(this.handle.namedBuffers());
  }

  /** Parameters and buffers by name, detached, sharing storage with the model. */
  stateDict(): Map<string, Tensor> {
    const state = new Map<string, Tensor>();
    for (const [name, t] of this.namedParameters()) {
      state.set(name, t.detach());
      t.dispose();
    }
    for (const [name, t] of this.buffers()) state.set(name, t);
    return state;
  }

  /**
   * Copies a state dict into the model. Strict: every name must be present with the same shape and
   * dtype, and no extra names are allowed; all problems are reported in one error and nothing is
   * changed unless everything matches.
   */
  loadStateDict(state: StateDict): void {
    if (typeof state !== 'object' || state === null) throw typeError('loadStateDict takes a Map or object of tensors');
    const entries = state instanceof Map ? [...state.entries()] : Object.entries(state);
    this.handle.loadState(entries.map(([name, t]) => [name, requireTensor(t, `state['${name}']`).handle]));
  }

  /** Writes the state dict to a safetensors file (atomically), loadable by `safetensors.torch.load_file`. */
  async saveWeights(path: string): Promise<void> {
    await scope(() => writeStateFile(path, this.stateDict(), { format: 'pt', [CONFIG_METADATA_KEY]: JSON.stringify(this.config) }));
  }

  /**
   * Writes the packed 1-bit form of this network for {@link InferenceModel} (the XNOR-popcount
   * engine, no LibTorch needed to run it): bit-packed weights, BatchNorm folded into thresholds.
   * The network must have 1-bit weights (stage 2) unless `allowFloatWeights` is set.
   */
  async exportPacked(path: string, options: ExportPackedOptions = {}): Promise<ExportPackedResult> {
    const dir = await fsp.mkdtemp(join(tmpdir(), 'bnn-export-'));
    try {
      const weights = join(dir, 'weights.safetensors');
      await this.saveWeights(weights);
      return await exportPacked(weights, path, options);
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  }

  /** Loads weights written by {@link saveWeights} (or by PyTorch), checking every name, shape and dtype. */
  async loadWeights(path: string): Promise<void> {
    const { tensors } = await readStateFile(path, this.device);
    try {
      this.loadStateDict(tensors);
    } catch (e) {
      // The native check lists every problem, one per line; say which file they are about.
      if (e instanceof Error && isBnnError(e) && e.code === 'BNN_INVALID_ARGUMENT') {
        const problems = e.message.split('\n  - ').slice(1);
        throw Object.assign(bnnError(`${path}: the weights do not fit this model: ${e.message}`, 'BNN_INVALID_ARGUMENT'), { problems });
      }
      throw e;
    } finally {
      tensors.forEach((t) => t.dispose());
    }
  }

  /** Per-layer precision, parameter and MAC counts, and model size, for an input of the given size. */
  summary(options: SummaryOptions = {}): ModelSummary {
    return summarize(this.config, options);
  }
}

/**
 * Builds the recipe's network: a double-skip binary ResNet-18 (by default), with binary
 * activations, full-precision downsampling, stem and classifier.
 *
 * @example
 * const model = createModel({ numClasses: 10, inChannels: 1, width: 16 });
 */
export function createModel(config: ModelConfig = {}): Model {
  const resolved = resolveModelConfig(config);
  return new Model(new (native().ModelHandle)(resolved));
}
