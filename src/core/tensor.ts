import type { BinaryOp, DTypeName, NativeTypedArray, TensorHandle, UnaryOp } from '../binding/addon.js';
import { native } from '../binding/native.js';
import { rangeError, typeError } from '../errors.js';
import { checkBoolean, checkDevice, checkDType, checkShape } from './check.js';
import type { Device } from './device.js';
import { NativeResource } from './handle.js';
import { track, untrack } from './scope.js';

/** Element type of a tensor. */
export type DType = DTypeName;

/** Data a tensor can be created from. Plain number arrays become float32 (or the dtype asked for). */
export type TensorData = NativeTypedArray | readonly number[];

/** Options for creating a tensor. */
export interface TensorOptions {
  /** Element type; defaults to the data's own type (float32 for number arrays and factories). */
  dtype?: DType;
  /** Where the tensor lives; defaults to `'cpu'`. */
  device?: Device;
  /** Track gradients for this leaf tensor (floating-point only). */
  requiresGrad?: boolean;
}

function toNativeArray(data: TensorData, dtype: DType | undefined): NativeTypedArray {
  if (ArrayBuffer.isView(data)) {
    if (
      data instanceof Float32Array || data instanceof Float64Array || data instanceof BigInt64Array ||
      data instanceof Int32Array || data instanceof Uint8Array
    ) {
      return data;
    }
    throw typeError(`unsupported typed array ${(data as ArrayBufferView).constructor.name}: use Float32Array, Float64Array, BigInt64Array, Int32Array or Uint8Array`);
  }
  if (!Array.isArray(data)) throw typeError('data must be a typed array or an array of numbers');
  for (let i = 0; i < data.length; i++) {
    if (typeof data[i] !== 'number') throw typeError(`data[${i}] must be a number`);
  }
  if (dtype === 'int64' || dtype === 'int32' || dtype === 'uint8' || dtype === 'bool') {
    const out = new BigInt64Array(data.length);
    data.forEach((v, i) => {
      if (!Number.isSafeInteger(v)) throw typeError(`data[${i}] = ${v} is not an integer, but dtype ${dtype} was asked for`);
      out[i] = BigInt(v);
    });
    return out;
  }
  return dtype === 'float64' ? Float64Array.from(data) : Float32Array.from(data);
}

/**
 * A LibTorch tensor owned from TypeScript. Free it with {@link Tensor.dispose} (or `using`), or
 * create it inside {@link scope}; a finalizer frees forgotten tensors eventually, but native memory
 * should not wait for the garbage collector.
 */
export class Tensor extends NativeResource<TensorHandle> {

  /** @internal Wraps a native handle; users create tensors with the static factories. */
  constructor(handle: TensorHandle) {
    // The GC safety net is the native handle's own finalizer (napi_wrap): when this facade becomes
    // unreachable so does its handle, and the tensor is freed. A FinalizationRegistry entry per
    // tensor did the same job but grew RSS by ~36 MB per 200k tensors (measured), so it is not used.
    super('tensor', handle);
    track(this);
  }

  /** Creates a tensor from a typed array or number array (copied) with the given shape (default: 1-D). */
  static fromArray(data: TensorData, shape?: readonly number[], options: TensorOptions = {}): Tensor {
    const dtype = checkDType(options.dtype);
    const array = toNativeArray(data, dtype);
    const dims = shape === undefined ? [array.length] : checkShape(shape);
    const count = dims.reduce((a, b) => a * b, 1);
    if (count !== array.length) {
      throw rangeError(`shape [${dims.join(', ')}] holds ${count} elements but the data has ${array.length}`);
    }
    const device = options.device === undefined ? undefined : checkDevice(options.device);
    return new Tensor(native().tensorFromData(array, dims, dtype, device, options.requiresGrad === true));
  }

  /** A tensor of zeros. */
  static zeros(shape: readonly number[], options: TensorOptions = {}): Tensor {
    return Tensor.#create('zeros', shape, options);
  }

  /** A tensor of ones. */
  static ones(shape: readonly number[], options: TensorOptions = {}): Tensor {
    return Tensor.#create('ones', shape, options);
  }

  /** Uniform random values in [0, 1), from LibTorch's generator (see `manualSeed`). */
  static rand(shape: readonly number[], options: TensorOptions = {}): Tensor {
    return Tensor.#create('rand', shape, options);
  }

  /** Standard normal random values, from LibTorch's generator (see `manualSeed`). */
  static randn(shape: readonly number[], options: TensorOptions = {}): Tensor {
    return Tensor.#create('randn', shape, options);
  }

  static #create(kind: 'zeros' | 'ones' | 'rand' | 'randn', shape: readonly number[], options: TensorOptions): Tensor {
    const dims = checkShape(shape);
    const dtype = checkDType(options.dtype);
    const device = options.device === undefined ? undefined : checkDevice(options.device);
    return new Tensor(native().tensorCreate(kind, dims, dtype, device, options.requiresGrad === true));
  }

  /** @internal Leaves the scope that tracked it when disposed. */
  protected override released(): void {
    untrack(this);
  }

  get shape(): number[] {
    return this.handle.shape();
  }

  get dtype(): DType {
    return this.handle.dtype();
  }

  get device(): Device {
    return this.handle.device() as Device;
  }

  /** Number of elements. */
  get size(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  get requiresGrad(): boolean {
    return this.handle.requiresGrad();
  }

  set requiresGrad(on: boolean) {
    checkBoolean(on, 'requiresGrad');
    this.handle.setRequiresGrad(on);
  }

  /** The accumulated gradient as a new tensor (dispose it), or null before any backward pass. */
  get grad(): Tensor | null {
    const g = this.handle.grad();
    return g === null ? null : new Tensor(g);
  }

  /** A copy on `device` (and optionally converted to `dtype`). */
  to(device: Device, dtype?: DType): Tensor {
    return new Tensor(this.handle.to(checkDevice(device), checkDType(dtype)));
  }

  /** The values as a new Float32Array (copied to the CPU and converted if needed). */
  toFloat32Array(): Float32Array {
    const data = this.handle.data();
    if (data instanceof Float32Array) return data;
    if (data instanceof BigInt64Array) return Float32Array.from(data, (v) => Number(v));
    return Float32Array.from(data);
  }

  /** The values in the tensor's own element type (int64 as BigInt64Array; float16/bfloat16 as float32). */
  toTypedArray(): NativeTypedArray {
    return this.handle.data();
  }

  /** The single value of a one-element tensor. */
  item(): number {
    return this.handle.item();
  }

  /** Back-propagates from this tensor (a scalar, unless `gradient` is given). */
  backward(gradient?: Tensor): void {
    this.handle.backward(gradient?.handle);
  }

  /** {@link backward} on a worker thread, leaving the event loop free. */
  async backwardAsync(gradient?: Tensor): Promise<void> {
    await this.handle.backwardAsync(gradient?.handle);
  }

  #unary(op: UnaryOp): Tensor {
    return new Tensor(native().tensorUnary(this.handle, op));
  }

  #binary(other: Tensor | number, op: BinaryOp): Tensor {
    if (typeof other === 'number') return new Tensor(native().tensorBinary(this.handle, other, op));
    if (!(other instanceof Tensor)) throw typeError(`${op}: the other operand must be a Tensor or a number`);
    return new Tensor(native().tensorBinary(this.handle, other.handle, op));
  }

  add(other: Tensor | number): Tensor { return this.#binary(other, 'add'); }
  sub(other: Tensor | number): Tensor { return this.#binary(other, 'sub'); }
  mul(other: Tensor | number): Tensor { return this.#binary(other, 'mul'); }
  div(other: Tensor | number): Tensor { return this.#binary(other, 'div'); }
  pow(other: Tensor | number): Tensor { return this.#binary(other, 'pow'); }
  matmul(other: Tensor): Tensor { return this.#binary(other, 'matmul'); }
  maximum(other: Tensor): Tensor { return this.#binary(other, 'maximum'); }
  minimum(other: Tensor): Tensor { return this.#binary(other, 'minimum'); }
  neg(): Tensor { return this.#unary('neg'); }
  abs(): Tensor { return this.#unary('abs'); }
  /** PyTorch's sign (0 stays 0); see `binaryActivation` for the recipe's ±1 version. */
  sign(): Tensor { return this.#unary('sign'); }
  relu(): Tensor { return this.#unary('relu'); }
  exp(): Tensor { return this.#unary('exp'); }
  log(): Tensor { return this.#unary('log'); }
  sqrt(): Tensor { return this.#unary('sqrt'); }
  square(): Tensor { return this.#unary('square'); }
  sigmoid(): Tensor { return this.#unary('sigmoid'); }
  tanh(): Tensor { return this.#unary('tanh'); }
  sum(): Tensor { return this.#unary('sum'); }
  mean(): Tensor { return this.#unary('mean'); }
  max(): Tensor { return this.#unary('max'); }
  min(): Tensor { return this.#unary('min'); }
  clone(): Tensor { return this.#unary('clone'); }
  /** Transpose of a 2-D tensor (a strided view, not a copy). */
  t(): Tensor { return this.#unary('t'); }
  /** A view that shares storage but is cut from the autograd graph. */
  detach(): Tensor { return this.#unary('detach'); }
  /** A view or copy with a new shape (one dimension may be -1). */
  reshape(shape: readonly number[]): Tensor {
    if (!Array.isArray(shape)) throw typeError('shape must be an array of integers');
    return new Tensor(native().tensorReshape(this.handle, shape));
  }

  override toString(): string {
    return this.isDisposed ? 'Tensor(disposed)' : `Tensor(shape=[${this.shape.join(', ')}], dtype=${this.dtype}, device=${this.device})`;
  }
}

/** @internal */
export function requireTensor(value: unknown, what: string): Tensor {
  if (!(value instanceof Tensor)) throw typeError(`${what} must be a Tensor`);
  return value;
}
