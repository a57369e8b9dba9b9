// Loads the golden fixtures written by scripts/golden/generate.py (PyTorch) as tensors.
import path from 'node:path';

import { readSafetensorsSync, toTypedArray } from '../../src/io/safetensors.js';
import { Tensor } from '../../src/index.js';
import { packageRoot } from '../../src/binding/native.js';

export interface Fixture {
  file: string;
  metadata: Record<string, string>;
  /** Tensors by key (`state/conv1.weight`, `input`, ...). Dispose with disposeAll. */
  tensors: Map<string, Tensor>;
  /** Raw float values by key, for comparisons. */
  values(key: string): Float32Array;
  /** Sub-map of a prefix (`state/`) with the prefix removed. */
  group(prefix: string): Map<string, Tensor>;
}

export function loadFixture(name: string): Fixture {
  const file = path.join(packageRoot, 'test', 'fixtures', `${name}.safetensors`);
  const raw = readSafetensorsSync(file);
  const tensors = new Map<string, Tensor>();
  for (const [key, t] of raw.tensors) {
    const array = toTypedArray(t);
    if (!(array instanceof Float32Array || array instanceof BigInt64Array)) throw new Error(`${file}: ${key} has dtype ${t.dtype}`);
    tensors.set(key, Tensor.fromArray(array, t.shape));
  }
  return {
    file,
    metadata: raw.metadata,
    tensors,
    values: (key) => {
      const t = tensors.get(key);
      if (!t) throw new Error(`${file} has no tensor '${key}'`);
      return t.toFloat32Array();
    },
    group: (prefix) =>
      new Map([...tensors].filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v])),
  };
}

/** |a - b| <= rel * max|b| + rtol * |b| elementwise, with a message naming the worst element. */
export function assertCloseScaled(actual: Float32Array, expected: Float32Array, what: string, rel = 1e-4, rtol = 1e-4): void {
  if (actual.length !== expected.length) throw new Error(`${what}: length ${actual.length} != ${expected.length}`);
  let scale = 0;
  for (const v of expected) scale = Math.max(scale, Math.abs(v));
  for (let i = 0; i < actual.length; i++) {
    const tol = rel * scale + rtol * Math.abs(expected[i]!);
    if (!(Math.abs(actual[i]! - expected[i]!) <= tol)) {
      throw new Error(`${what}: element ${i} is ${actual[i]} but PyTorch gives ${expected[i]} (tolerance ${tol.toExponential(2)})`);
    }
  }
}
