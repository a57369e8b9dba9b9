import { checkBoolean, checkInteger, checkOneOf } from '../core/check.js';
import { rangeError, typeError } from '../errors.js';

/** The network the recipe trains. Only ResNet-18 for now; the field keeps files forward-compatible. */
export type Architecture = 'resnet18';

/** How the first layer treats the image. */
export type Stem = 'small' | 'imagenet';

/**
 * Order of the parts of a binary block (see {@link ModelConfig.blockOrder}):
 * `'bn-sign-conv'` (the recipe) or `'sign-conv-bn'` (Bi-Real Net, Liu et al. 2018).
 */
export type BlockOrder = 'bn-sign-conv' | 'sign-conv-bn';

/** What follows a block's residual add (see {@link ModelConfig.blockActivation}). */
export type BlockActivation = 'prelu' | 'relu' | 'none' | 'rprelu';

/**
 * The gradient the sign activations pass back (see {@link ModelConfig.signGradient}): `'ste'` (the
 * recipe's clipped straight-through estimator) or `'approx-sign'` (Bi-Real Net, Liu et al. 2018).
 */
export type SignGradient = 'ste' | 'approx-sign';

/** The shortcut of the blocks that change shape (see {@link ModelConfig.downsample}). */
export type Downsample = 'avgpool' | 'strided' | 'binary';

/** The values each structural switch takes, the recipe's first. */
export const BLOCK_ORDERS: readonly BlockOrder[] = Object.freeze(['bn-sign-conv', 'sign-conv-bn'] as const);
/** @see {@link BLOCK_ORDERS} */
export const BLOCK_ACTIVATIONS: readonly BlockActivation[] = Object.freeze(['prelu', 'relu', 'none', 'rprelu'] as const);
/** @see {@link BLOCK_ORDERS} */
export const SIGN_GRADIENTS: readonly SignGradient[] = Object.freeze(['ste', 'approx-sign'] as const);
/** @see {@link BLOCK_ORDERS} */
export const DOWNSAMPLES: readonly Downsample[] = Object.freeze(['avgpool', 'strided', 'binary'] as const);

/** Options of {@link createModel}. Every field has the default shown. */
export interface ModelConfig {
  /** Network family. Default `'resnet18'`. */
  arch?: Architecture;
  /** Output classes. Default 10. */
  numClasses?: number;
  /** Input channels (1 for Fashion-MNIST, 3 for CIFAR). Default 3. */
  inChannels?: number;
  /** Base channel count (64 in ResNet-18); layers use 1x, 2x, 4x, 8x. Default 64. */
  width?: number;
  /** `'small'`: 3x3 stride-1 conv for 28–32 px inputs; `'imagenet'`: 7x7 stride-2 conv + max-pool. Default `'small'`. */
  stem?: Stem;
  /** Split each ResNet basic block into two single-conv blocks with their own shortcut (the recipe). Default true. */
  doubleSkip?: boolean;
  /** Sign activations before each binary conv; false uses ReLU (full-precision baseline). Default true. */
  binaryActivations?: boolean;
  /** 1-bit weights (stage 2). Can be switched later with `setBinaryWeights`. Default false. */
  binaryWeights?: boolean;
  /** BatchNorm running-stat momentum, PyTorch's convention. Default 0.1. */
  bnMomentum?: number;
  /**
   * Order inside each binary block. `'bn-sign-conv'` (the recipe): BatchNorm -> sign -> 3x3 binary
   * conv -> + shortcut -> activation. `'sign-conv-bn'`: the order of Bi-Real Net (Liu et al. 2018),
   * sign -> 3x3 binary conv -> BatchNorm -> + shortcut -> activation, so the sign sees the previous
   * block's real-valued output and the BatchNorm has the conv's output channels. The packed export
   * supports the recipe's order only. Default `'bn-sign-conv'`.
   */
  blockOrder?: BlockOrder;
  /**
   * What follows each block's residual add (in classic blocks, also the first conv):
   * `'prelu'` (the recipe; learnable per-channel slopes, as in ReActNet, Liu et al. 2020, and
   * Real-to-Binary Net, Martinez et al. 2020), `'relu'`, `'none'` (the sum itself, as in Bi-Real
   * Net) or `'rprelu'` (ReActNet's RPReLU, an addition: y = PReLU(x - γ[c]) + ζ[c] with learnable
   * per-channel shifts initialised to 0, so it starts as the recipe's PReLU). `'prelu'` has the
   * parameters `prelu.weight` (slopes); `'rprelu'` has `prelu.shift_in` (γ), `prelu.weight` and
   * `prelu.shift_out` (ζ) (in classic blocks `prelu1.*`, `prelu2.*`). The packed export supports
   * `'prelu'` only. Default `'prelu'`.
   */
  blockActivation?: BlockActivation;
  /**
   * The shortcut of the blocks that change shape (the first block of layers 2–4). `'avgpool'` (the
   * recipe): full-precision 1x1 conv (stride 1) -> BatchNorm -> 2x2 average pool. `'strided'`:
   * ResNet's projection (He et al. 2016), a full-precision 1x1 conv with stride 2 -> BatchNorm.
   * `'binary'`: the shortcut binarised too, sign -> 1x1 binary conv (1-bit weights in stage 2) ->
   * BatchNorm -> 2x2 average pool. The names stay `downsample.0` (conv), `downsample.1`
   * (BatchNorm). The packed export supports `'avgpool'` only. Default `'avgpool'`.
   */
  downsample?: Downsample;
  /**
   * The sign activations' gradient (an addition; the forward is the same sign either way).
   * `'ste'` (the recipe): the clipped straight-through estimator, the incoming gradient where
   * |x| < 1, else 0. `'approx-sign'`: Bi-Real Net's ApproxSign (Liu et al. 2018), the incoming
   * gradient times 2 - 2|x| where |x| < 1, else 0 (the derivative of the piecewise polynomial
   * -1 | x² + 2x | -x² + 2x | 1); every sign of the network uses it, the binary shortcut's included.
   * It keeps each sign's float input for the backward pass (4 bytes per element where the STE keeps
   * 1), so training takes more memory. Needs `binaryActivations`. No parameters; the packed export
   * accepts it (the forward is unchanged). Default `'ste'`.
   */
  signGradient?: SignGradient;
  /**
   * ReActNet's RSign (Liu et al. 2020, an addition): each block's sign becomes sign(x - β[c]) with a
   * learnable per-channel threshold β initialised to 0 (its gradient: minus the sum of the sign's
   * straight-through gradient over batch and space). Parameters: `layerL.B.sign_threshold`
   * [input channels] in double-skip blocks, `layerL.B.sign_threshold1` and `sign_threshold2` in
   * classic blocks. Needs `binaryActivations`; not with `downsample: 'binary'` (that shortcut's sign
   * has no threshold). The packed export folds β into its sign thresholds. In the recipe's block
   * order (BatchNorm → sign) β duplicates the BatchNorm's bias channel for channel (the BN output
   * feeds only the sign), so it re-parametrises the threshold rather than adding freedom: Adam
   * then moves the threshold with two normalised parameters instead of one, and β takes weight
   * decay. ReActNet's RSign acts on a block input that no BatchNorm precedes: with
   * `blockOrder: 'sign-conv-bn'` it does. Default false.
   */
  learnableThresholds?: boolean;
}

/** A config with every field filled in. */
export type ResolvedModelConfig = Required<ModelConfig>;

export const DEFAULT_MODEL_CONFIG: ResolvedModelConfig = Object.freeze({
  arch: 'resnet18',
  numClasses: 10,
  inChannels: 3,
  width: 64,
  stem: 'small',
  doubleSkip: true,
  binaryActivations: true,
  binaryWeights: false,
  bnMomentum: 0.1,
  blockOrder: 'bn-sign-conv',
  blockActivation: 'prelu',
  downsample: 'avgpool',
  signGradient: 'ste',
  learnableThresholds: false,
});

/** Fills defaults and checks every field, naming the first bad one. */
export function resolveModelConfig(config: ModelConfig = {}): ResolvedModelConfig {
  if (typeof config !== 'object' || config === null) throw typeError('the model config must be an object');
  const known = new Set(Object.keys(DEFAULT_MODEL_CONFIG));
  for (const key of Object.keys(config)) {
    if (!known.has(key)) throw rangeError(`unknown model config field '${key}' (known: ${[...known].join(', ')})`);
  }
  const c = { ...DEFAULT_MODEL_CONFIG, ...Object.fromEntries(Object.entries(config).filter(([, v]) => v !== undefined)) };
  if (c.arch !== 'resnet18') throw rangeError(`arch must be 'resnet18', got ${JSON.stringify(c.arch)}`);
  if (c.stem !== 'small' && c.stem !== 'imagenet') throw rangeError(`stem must be 'small' or 'imagenet', got ${JSON.stringify(c.stem)}`);
  if (typeof c.bnMomentum !== 'number' || !(c.bnMomentum >= 0 && c.bnMomentum <= 1)) {
    throw rangeError(`bnMomentum must be a number between 0 and 1, got ${typeof c.bnMomentum === "number" ? String(c.bnMomentum) : JSON.stringify(c.bnMomentum)}`);
  }
  const r: ResolvedModelConfig = {
    arch: 'resnet18',
    numClasses: checkInteger(c.numClasses, 'numClasses', 1, 1 << 20),
    inChannels: checkInteger(c.inChannels, 'inChannels', 1, 4096),
    width: checkInteger(c.width, 'width', 1, 4096),
    stem: c.stem,
    doubleSkip: checkBoolean(c.doubleSkip, 'doubleSkip'),
    binaryActivations: checkBoolean(c.binaryActivations, 'binaryActivations'),
    binaryWeights: checkBoolean(c.binaryWeights, 'binaryWeights'),
    bnMomentum: c.bnMomentum,
    blockOrder: checkOneOf(c.blockOrder, 'blockOrder', BLOCK_ORDERS),
    blockActivation: checkOneOf(c.blockActivation, 'blockActivation', BLOCK_ACTIVATIONS),
    downsample: checkOneOf(c.downsample, 'downsample', DOWNSAMPLES),
    signGradient: checkOneOf(c.signGradient, 'signGradient', SIGN_GRADIENTS),
    learnableThresholds: checkBoolean(c.learnableThresholds, 'learnableThresholds'),
  };
  // The combinations the native model refuses, refused here too, so that `bnn train`, `bnn ablate`
  // and `bnn summary` refuse them before data loads or a run folder is written (same messages).
  if (!r.binaryActivations && r.signGradient !== 'ste') {
    throw rangeError(`signGradient '${r.signGradient}' needs binaryActivations (a model with ReLU activations has no sign)`);
  }
  if (!r.binaryActivations && r.learnableThresholds) throw rangeError('learnableThresholds needs binaryActivations (a model with ReLU activations has no sign)');
  if (r.learnableThresholds && r.downsample === 'binary') {
    throw rangeError("learnableThresholds is not supported with downsample 'binary' (the binary shortcut's sign has no threshold)");
  }
  return r;
}
