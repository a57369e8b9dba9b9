import type { Device } from './device.js';
import { checkDevice } from './device.js';
import type { ModelHandle, TensorHandle } from './addon-types.js';
import { bnnError, typeError } from './errors.js';
import { resolveModelConfig, type ModelConfig, type ResolvedModelConfig } from './model-config.js';
import { native } from './native.js';
import { summarize, type ModelSummary, type SummaryOptions } from './summary.js';
import { requireTensor, Tensor } from './tensor.js';
import { loadWeightsFile, saveWeightsFile } from './weights.js';

/** A state dict: tensors by PyTorch name (`layer1.0.conv.weight`, `bn1.running_mean`, ...). */
export type StateDict = ReadonlyMap<string, Tensor> | Readonly<Record<string, Tensor>>;

function wrapNamed(entries: [string, TensorHandle][]): Map<string, Tensor> {
  return new Map(entries.map(([name, handle]) => [name, new Tensor(handle)]));
}

/**
 * The recipe's binary ResNet-18 (LibTorch modules in native code). Parameter and buffer names are
 * PyTorch's, so {@link Model.stateDict} loads into a PyTorch module of the same structure.
 *
 * Tensors returned by `parameters()`, `stateDict()` etc. share storage with the model: disposing
 * them releases only the JS handle, never the model's weights.
 */
export class Model implements Disposable {
  #handle: ModelHandle | null;
  #busy = false;

  /** @internal Use {@link createModel}. */
  constructor(handle: ModelHandle) {
    this.#handle = handle;
  }

  /** @internal */
  get handle(): ModelHandle {
    if (this.#handle === null) throw bnnError('this model has been disposed and can no longer be used', 'BNN_DISPOSED');
    if (this.#busy) {
      throw bnnError('the model is busy with an async call (forwardAsync or a training step); await it first', 'BNN_INVALID_ARGUMENT');
    }
    return this.#handle;
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
   * @internal Runs native work that uses the model on a worker thread, refusing other calls on the
   * model until it settles (LibTorch modules are not safe to use from two threads at once).
   */
  async exclusive<T>(work: (handle: ModelHandle) => Promise<T>): Promise<T> {
    const handle = this.handle;
    this.#busy = true;
    try {
      return await work(handle);
    } finally {
      this.#busy = false;
    }
  }

  /** Training mode (BatchNorm uses and updates batch statistics). Returns the model. */
  train(on = true): this {
    if (typeof on !== 'boolean') throw typeError('train(on) takes a boolean');
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
    if (typeof on !== 'boolean') throw typeError('setBinaryWeights(on) takes a boolean');
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
    await saveWeightsFile(this, path);
  }

  /** Loads weights written by {@link saveWeights} (or by PyTorch), checking every name, shape and dtype. */
  async loadWeights(path: string): Promise<void> {
    await loadWeightsFile(this, path);
  }

  /** Per-layer precision, parameter and MAC counts, and model size, for an input of the given size. */
  summary(options: SummaryOptions = {}): ModelSummary {
    return summarize(this.config, options);
  }

  /** Frees the native module now. */
  dispose(): void {
    if (this.#handle === null) return;
    this.#handle.dispose();
    this.#handle = null;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  get isDisposed(): boolean {
    return this.#handle === null;
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
