import assert from 'node:assert/strict';
import { test } from 'node:test';

import { binaryActivation, binaryActivationAsync, cudaAvailable, manualSeed, scope, Tensor, type Device, type DType } from '../src/index.js';
import { binaryActivationReference } from '../src/nn/binarize.js';
import { assertClose, assertThrowsCode } from './support/helpers.js';

const POINTS = [-2, -1, -0.999, -0.5, -0, 0, 0.5, 0.999, 1, 2, -1e30, 1e-30, Infinity, -Infinity];
// 0 (and -0) map to +1 — unlike PyTorch's sign, so outputs are truly binary.
const EXPECTED_FORWARD = [-1, -1, -1, -1, 1, 1, 1, 1, 1, 1, -1, 1, 1, -1];
// Gradient passes only strictly inside (-1, 1): exactly 0 at +-1.
const EXPECTED_GRAD = [0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 0, 0];

test('forward and straight-through gradient at hand-picked points', () => {
  scope(() => {
    const x = Tensor.fromArray(POINTS, [POINTS.length], { requiresGrad: true });
    const y = binaryActivation(x);
    assert.deepEqual([...y.toFloat32Array()], EXPECTED_FORWARD);
    y.sum().backward();
    assert.deepEqual([...x.grad!.toFloat32Array()], EXPECTED_GRAD);
  });
});

test('the incoming gradient is passed through unchanged (not replaced by 1)', () => {
  scope(() => {
    const x = Tensor.fromArray([-0.5, 0.25, 1.5], [3], { requiresGrad: true });
    const upstream = Tensor.fromArray([3, -7, 11], [3]);
    binaryActivation(x).backward(upstream);
    assert.deepEqual([...x.grad!.toFloat32Array()], [3, -7, 0]);
  });
});

test('NaN stays NaN, so a diverging run is not hidden', () => {
  scope(() => {
    const y = binaryActivation(Tensor.fromArray([NaN, 1]));
    const v = y.toFloat32Array();
    assert.ok(Number.isNaN(v[0]));
    assert.equal(v[1], 1);
  });
});

function checkAgainstReference(shape: number[], dtype: DType, device: Device, tolerance: number): void {
  scope(() => {
    const base = Tensor.randn(shape).mul(1.5).to(device, dtype);
    const x = base.detach().clone();
    x.requiresGrad = true;
    const xr = base.detach().clone();
    xr.requiresGrad = true;
    const upstream = Tensor.randn(shape).to(device, dtype);
    const y = binaryActivation(x);
    const yr = binaryActivationReference(xr);
    assert.equal(y.dtype, dtype);
    assert.equal(y.device, device === 'cuda' ? 'cuda:0' : device);
    assert.deepEqual(y.shape, shape);
    assertClose(y.toFloat32Array(), yr.toFloat32Array(), { rtol: 0, atol: tolerance, what: `forward ${dtype}` });
    y.backward(upstream);
    yr.backward(upstream);
    assertClose(x.grad!.toFloat32Array(), xr.grad!.toFloat32Array(), { rtol: 0, atol: 0, what: `gradient ${dtype}` });
  });
}

for (const device of ['cpu', 'cuda'] as const) {
  const skip = device === 'cuda' && !cudaAvailable() ? 'CUDA not available' : false;
  test(`${device}: random tensors match the plain-ATen reference for every floating dtype`, { skip }, () => {
    manualSeed(1);
    for (const dtype of ['float32', 'float64', 'float16', 'bfloat16'] as const) {
      checkAgainstReference([4, 3, 5, 5], dtype, device, 1e-6);
    }
  });

  test(`${device}: large tensors (the multi-threaded path) and odd sizes`, { skip }, () => {
    manualSeed(2);
    checkAgainstReference([3, 64, 33, 17], 'float32', device, 1e-6); // 107,712 elements, not a multiple of any vector width
    checkAgainstReference([1], 'float32', device, 1e-6);
    checkAgainstReference([7], 'float32', device, 1e-6);
  });

  test(`${device}: empty tensors and non-contiguous inputs`, { skip }, () => {
    scope(() => {
      const empty = Tensor.zeros([0, 4], { device, requiresGrad: true });
      const y = binaryActivation(empty);
      assert.deepEqual(y.shape, [0, 4]);
      y.sum().backward();
      const m = Tensor.fromArray([-0.5, 2, 0.25, -3, 0, 0.9], [2, 3], { device });
      const transposed = m.t(); // strided view
      const out = binaryActivation(transposed);
      assert.deepEqual(out.shape, [3, 2]);
      assert.deepEqual([...out.toFloat32Array()], [-1, -1, 1, 1, 1, 1]);
      const x = Tensor.fromArray([-0.5, 2, 0.25, -3, 0, 0.9], [2, 3], { device, requiresGrad: true });
      binaryActivation(x.t()).backward(Tensor.ones([3, 2], { device }));
      assert.deepEqual([...x.grad!.toFloat32Array()], [1, 0, 1, 0, 1, 1]);
    });
  });
}

test('binaryActivationAsync gives the same result off the main thread', async () => {
  await scope(async () => {
    manualSeed(3);
    const x = Tensor.randn([2, 8, 16, 16]);
    const a = binaryActivation(x).toFloat32Array();
    const b = (await binaryActivationAsync(x)).toFloat32Array();
    assert.deepEqual(a, b);
  });
});

test('bad input gives clear errors', () => {
  scope(() => {
    assertThrowsCode(() => binaryActivation(Tensor.ones([3], { dtype: 'int64' })), TypeError, 'BNN_INVALID_TYPE', /floating-point/);
    assertThrowsCode(() => binaryActivation(Tensor.ones([3], { dtype: 'uint8' })), TypeError, 'BNN_INVALID_TYPE', /floating-point/);
    assertThrowsCode(() => binaryActivation(new Float32Array([1]) as unknown as Tensor), TypeError, 'BNN_INVALID_TYPE', /Tensor/);
    assertThrowsCode(() => binaryActivation(undefined as unknown as Tensor), TypeError, 'BNN_INVALID_TYPE', /Tensor/);
    const t = Tensor.ones([2]);
    t.dispose();
    assertThrowsCode(() => binaryActivation(t), Error, 'BNN_DISPOSED', /disposed/);
  });
});
