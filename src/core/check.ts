// The one validation vocabulary of the TypeScript side, used before anything crosses into native
// code. The rule for which error a mistake gives, everywhere:
//   - TypeError (code BNN_INVALID_TYPE): the value has the wrong type: not a number, a fractional
//     number where an integer is needed, not a boolean, not a string, not an array.
//   - RangeError (code BNN_INVALID_ARGUMENT): the type is right but the value is not allowed: out
//     of its range, not one of the accepted names, the wrong length.
// The native side follows the same rule (native/addon/convert.h), so a mistake gives the same
// error whichever side notices it.
import { rangeError, typeError } from '../errors.js';
import type { Device } from './device.js';

/** @internal An integer in [min, max] (default: any safe integer from `min`). */
export function checkInteger(value: unknown, what: string, min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) throw typeError(`${what} must be an integer, got ${describe(value)}`);
  if (value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `at least ${min}` : `between ${min} and ${max}`;
    throw rangeError(`${what} must be ${range}, got ${value}`);
  }
  return value;
}

/** Bounds of {@link checkNumber}: `min`/`max` inclusive, `above`/`below` exclusive. */
export interface NumberRange {
  min?: number;
  max?: number;
  above?: number;
  below?: number;
}

/** @internal A finite number within `range`. */
export function checkNumber(value: unknown, what: string, range: NumberRange = {}): number {
  if (typeof value !== 'number' || Number.isNaN(value)) throw typeError(`${what} must be a number, got ${describe(value)}`);
  const { min, max, above, below } = range;
  const ok =
    Number.isFinite(value) &&
    (min === undefined || value >= min) &&
    (max === undefined || value <= max) &&
    (above === undefined || value > above) &&
    (below === undefined || value < below);
  if (!ok) {
    const lo = min ?? above;
    const hi = max ?? below;
    const rule =
      lo !== undefined && hi !== undefined ? `a number in ${min !== undefined ? '[' : '('}${lo}, ${hi}${max !== undefined ? ']' : ')'}`
      : above === 0 ? 'a positive number'
      : lo !== undefined ? `a number ${min !== undefined ? '>=' : '>'} ${lo}`
      : hi !== undefined ? `a number ${max !== undefined ? '<=' : '<'} ${hi}`
      : 'a finite number';
    throw rangeError(`${what} must be ${rule}, got ${value}`);
  }
  return value;
}

/** @internal A boolean; `fallback` when the value is undefined and a fallback is given. */
export function checkBoolean(value: unknown, what: string, fallback?: boolean): boolean {
  if (value === undefined && fallback !== undefined) return fallback;
  if (typeof value !== 'boolean') throw typeError(`${what} must be a boolean, got ${describe(value)}`);
  return value;
}

/** @internal One of a fixed set of strings. */
export function checkOneOf<T extends string>(value: unknown, what: string, allowed: readonly T[]): T {
  const list = allowed.map((a) => `'${a}'`).join(', ');
  if (typeof value !== 'string') throw typeError(`${what} must be one of ${list}, got ${describe(value)}`);
  if (!(allowed as readonly string[]).includes(value)) throw rangeError(`unknown ${what} '${value}': expected one of ${list}`);
  return value as T;
}

/** @internal An array of finite numbers, optionally of a given length. */
export function checkNumbers(value: unknown, what: string, length?: number): number[] {
  if (!Array.isArray(value)) throw typeError(`${what} must be an array of numbers`);
  if (length !== undefined && value.length !== length) throw rangeError(`${what} needs ${length} values, got ${value.length}`);
  return value.map((v, i) => {
    if (typeof v !== 'number' || !Number.isFinite(v)) throw typeError(`${what}[${i}] must be a finite number, got ${describe(v)}`);
    return v;
  });
}

/** @internal A tensor shape: an array of non-negative safe integers. */
export function checkShape(shape: unknown, what = 'shape'): number[] {
  if (!Array.isArray(shape)) throw typeError(`${what} must be an array of non-negative integers`);
  return shape.map((d, i) => {
    if (typeof d !== 'number' || !Number.isSafeInteger(d)) throw typeError(`${what}[${i}] must be an integer, got ${describe(d)}`);
    if (d < 0) throw rangeError(`${what}[${i}] must not be negative, got ${d}`);
    return d;
  });
}

/** Element types of tensors. */
export const DTYPES = ['float32', 'float64', 'float16', 'bfloat16', 'int64', 'int32', 'uint8', 'bool'] as const;

/**
 * @internal A dtype name, or undefined when none was given. An unknown name is a TypeError: a
 * dtype is a type, whatever its spelling.
 */
export function checkDType(dtype: unknown): (typeof DTYPES)[number] | undefined {
  if (dtype === undefined) return undefined;
  if (typeof dtype !== 'string' || !(DTYPES as readonly string[]).includes(dtype)) {
    throw typeError(`unknown dtype ${JSON.stringify(dtype)}: expected one of ${DTYPES.join(', ')}`);
  }
  return dtype as (typeof DTYPES)[number];
}

const DEVICE = /^(cpu|cuda(:\d+)?)$/;

/** @internal A device string's form; whether CUDA is really there is checked natively. */
export function checkDevice(device: unknown, what = 'device'): Device {
  if (typeof device !== 'string') throw typeError(`${what} must be a string such as 'cpu', 'cuda' or 'cuda:0'`);
  if (!DEVICE.test(device)) throw rangeError(`unknown ${what} '${device}': expected 'cpu', 'cuda' or 'cuda:N'`);
  return device as Device;
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (Array.isArray(value)) return 'an array';
  if (value === null) return 'null';
  if (typeof value === 'object') return 'an object';
  return String(value);
}
