// The raw binding of native/addon/tensor.cpp: tensors and their operations. Only src/ imports it.

/** Element types the native side understands. */
export type DTypeName = 'float32' | 'float64' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'uint8' | 'bool';

export type NativeTypedArray = Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array;

export interface TensorHandle {
  dispose(): void;
  isDisposed(): boolean;
  shape(): number[];
  dtype(): DTypeName;
  device(): string;
  requiresGrad(): boolean;
  setRequiresGrad(on: boolean): void;
  grad(): TensorHandle | null;
  data(): NativeTypedArray;
  item(): number;
  to(device: string, dtype?: DTypeName): TensorHandle;
  backward(gradient?: TensorHandle): void;
  backwardAsync(gradient?: TensorHandle): Promise<void>;
}

export type UnaryOp =
  | 'neg' | 'abs' | 'sign' | 'relu' | 'exp' | 'log' | 'sqrt' | 'square' | 'sigmoid' | 'tanh'
  | 'sum' | 'mean' | 'max' | 'min' | 'clone' | 'detach' | 'contiguous' | 't';
export type BinaryOp = 'add' | 'sub' | 'mul' | 'div' | 'pow' | 'matmul' | 'maximum' | 'minimum';
export type CreateKind = 'zeros' | 'ones' | 'rand' | 'randn';

export interface TensorAddon {
  TensorHandle: new () => TensorHandle;
  tensorFromData(
    data: NativeTypedArray,
    shape: readonly number[],
    dtype: DTypeName | undefined,
    device: string | undefined,
    requiresGrad: boolean,
  ): TensorHandle;
  tensorCreate(
    kind: CreateKind,
    shape: readonly number[],
    dtype: DTypeName | undefined,
    device: string | undefined,
    requiresGrad: boolean,
  ): TensorHandle;
  tensorUnary(input: TensorHandle, op: UnaryOp): TensorHandle;
  tensorBinary(input: TensorHandle, other: TensorHandle | number, op: BinaryOp): TensorHandle;
  tensorReshape(input: TensorHandle, shape: readonly number[]): TensorHandle;
  liveTensors(): number;
}
