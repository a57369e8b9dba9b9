import type { OptimizerHandle } from './addon-types.js';
import { bnnError, rangeError, typeError } from './errors.js';
import { Model } from './model.js';
import { keep, scope } from './scope.js';
import { native } from './native.js';
import { requireTensor, Tensor } from './tensor.js';

/** Parameter kinds that can be left out of weight decay. */
export type NoDecayKind = 'bn' | 'prelu' | 'bias';

/** Options of {@link Adam}. */
export interface AdamOptions {
  /** Learning rate. Default 1e-3 (the recipe's stage 1). */
  lr?: number;
  /** Default [0.9, 0.999]. */
  betas?: [number, number];
  /** Default 1e-8. */
  eps?: number;
  /**
   * Weight decay. Coupled L2 as in `torch.optim.Adam(weight_decay=...)` (the recipe: 1e-5 in stage
   * 1, 0 in stage 2), or decoupled with `decoupled: true` (AdamW). Default 0.
   */
  weightDecay?: number;
  /** Use AdamW's decoupled weight decay. Default false. */
  decoupled?: boolean;
  /** Leave weight decay off these parameters (BatchNorm, PReLU, biases). Default: decay on all, as the recipe. */
  noDecayOn?: NoDecayKind[];
}

function checkAdamOptions(o: AdamOptions): Required<AdamOptions> {
  if (typeof o !== 'object' || o === null) throw typeError('Adam options must be an object');
  const r = { lr: 1e-3, betas: [0.9, 0.999] as [number, number], eps: 1e-8, weightDecay: 0, decoupled: false, noDecayOn: [] as NoDecayKind[], ...o };
  const num = (v: unknown, name: string, ok: (n: number) => boolean, rule: string): void => {
    if (typeof v !== 'number' || Number.isNaN(v)) throw typeError(`${name} must be a number, got ${JSON.stringify(v)}`);
    if (!ok(v)) throw rangeError(`${name} must be ${rule}, got ${v}`);
  };
  num(r.lr, 'lr', (n) => n > 0 && Number.isFinite(n), 'a positive number');
  num(r.eps, 'eps', (n) => n > 0, 'positive');
  num(r.weightDecay, 'weightDecay', (n) => n >= 0 && Number.isFinite(n), '>= 0');
  if (!Array.isArray(r.betas) || r.betas.length !== 2) throw typeError('betas must be [beta1, beta2]');
  r.betas.forEach((b, i) => num(b, `betas[${i}]`, (n) => n >= 0 && n < 1, 'in [0, 1)'));
  if (typeof r.decoupled !== 'boolean') throw typeError('decoupled must be a boolean');
  if (!Array.isArray(r.noDecayOn)) throw typeError("noDecayOn must be an array of 'bn', 'prelu', 'bias'");
  for (const k of r.noDecayOn) if (k !== 'bn' && k !== 'prelu' && k !== 'bias') throw rangeError(`noDecayOn: unknown kind '${String(k)}' (use bn, prelu, bias)`);
  return r;
}

/** Parameters to optimize: a model's `namedParameters()` (names enable `noDecayOn`), or plain tensors. */
export type Parameters = ReadonlyMap<string, Tensor> | readonly Tensor[];

/**
 * LibTorch's Adam (AdamW with `decoupled: true`), as `torch.optim.Adam(params, ...)`. With
 * `noDecayOn`, the matching parameters (by PyTorch name) form a second group without weight decay.
 *
 * @example
 * const adam = new Adam(model.namedParameters(), { lr: 1e-3, weightDecay: 1e-5 });
 */
export class Adam implements Disposable {
  #handle: OptimizerHandle | null;
  readonly options: Readonly<Required<AdamOptions>>;

  constructor(params: Parameters | Model, options: AdamOptions = {}) {
    this.options = Object.freeze(checkAdamOptions(options));
    const named: [string, Tensor][] =
      params instanceof Model ? scope(() => keep([...params.namedParameters()]))
      : params instanceof Map ? [...params]
      : Array.isArray(params) ? params.map((t, i) => [`param.${i}`, requireTensor(t, `params[${i}]`)])
      : (() => { throw typeError('Adam takes a Map of named parameters, an array of tensors or a Model'); })();
    try {
      this.#handle = new (native().OptimizerHandle)(named.map(([n, t]) => [n, requireTensor(t, `parameter '${n}'`).handle]), this.options);
    } finally {
      if (params instanceof Model) for (const [, t] of named) t.dispose();
    }
  }

  /** @internal */
  get handle(): OptimizerHandle {
    if (this.#handle === null) throw bnnError('this optimizer has been disposed and can no longer be used', 'BNN_DISPOSED');
    return this.#handle;
  }

  /** Applies one update from the accumulated gradients. */
  step(): void {
    this.handle.step();
  }

  /** Clears the gradients (sets them to none, as PyTorch's default). */
  zeroGrad(): void {
    this.handle.zeroGrad();
  }

  /** The learning rate of every group. */
  get lr(): number {
    return this.handle.getLr();
  }

  set lr(value: number) {
    if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value)) throw rangeError(`lr must be a positive number, got ${value}`);
    this.handle.setLr(value);
  }

  /** Names of the parameters trained without weight decay. */
  get noDecayParameters(): string[] {
    return this.handle.noDecayNames();
  }

  /** The per-parameter state (`<name>.step`, `.exp_avg`, `.exp_avg_sq`), copies, for checkpoints. */
  stateDict(): Map<string, Tensor> {
    return new Map(this.handle.state().map(([k, h]) => [k, new Tensor(h)]));
  }

  /** Restores a state from {@link stateDict} (an empty map resets it). */
  loadStateDict(state: ReadonlyMap<string, Tensor>): void {
    this.handle.loadState([...state].map(([k, t]) => [k, t.handle]));
  }

  dispose(): void {
    this.#handle?.dispose();
    this.#handle = null;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
