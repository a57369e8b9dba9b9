import { rangeError, typeError } from './errors.js';

/** Where a tensor or model lives: `'cpu'`, `'cuda'` (device 0) or `'cuda:N'`. */
export type Device = 'cpu' | 'cuda' | `cuda:${number}`;

const DEVICE = /^(cpu|cuda(:\d+)?)$/;

/** Checks a device string's form; whether CUDA is really there is checked natively. @internal */
export function checkDevice(device: unknown, what = 'device'): Device {
  if (typeof device !== 'string') throw typeError(`${what} must be a string such as 'cpu', 'cuda' or 'cuda:0'`);
  if (!DEVICE.test(device)) throw rangeError(`unknown ${what} '${device}': expected 'cpu', 'cuda' or 'cuda:N'`);
  return device as Device;
}
