// Shared test helpers.
import assert from 'node:assert/strict';

/** Asserts two arrays are elementwise close: |a - b| <= atol + rtol * |b| (NaN equals NaN). */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  { rtol = 1e-5, atol = 1e-6, what = 'values' }: { rtol?: number; atol?: number; what?: string } = {},
): void {
  assert.equal(actual.length, expected.length, `${what}: length ${actual.length} != ${expected.length}`);
  let worst = -1;
  let worstErr = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!;
    const b = expected[i]!;
    if (Number.isNaN(a) && Number.isNaN(b)) continue;
    const err = Math.abs(a - b) - (atol + rtol * Math.abs(b));
    if (!(err <= 0) && (worst < 0 || err > worstErr)) {
      worst = i;
      worstErr = err;
    }
  }
  if (worst >= 0) {
    assert.fail(`${what}: element ${worst} is ${actual[worst]} but expected ${expected[worst]} (rtol ${rtol}, atol ${atol})`);
  }
}

/** Asserts `fn` throws an error of `type` whose code and message match. */
export function assertThrowsCode(
  fn: () => unknown,
  type: new (...args: never[]) => Error,
  code: string,
  message?: RegExp,
): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof type, `expected ${type.name}, got ${e instanceof Error ? e.constructor.name : typeof e}: ${String(e)}`);
    assert.equal((e as { code?: string }).code, code, `code of: ${(e as Error).message}`);
    if (message) assert.match((e as Error).message, message);
    assert.doesNotMatch((e as Error).message, /Exception raised from|frame #\d/, 'no C++ backtrace in messages');
    return true;
  });
}
