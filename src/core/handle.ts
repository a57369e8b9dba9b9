// The one lifetime rule of every facade over a native object: it owns one handle, frees it
// deterministically with dispose() (or `using`), and refuses to be used afterwards with a
// BNN_DISPOSED error naming what it was. The native handle's own finalizer is only the safety net.
import { bnnError } from '../errors.js';

/** What every native handle can do. */
export interface Releasable {
  dispose(): void;
}

/** @internal Base of the classes that wrap one native handle (Tensor, Model, Adam, DataLoader, ...). */
export abstract class NativeResource<H extends Releasable> implements Disposable {
  #handle: H | null;
  readonly #what: string;

  /**
   * `what` names the object in errors ("this <what> has been disposed"). A subclass that must
   * validate its options before the native object exists passes no handle and calls
   * {@link NativeResource.attach} once it has one.
   */
  protected constructor(what: string, handle?: H) {
    this.#what = what;
    this.#handle = handle ?? null;
  }

  /** @internal Gives a subclass its handle, once. */
  protected attach(handle: H): void {
    this.#handle = handle;
  }

  /** @internal The native handle; throws BNN_DISPOSED once disposed. */
  get handle(): H {
    if (this.#handle === null) throw bnnError(`this ${this.#what} has been disposed and can no longer be used`, 'BNN_DISPOSED');
    return this.#handle;
  }

  /** True once {@link dispose} has run. */
  get isDisposed(): boolean {
    return this.#handle === null;
  }

  /** Frees the native object now. Safe to call twice. */
  dispose(): void {
    const handle = this.#handle;
    if (handle === null) return;
    this.#handle = null;
    this.released();
    handle.dispose();
  }

  /** Runs once, when {@link dispose} releases the handle: what a subclass must let go of too. */
  protected released(): void {}

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/**
 * @internal A native resource that async native work uses on a worker thread (a model in a
 * forward or training step, the optimizer a step updates): while that work runs, every other use
 * is refused with BNN_INVALID_ARGUMENT and `busy`'s message, since LibTorch objects are not safe to
 * use from two threads at once.
 */
export abstract class ExclusiveResource<H extends Releasable> extends NativeResource<H> {
  #busy = false;
  readonly #busyMessage: string;

  protected constructor(what: string, busyMessage: string, handle?: H) {
    super(what, handle);
    this.#busyMessage = busyMessage;
  }

  /** @internal The native handle; refused while {@link exclusive} work holds it. */
  override get handle(): H {
    const handle = super.handle;
    if (this.#busy) throw bnnError(this.#busyMessage, 'BNN_INVALID_ARGUMENT');
    return handle;
  }

  /** @internal Runs native work that uses this object on a worker thread, refusing other calls on it until it settles. */
  async exclusive<T>(work: (handle: H) => Promise<T>): Promise<T> {
    const handle = this.handle;
    this.#busy = true;
    try {
      return await work(handle);
    } finally {
      this.#busy = false;
    }
  }
}
