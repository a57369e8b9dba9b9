// The model summary (in the spirit of Larq's): per layer, input precision, 1-bit and 32-bit
// parameter counts and MACs, and totals including the packed size of a deployed binary model.
// It is computed from the config, which fixes the structure; a test checks its parameter counts
// against the native model's.
import { checkInteger } from '../core/check.js';
import type { ResolvedModelConfig } from './model-config.js';

/** One row of the summary. */
export interface LayerSummary {
  /** PyTorch module name (`layer2.0.conv`). */
  name: string;
  /** Module type (`BinaryConv2d`, `BatchNorm2d`, ...). */
  type: string;
  /** Precision of the values this layer multiplies: 1 for sign activations, 32 otherwise. */
  inputBits: 1 | 32;
  /** Output shape for one image, [C, H, W] or [features]. */
  outputShape: number[];
  /** Parameters stored at 1 bit (binary conv weights in the binary-weight stage). */
  binaryParams: number;
  /** Parameters stored at 32 bits (including the per-channel scales of binary weights). */
  floatParams: number;
  /** Multiply-accumulates where both operands are binary (XNOR-popcount on deployment). */
  binaryMacs: number;
  /** Other multiply-accumulates, per image. */
  floatMacs: number;
}

/** Totals of the summary. */
export interface ModelSummary {
  config: ResolvedModelConfig;
  /** Input shape assumed, [C, H, W]. */
  inputShape: [number, number, number];
  layers: LayerSummary[];
  /** Trainable parameters (latent weights count once, as in PyTorch). */
  totalParams: number;
  binaryParams: number;
  floatParams: number;
  /** Bytes when binary weights are packed at 1 bit and the rest kept as float32. */
  packedBytes: number;
  /** Bytes with every parameter as float32. */
  float32Bytes: number;
  /** float32Bytes / packedBytes. */
  compressionRatio: number;
  binaryMacs: number;
  floatMacs: number;
  /** binaryMacs / all MACs. */
  binaryMacShare: number;
  /** The table as text, for the CLI. */
  text: string;
}

/** Input size for {@link summarize}; defaults to 28x28 for one channel, 32x32 otherwise (224 for the imagenet stem). */
export interface SummaryOptions {
  height?: number;
  width?: number;
}

const convOut = (size: number, k: number, s: number, p: number): number => Math.floor((size + 2 * p - k) / s) + 1;
const poolCeilOut = (size: number, k: number, s: number): number => {
  let out = Math.ceil((size - k) / s) + 1;
  if ((out - 1) * s >= size) out -= 1; // PyTorch: the last window must start inside the input
  return Math.max(out, 1);
};

/** @internal Builds the summary of the network a config describes. */
export function summarize(config: ResolvedModelConfig, options: SummaryOptions = {}): ModelSummary {
  const defaultSize = config.stem === 'imagenet' ? 224 : config.inChannels === 1 ? 28 : 32;
  const h0 = options.height ?? defaultSize;
  const w0 = options.width ?? defaultSize;
  for (const [k, v] of [['height', h0], ['width', w0]] as const) {
    checkInteger(v, `summary ${k}`, 1);
  }
  const layers: LayerSummary[] = [];
  const binW = config.binaryWeights;
  const binA = config.binaryActivations;
  let [c, h, w] = [config.inChannels, h0, w0];

  const conv = (name: string, cin: number, cout: number, k: number, s: number, p: number, binary: boolean, inputBits: 1 | 32) => {
    const ho = convOut(h, k, s, p);
    const wo = convOut(w, k, s, p);
    const weights = cout * cin * k * k;
    const macs = weights * ho * wo;
    const bothBinary = binary && binW && inputBits === 1;
    layers.push({
      name,
      type: binary ? 'BinaryConv2d' : 'Conv2d',
      inputBits,
      outputShape: [cout, ho, wo],
      binaryParams: binary && binW ? weights : 0,
      floatParams: binary && binW ? cout : weights, // a binary conv keeps one float scale per output channel
      binaryMacs: bothBinary ? macs : 0,
      floatMacs: bothBinary ? 0 : macs,
    });
    return [cout, ho, wo] as const;
  };
  const simple = (name: string, type: string, params: number, shape: number[]) =>
    layers.push({ name, type, inputBits: 32, outputShape: shape, binaryParams: 0, floatParams: params, binaryMacs: 0, floatMacs: 0 });

  const imagenet = config.stem === 'imagenet';
  [c, h, w] = conv('conv1', c, config.width, imagenet ? 7 : 3, imagenet ? 2 : 1, imagenet ? 3 : 1, false, 32);
  simple('bn1', 'BatchNorm2d', 2 * c, [c, h, w]);
  if (imagenet) {
    h = convOut(h, 3, 2, 1);
    w = convOut(w, 3, 2, 1);
    simple('maxpool', 'MaxPool2d', 0, [c, h, w]);
  }
  const inBits: 1 | 32 = binA ? 1 : 32;
  const biReal = config.blockOrder === 'sign-conv-bn';
  // Rows in registration order: BN before the conv in the recipe's order, after it in Bi-Real's.
  const block = (prefix: string, cin: number, planes: number, stride: number, suffix: string) => {
    const [hi, wi] = [h, w];
    if (!biReal) simple(`${prefix}.bn${suffix}`, 'BatchNorm2d', 2 * cin, [cin, hi, wi]);
    // RSign's per-channel threshold, a parameter of the block itself (first in its state dict).
    if (config.learnableThresholds) simple(`${prefix}.sign_threshold${suffix}`, 'RSign', cin, [cin, hi, wi]);
    [c, h, w] = conv(`${prefix}.conv${suffix}`, cin, planes, 3, stride, 1, true, inBits);
    if (biReal) simple(`${prefix}.bn${suffix}`, 'BatchNorm2d', 2 * planes, [c, h, w]);
    return [hi, wi] as const;
  };
  // Only PReLU and RPReLU have parameters (and so a module and a row); ReLU and 'none' are stateless.
  const activation = (name: string) => {
    if (config.blockActivation === 'prelu') simple(name, 'PReLU', c, [c, h, w]);
    if (config.blockActivation === 'rprelu') simple(name, 'RPReLU', 3 * c, [c, h, w]); // slopes and two shifts
  };
  const shortcut = (prefix: string, cin: number, planes: number, stride: number, hi: number, wi: number) => {
    if (stride === 1 && cin === planes) return;
    const saved = [c, h, w] as const;
    [c, h, w] = [cin, hi, wi];
    const ds = config.downsample;
    const binary = ds === 'binary';
    const [, ho, wo] = conv(`${prefix}.downsample.0`, cin, planes, 1, ds === 'strided' ? stride : 1, 0, binary, binary ? inBits : 32);
    simple(`${prefix}.downsample.1`, 'BatchNorm2d', 2 * planes, [planes, ho, wo]);
    if (ds !== 'strided' && stride !== 1) simple(`${prefix}.downsample.2`, 'AvgPool2d', 0, [planes, poolCeilOut(hi, stride, stride), poolCeilOut(wi, stride, stride)]);
    [c, h, w] = saved;
  };
  let inPlanes = config.width;
  [1, 2, 4, 8].forEach((mult, li) => {
    const planes = config.width * mult;
    const stride = li === 0 ? 1 : 2;
    for (let b = 0; b < 2; b++) {
      const s = b === 0 ? stride : 1;
      if (config.doubleSkip) {
        for (const [idx, cin, st] of [[2 * b, inPlanes, s], [2 * b + 1, planes, 1]] as const) {
          const prefix = `layer${li + 1}.${idx}`;
          const [hi, wi] = block(prefix, cin, planes, st, '');
          activation(`${prefix}.prelu`);
          shortcut(prefix, cin, planes, st, hi, wi);
        }
      } else {
        const prefix = `layer${li + 1}.${b}`;
        const [hi, wi] = block(prefix, inPlanes, planes, s, '1');
        activation(`${prefix}.prelu1`);
        block(prefix, planes, planes, 1, '2');
        activation(`${prefix}.prelu2`);
        shortcut(prefix, inPlanes, planes, s, hi, wi);
      }
      inPlanes = planes;
    }
  });
  const features = c;
  layers.push({
    name: 'fc',
    type: 'Linear',
    inputBits: 32,
    outputShape: [config.numClasses],
    binaryParams: 0,
    floatParams: features * config.numClasses + config.numClasses,
    binaryMacs: 0,
    floatMacs: features * config.numClasses,
  });

  const sum = (f: (l: LayerSummary) => number) => layers.reduce((a, l) => a + f(l), 0);
  const binaryParams = sum((l) => l.binaryParams);
  const floatParams = sum((l) => l.floatParams);
  // Latent weights are one parameter each; the per-channel scales are derived, not trained.
  const scales = layers.filter((l) => l.type === 'BinaryConv2d' && l.binaryParams > 0).reduce((a, l) => a + l.outputShape[0]!, 0);
  const totalParams = binaryParams + floatParams - scales;
  const packedBytes = Math.ceil(binaryParams / 8) + 4 * floatParams;
  const float32Bytes = 4 * totalParams;
  const binaryMacs = sum((l) => l.binaryMacs);
  const floatMacs = sum((l) => l.floatMacs);
  const summary: Omit<ModelSummary, 'text'> = {
    config,
    inputShape: [config.inChannels, h0, w0],
    layers,
    totalParams,
    binaryParams,
    floatParams,
    packedBytes,
    float32Bytes,
    compressionRatio: float32Bytes / packedBytes,
    binaryMacs,
    floatMacs,
    binaryMacShare: binaryMacs + floatMacs === 0 ? 0 : binaryMacs / (binaryMacs + floatMacs),
  };
  return { ...summary, text: formatSummary(summary) };
}

const fmt = (n: number): string => n.toLocaleString('en-US');
const bytes = (n: number): string => (n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(2)} MiB` : `${(n / 1024).toFixed(1)} KiB`);

function formatSummary(s: Omit<ModelSummary, 'text'>): string {
  const header = ['Layer', 'Type', 'In bits', 'Output shape', '1-bit params', '32-bit params', '1-bit MACs', '32-bit MACs'];
  const rows = s.layers.map((l) => [
    l.name,
    l.type,
    String(l.inputBits),
    `[${l.outputShape.join(', ')}]`,
    l.binaryParams ? fmt(l.binaryParams) : '0',
    fmt(l.floatParams),
    l.binaryMacs ? fmt(l.binaryMacs) : '0',
    fmt(l.floatMacs),
  ]);
  const totals = ['Total', '', '', '', fmt(s.binaryParams), fmt(s.floatParams), fmt(s.binaryMacs), fmt(s.floatMacs)];
  const widths = header.map((_, i) => Math.max(...[header, ...rows, totals].map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((v, i) => (i < 4 ? v.padEnd(widths[i]!) : v.padStart(widths[i]!))).join('  ');
  const rule = widths.map((n) => '-'.repeat(n)).join('  ');
  const c = s.config;
  // The ablation's switches are named only where they leave the recipe.
  const variant = [
    c.blockOrder !== 'bn-sign-conv' ? `${c.blockOrder} blocks` : '',
    c.blockActivation !== 'prelu' ? `${c.blockActivation === 'none' ? 'no activation' : c.blockActivation} after the add` : '',
    c.downsample !== 'avgpool' ? `${c.downsample} downsample` : '',
    c.signGradient !== 'ste' ? `${c.signGradient} gradient` : '',
    c.learnableThresholds ? 'learnable sign thresholds' : '',
  ].filter(Boolean).map((v) => `${v}, `).join('');
  return [
    `bnn-torch ${c.arch}: width ${c.width}, ${c.doubleSkip ? 'double skip' : 'classic blocks'}, ${variant}` +
      `${c.binaryActivations ? '1-bit' : '32-bit'} activations, ${c.binaryWeights ? '1-bit' : '32-bit'} weights, input [${s.inputShape.join(', ')}]`,
    line(header),
    rule,
    ...rows.map(line),
    rule,
    line(totals),
    '',
    `Parameters: ${fmt(s.totalParams)} (${fmt(s.binaryParams)} at 1 bit, ${fmt(s.floatParams)} at 32 bits incl. scales)`,
    `Size: ${bytes(s.packedBytes)} packed vs ${bytes(s.float32Bytes)} float32 (compression ${s.compressionRatio.toFixed(2)}x)`,
    `MACs per image: ${fmt(s.binaryMacs + s.floatMacs)}, ${(100 * s.binaryMacShare).toFixed(1)}% binary`,
  ].join('\n');
}
