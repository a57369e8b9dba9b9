import { checkBoolean, checkNumber } from '../core/check.js';
import { ExclusiveResource } from '../core/handle.js';
import type { NativeOptimizerOptions, OptimizerHandle } from '../binding/addon.js';
import { rangeError, typeError } from '../errors.js';
import { Model } from '../nn/model.js';
import { keep, scope } from '../core/scope.js';
import { native } from '../binding/native.js';
import { requireTensor, Tensor } from '../core/tensor.js';

/** Parameter kinds that can be left out of weight decay. */
export type NoDecayKind = 'bn' | 'prelu' | 'bias';

/** The optimizers a stage can train with: 'adam' (the recipe) or 'sgd' (with momentum). */
export type OptimizerKind = 'adam' | 'sgd';

/** The optimizer kinds, for validation and CLI choices. */
export const OPTIMIZER_KINDS: readonly OptimizerKind[] = Object.freeze(['adam', 'sgd']);

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
  /**
   * Leave weight decay off these parameters (BatchNorm, PReLU, biases; `'bias'` includes RSign's
   * learned thresholds). Default: decay on all, as the recipe.
   */
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
  checkNoDecayOn(r.noDecayOn);
  return r;
}

function checkNoDecayOn(kinds: unknown): void {
  if (!Array.isArray(kinds)) throw typeError("noDecayOn must be an array of 'bn', 'prelu', 'bias'");
  for (const k of kinds) if (k !== 'bn' && k !== 'prelu' && k !== 'bias') throw rangeError(`noDecayOn: unknown kind '${String(k)}' (use bn, prelu, bias)`);
}

/** Options of {@link SGD}. */
export interface SGDOptions {
  /** Learning rate. Default 1e-3 (torch.optim.SGD's). */
  lr?: number;
  /**
   * Momentum factor in [0, 1). Default 0.9, the usual choice for training a ResNet with SGD
   * (torch.optim.SGD's default is 0: give 0 for plain SGD, which keeps no state).
   */
  momentum?: number;
  /** Nesterov momentum (needs momentum > 0). Default false. */
  nesterov?: boolean;
  /** Weight decay, coupled (added to the gradient) as `torch.optim.SGD(weight_decay=...)`. Default 0. */
  weightDecay?: number;
  /** Leave weight decay off these parameters (BatchNorm, PReLU, biases). Default: decay on all. */
  noDecayOn?: NoDecayKind[];
}

function checkSGDOptions(o: SGDOptions): Required<SGDOptions> {
  if (typeof o !== 'object' || o === null) throw typeError('SGD options must be an object');
  const r = { lr: 1e-3, momentum: 0.9, nesterov: false, weightDecay: 0, noDecayOn: [] as NoDecayKind[], ...o };
  checkNumber(r.lr, 'lr', { above: 0 });
  checkNumber(r.momentum, 'momentum', { min: 0, below: 1 });
  checkBoolean(r.nesterov, 'nesterov');
  if (r.nesterov && r.momentum === 0) throw rangeError('nesterov needs a momentum > 0');
  checkNumber(r.weightDecay, 'weightDecay', { min: 0 });
  checkNoDecayOn(r.noDecayOn);
  return r;
}

/** Parameters to optimize: a model's `namedParameters()` (names enable `noDecayOn`), or plain tensors. */
export type Parameters = ReadonlyMap<string, Tensor> | readonly Tensor[];

/**
 * What {@link Adam} and {@link SGD} share: a native optimizer over named parameters, with the
 * learning rate, the update, and a state dict for exact checkpoints. The training step and the
 * {@link Trainer} take either.
 */
export abstract class Optimizer extends ExclusiveResource<OptimizerHandle> {
  /** Which optimizer this is, as the stage option `optimizer` names it. */
  abstract readonly kind: OptimizerKind;

  protected constructor(params: Parameters | Model, options: NativeOptimizerOptions, name: string) {
    super('optimizer', 'the optimizer is busy with a training step (its state, learning rate and loss scale are in use on a worker thread); await it first');
    const named: [string, Tensor][] =
      params instanceof Model ? scope(() => keep([...params.namedParameters()]))
      : params instanceof Map ? [...params]
      : Array.isArray(params) ? params.map((t, i) => [`param.${i}`, requireTensor(t, `params[${i}]`)])
      : (() => { throw typeError(`${name} takes a Map of named parameters, an array of tensors or a Model`); })();
    try {
      this.attach(new (native().OptimizerHandle)(named.map(([n, t]) => [n, requireTensor(t, `parameter '${n}'`).handle]), options));
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

  /**
   * The per-parameter state, copies, for checkpoints, under PyTorch's names: Adam's
   * `<name>.step`, `.exp_avg`, `.exp_avg_sq`; SGD's `<name>.momentum_buffer` (none without momentum).
   * After a float16 step, or after loading a state that had one, it also holds the dynamic loss
   * scale that goes with this optimizer, under `torch.amp.GradScaler`'s names:
   * `grad_scaler.scale` (float32) and `grad_scaler._growth_tracker` (int32), so a resumed float16
   * run carries on with the scale it had. These two keys belong to no parameter.
   */
  stateDict(): Map<string, Tensor> {
    return new Map(this.handle.state().map(([k, h]) => [k, new Tensor(h)]));
  }

  /**
   * Restores a state from {@link stateDict} (an empty map resets it). The other kind's state
   * (Adam's into SGD or back) is refused with BNN_INVALID_ARGUMENT, as is a loss-scaler entry
   * that is not one positive finite scale and one step count.
   */
  loadStateDict(state: ReadonlyMap<string, Tensor>): void {
    this.handle.loadState([...state].map(([k, t]) => [k, t.handle]));
  }
}

/**
 * LibTorch's Adam (AdamW with `decoupled: true`), as `torch.optim.Adam(params, ...)`. With
 * `noDecayOn`, the matching parameters (by PyTorch name) form a second group without weight decay.
 *
 * @example
 * const adam = new Adam(model.namedParameters(), { lr: 1e-3, weightDecay: 1e-5 });
 */
export class Adam extends Optimizer {
  readonly kind = 'adam';
  readonly options: Readonly<Required<AdamOptions>>;

  constructor(params: Parameters | Model, options: AdamOptions = {}) {
    const checked = Object.freeze(checkAdamOptions(options));
    super(params, { kind: 'adam', ...checked }, 'Adam');
    this.options = checked;
  }
}

/**
 * LibTorch's SGD with momentum, as `torch.optim.SGD(params, lr, momentum, dampening=0,
 * weight_decay, nesterov)`: the tricks ablation's alternative to Adam. Weight decay is coupled and
 * `noDecayOn` makes a second group without it, as for {@link Adam}. On CUDA (and on the CPU under
 * the sync-free step) the update is ATen's fused SGD, as `torch.optim.SGD(fused=True)`.
 *
 * @example
 * const sgd = new SGD(model.namedParameters(), { lr: 0.1, momentum: 0.9, weightDecay: 5e-4 });
 */
export class SGD extends Optimizer {
  readonly kind = 'sgd';
  readonly options: Readonly<Required<SGDOptions>>;

  constructor(params: Parameters | Model, options: SGDOptions = {}) {
    const checked = Object.freeze(checkSGDOptions(options));
    super(params, { kind: 'sgd', ...checked }, 'SGD');
    this.options = checked;
  }
}
