// Loads the golden fixtures written by scripts/golden/generate.py (PyTorch) as tensors.
import assert from 'node:assert/strict';
import path from 'node:path';

import { readSafetensorsSync, toTypedArray } from '../../src/io/safetensors.js';
import { createModel, crossEntropy, Tensor, type ModelConfig } from '../../src/index.js';
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

/**
 * One golden model fixture (scripts/golden/generate.py: a model config, its state, an input batch)
 * against the model built from it: eval logits, train logits, the loss, every parameter's gradient
 * (within 1e-4 of the largest gradient plus 1e-4 relative) and every buffer after the train step.
 * Returns the config, the model's parameter names and PyTorch's gradients for further checks.
 */
export function assertMatchesGolden(name: string, fx: Fixture): { config: ModelConfig; names: string[]; grads: Map<string, Tensor> } {
  const config = JSON.parse(fx.metadata.config!) as ModelConfig;
  using model = createModel(config);
  model.loadStateDict(fx.group('state/'));
  const input = fx.tensors.get('input')!;
  assertCloseScaled(model.eval().forward(input).toFloat32Array(), fx.values('logits_eval'), `${name} logits_eval`);
  const logits = model.train().forward(input);
  assertCloseScaled(logits.toFloat32Array(), fx.values('logits_train'), `${name} logits_train`);
  const loss = crossEntropy(logits, fx.tensors.get('labels')!);
  assertCloseScaled(loss.toFloat32Array(), fx.values('loss'), `${name} loss`);
  loss.backward();
  const grads = fx.group('grad/');
  const params = model.namedParameters();
  assert.deepEqual([...params.keys()].sort(), [...grads.keys()].sort(), `${name}: the same parameter names as PyTorch, one gradient each`);
  let scale = 0;
  for (const g of grads.values()) for (const v of g.toFloat32Array()) scale = Math.max(scale, Math.abs(v));
  for (const [pname, p] of params) {
    assert.ok(p.grad, `${name}: ${pname} has a gradient`);
    const e = grads.get(pname)!.toFloat32Array();
    const a = p.grad.toFloat32Array();
    for (let i = 0; i < a.length; i++) {
      if (!(Math.abs(a[i]! - e[i]!) <= 1e-4 * scale + 1e-4 * Math.abs(e[i]!))) assert.fail(`${name}: grad of ${pname}[${i}] is ${a[i]} but PyTorch gives ${e[i]}`);
    }
  }
  for (const [bname, b] of model.buffers()) assertCloseScaled(b.toFloat32Array(), fx.values(`state_after/${bname}`), `${name} ${bname} after a train step`);
  return { config, names: [...params.keys()], grads };
}
