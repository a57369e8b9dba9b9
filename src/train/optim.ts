import { checkBoolean, checkNumber } from '../core/check.js';
import { NativeResource } from '../core/handle.js';
import type { OptimizerHandle } from '../binding/addon.js';
import { rangeError, typeError } from '../errors.js';
import { Model } from '../nn/model.js';
import { keep, scope } from '../core/scope.js';
import { native } from '../binding/native.js';
import { requireTensor, Tensor } from '../core/tensor.js';

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
  checkNumber(r.lr, 'lr', { above: 0 });
  checkNumber(r.eps, 'eps', { above: 0 });
  checkNumber(r.weightDecay, 'weightDecay', { min: 0 });
  if (!Array.isArray(r.betas) || r.betas.length !== 2) throw typeError('betas must be [beta1, beta2]');
  r.betas.forEach((b, i) => checkNumber(b, `betas[${i}]`, { min: 0, below: 1 }));
  checkBoolean(r.decoupled, 'decoupled');
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
export class Adam extends NativeResource<OptimizerHandle> {
  readonly options: Readonly<Required<AdamOptions>>;

  constructor(params: Parameters | Model, options: AdamOptions = {}) {
    super('optimizer');
    this.options = Object.freeze(checkAdamOptions(options));
    const named: [string, Tensor][] =
      params instanceof Model ? scope(() => keep([...params.namedParameters()]))
      : params instanceof Map ? [...params]
      : Array.isArray(params) ? params.map((t, i) => [`param.${i}`, requireTensor(t, `params[${i}]`)])
      : (() => { throw typeError('Adam takes a Map of named parameters, an array of tensors or a Model'); })();
    try {
      this.attach(new (native().OptimizerHandle)(named.map(([n, t]) => [n, requireTensor(t, `parameter '${n}'`).handle]), this.options));
    } finally {
      if (params instanceof Model) for (const [, t] of named) t.dispose();
    }
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
    checkNumber(value, 'lr', { above: 0 });
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
}
