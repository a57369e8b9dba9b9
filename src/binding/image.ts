// The raw binding of native/addon/image.cpp: decoding, transforms, prepared stores. Only src/ imports it.

/** A transform as the native side takes it (see src/image/transforms.ts for the user-facing form). */
export interface NativeTransform {
  mode: 'train' | 'eval';
  channels: number;
  size: number;
  scaleMin: number;
  scaleMax: number;
  ratioMin: number;
  ratioMax: number;
  hflip: boolean;
  rotation: number;
  brightness: number;
  contrast: number;
  saturation: number;
  hue: number;
  lighting: number;
  resize: number;
  dctScaling: boolean;
}

export interface NativeImageInfo {
  format: 'jpeg' | 'png';
  width: number;
  height: number;
  /** As stored: 1 grey, 2 grey + alpha, 3 colour, 4 RGBA or CMYK. */
  channels: number;
}

export interface NativeDecodedImage {
  data: Uint8Array;
  width: number;
  height: number;
  channels: number;
}

export interface NativeStoreInfo {
  size: number;
  classNames: string[];
  classCounts: number[];
  maxSide: number;
}

/** A prepared store being written: chunks of files, then finish() publishes it atomically. */
export interface StoreWriterHandle {
  /** Adds files at positions firstPosition, firstPosition + 1, ...; resolves to the [index in this chunk, reason] of files that could not be read. */
  addFiles(paths: string[], labels: number[], firstPosition: number): Promise<[number, string][]>;
  finish(): Promise<number>;
  dispose(): void;
}

export interface ImageAddon {
  /** Which resize kernels run: 'avx2', or 'baseline' (no AVX2, or BNN_IMAGE_SIMD=0). */
  imageKernels(): 'avx2' | 'baseline';
  imageInfo(bytes: Uint8Array): NativeImageInfo;
  decodeImage(bytes: Uint8Array, options: { channels: number; scaleEighths?: number }): Promise<NativeDecodedImage>;
  renderImage(bytes: Uint8Array, transform: NativeTransform, draw: { seed: number; epoch: number; sample: number }): Promise<Uint8Array>;
  storeInfo(path: string): Promise<NativeStoreInfo>;
  StoreWriterHandle: new (path: string, classNames: string[], options: { maxSide: number; rawMaxSide: number; quality: number; workers: number }) => StoreWriterHandle;
}
