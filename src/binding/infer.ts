// The raw binding of native/addon/infer.cpp: a second addon, bnn_infer.node, that links the
// packed-model engine (native/infer/) and the image decoders but not LibTorch, so inference runs in
// a process that never loads LibTorch. Only src/infer/ imports it.
import { bnnError } from '../errors.js';
import { loadAddonFile } from './native.js';

/** Instruction sets the engine's kernels are compiled for. */
export type NativeInferIsa = 'avx512' | 'avx512bw' | 'avx2' | 'baseline' | 'neon';

export interface NativeInferModelInfo {
  formatVersion: number;
  inChannels: number;
  numClasses: number;
  width: number;
  stem: 'small' | 'imagenet';
  doubleSkip: boolean;
  metadata: Record<string, string>;
  isa: string;
}

export interface NativeInferModel {
  info(): NativeInferModelInfo;
  /** NCHW normalised float input; logits n * numClasses. */
  predict(images: Float32Array, shape: [number, number, number, number], options: { threads?: number; isa?: string }): Promise<Float32Array>;
  dispose(): void;
}

export interface NativeInfer {
  isaInfo(): { best: string; supported: string[] };
  exportPacked(floatPath: string, packedPath: string, options: { metadata?: Record<string, string>; allowFloatWeights?: boolean }): Promise<{ floatBytes: number; packedBytes: number }>;
  loadModel(path: string): Promise<NativeInferModel>;
  decodeImage(data: Uint8Array, options: { width: number; height: number; channels: 1 | 3; resize?: number; dctScaling?: boolean }): Promise<Uint8Array>;
  benchConv(options: {
    inChannels: number;
    outChannels: number;
    height: number;
    width: number;
    stride: 1 | 2;
    batch: number;
    threads: number;
    isa?: string;
    iterations: number;
  }): Promise<{ seconds: number; isa: string }>;
}

let addon: NativeInfer | undefined;

/** @internal The inference addon; a clear error when it is not built. */
export function inferNative(): NativeInfer {
  if (addon) return addon;
  try {
    addon = loadAddonFile('bnn_infer') as NativeInfer;
    return addon;
  } catch (e) {
    const detail = e instanceof Error ? e.message.split('\n')[0] ?? '' : String(e);
    throw bnnError(`bnn-torch could not load its inference addon (bnn_infer.node): ${detail}\nRebuild with \`npm run build:native\`.`, 'BNN_ADDON_NOT_LOADED');
  }
}
