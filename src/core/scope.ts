// Scoped ownership of native tensors, in the spirit of TensorFlow.js's tidy() but async-aware:
// AsyncLocalStorage follows the scope across awaits, so tensors created by an awaited call belong
// to the scope that awaited it.
import { AsyncLocalStorage } from 'node:async_hooks';

/** Anything with deterministic native cleanup. */
export interface Disposer {
  dispose(): void;
  readonly isDisposed: boolean;
}

const storage = new AsyncLocalStorage<Set<Disposer>>();

/** @internal Called by every native-backed object when it is created. */
export function track(owner: Disposer): void {
  storage.getStore()?.add(owner);
}

/** @internal Called when an object is disposed by hand, so the scope forgets it. */
export function untrack(owner: Disposer): void {
  storage.getStore()?.delete(owner);
}

/**
 * Marks `value` (a tensor, or an array/object holding tensors) as surviving the current scope: it
 * moves to the enclosing scope, or becomes unowned at top level. Returns `value`.
 */
export function keep<T>(value: T): T {
  const store = storage.getStore();
  if (store) for (const d of collect(value)) store.delete(d);
  return value;
}

function isDisposer(v: unknown): v is Disposer {
  return typeof v === 'object' && v !== null && typeof (v as Disposer).dispose === 'function' && 'isDisposed' in v;
}

function collect(value: unknown, found = new Set<Disposer>(), seen = new Set<unknown>()): Set<Disposer> {
  if (typeof value !== 'object' || value === null || seen.has(value)) return found;
  seen.add(value);
  if (isDisposer(value)) {
    found.add(value);
    return found;
  }
  if (value instanceof Map) {
    for (const v of value.values()) collect(v, found, seen);
  } else if (Array.isArray(value) || value instanceof Set) {
    for (const v of value) collect(v, found, seen);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collect(v, found, seen);
  }
  return found;
}

function finish(created: Set<Disposer>, result: unknown, parent: Set<Disposer> | undefined): void {
  const survivors = collect(result);
  for (const d of created) {
    if (survivors.has(d)) parent?.add(d);
    else if (!d.isDisposed) d.dispose();
  }
}

/**
 * Runs `fn` and disposes every tensor created inside it, except those reachable from its return
 * value (through arrays, plain objects, Maps and Sets) and those passed to {@link keep}. Works for
 * synchronous and async functions; scopes nest.
 *
 * @example
 * const loss = await scope(async () => {
 *   const y = model.forward(x);          // freed at the end of the scope
 *   return crossEntropy(y, labels);      // returned: survives
 * });
 */
export function scope<T>(fn: () => T): T {
  const parent = storage.getStore();
  const created = new Set<Disposer>();
  let result: T;
  try {
    result = storage.run(created, fn);
  } catch (e) {
    finish(created, undefined, parent);
    throw e;
  }
  if (result instanceof Promise) {
    return result.then(
      (value: unknown) => {
        finish(created, value, parent);
        return value;
      },
      (error: unknown) => {
        finish(created, undefined, parent);
        throw error;
      },
    ) as T;
  }
  finish(created, result, parent);
  return result;
}
