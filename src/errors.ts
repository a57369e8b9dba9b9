/** Stable codes carried by every error bnn-torch throws (as `error.code`). */
export type BnnErrorCode =
  | 'BNN_INVALID_ARGUMENT'
  | 'BNN_INVALID_TYPE'
  | 'BNN_CUDA_UNAVAILABLE'
  | 'BNN_DISPOSED'
  | 'BNN_IO'
  | 'BNN_NON_FINITE_LOSS'
  | 'BNN_INTERRUPTED'
  | 'BNN_DISTRIBUTED'
  | 'BNN_TORCH_ERROR'
  | 'BNN_OUT_OF_MEMORY'
  | 'BNN_ADDON_NOT_LOADED'
  | 'BNN_INTERNAL_ERROR';

/** An Error (or TypeError / RangeError) thrown by bnn-torch, with its code. */
export type BnnError = Error & { code: BnnErrorCode };

/** True for errors raised by bnn-torch, native or TypeScript. */
export function isBnnError(error: unknown): error is BnnError {
  if (!(error instanceof Error)) return false;
  const code: unknown = (error as Error & { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('BNN_');
}

function withCode<E extends Error>(error: E, code: BnnErrorCode): E & { code: BnnErrorCode } {
  return Object.assign(error, { code });
}

/** @internal */
export function typeError(message: string): TypeError & { code: BnnErrorCode } {
  return withCode(new TypeError(message), 'BNN_INVALID_TYPE');
}

/** @internal */
export function rangeError(message: string): RangeError & { code: BnnErrorCode } {
  return withCode(new RangeError(message), 'BNN_INVALID_ARGUMENT');
}

/** @internal */
export function bnnError(message: string, code: BnnErrorCode): BnnError {
  return withCode(new Error(message), code);
}
