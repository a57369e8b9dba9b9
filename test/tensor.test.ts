import assert from 'node:assert/strict';
import { test } from 'node:test';

import { cudaAvailable, manualSeed, scope, Tensor } from '../src/index.js';
import { assertClose } from './support/helpers.js';

test('float32 data round-trips with its shape', () => {
  using t = Tensor.fromArray(new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3]);
  assert.deepEqual(t.shape, [2, 3]);
  assert.equal(t.dtype, 'float32');
  assert.equal(t.device, 'cpu');
  assert.equal(t.size, 6);
  assert.deepEqual([...t.toFloat32Array()], [1, 2, 3, 4, 5, 6]);
});

test('int64 labels, uint8, int32 and float64 round-trip exactly', () => {
  scope(() => {
    const labels = Tensor.fromArray([0, 9, 3, 2 ** 40], [4], { dtype: 'int64' });
    assert.equal(labels.dtype, 'int64');
    assert.deepEqual([...(labels.toTypedArray() as BigInt64Array)], [0n, 9n, 3n, 2n ** 40n]);
    const big = Tensor.fromArray(new BigInt64Array([-(2n ** 62n), 7n]));
    assert.deepEqual([...(big.toTypedArray() as BigInt64Array)], [-(2n ** 62n), 7n]);
    const bytes = Tensor.fromArray(new Uint8Array([0, 255, 128]), [3]);
    assert.equal(bytes.dtype, 'uint8');
    assert.deepEqual([...(bytes.toTypedArray() as Uint8Array)], [0, 255, 128]);
    const ints = Tensor.fromArray(new Int32Array([-5, 6]), [2, 1], { dtype: 'int64' });
    assert.equal(ints.dtype, 'int64');
    assert.deepEqual([...ints.toFloat32Array()], [-5, 6]);
    const doubles = Tensor.fromArray(new Float64Array([Math.PI, -1e300]));
    assert.equal(doubles.dtype, 'float64');
    assert.deepEqual([...(doubles.toTypedArray() as Float64Array)], [Math.PI, -1e300]);
  });
});

test('the tensor copies the data: later writes to the array do not change it', () => {
  const data = new Float32Array([1, 2, 3]);
  using t = Tensor.fromArray(data);
  data[0] = 100;
  assert.deepEqual([...t.toFloat32Array()], [1, 2, 3]);
  const out = t.toFloat32Array();
  out[1] = 100;
  assert.deepEqual([...t.toFloat32Array()], [1, 2, 3]);
});

test('typed-array views with an offset are read from the right place', () => {
  const buffer = new Float32Array([9, 9, 1, 2, 3, 9]);
  using t = Tensor.fromArray(buffer.subarray(2, 5));
  assert.deepEqual([...t.toFloat32Array()], [1, 2, 3]);
});

test('factories: zeros, ones, rand, randn (seeded), empty and scalar shapes', () => {
  scope(() => {
    assert.deepEqual([...Tensor.zeros([2, 2]).toFloat32Array()], [0, 0, 0, 0]);
    assert.deepEqual([...Tensor.ones([3], { dtype: 'int64' }).toTypedArray()], [1n, 1n, 1n]);
    const r = Tensor.rand([1000]).toFloat32Array();
    assert.ok(r.every((v) => v >= 0 && v < 1));
    manualSeed(7);
    const a = Tensor.randn([50]).toFloat32Array();
    manualSeed(7);
    const b = Tensor.randn([50]).toFloat32Array();
    assert.deepEqual(a, b);
    const mean = a.reduce((x, y) => x + y, 0) / a.length;
    assert.ok(Math.abs(mean) < 0.6);
    assert.deepEqual(Tensor.zeros([0, 3]).shape, [0, 3]);
    assert.equal(Tensor.zeros([0, 3]).toFloat32Array().length, 0);
    const s = Tensor.fromArray([4.5], []);
    assert.deepEqual(s.shape, []);
    assert.equal(s.item(), 4.5);
  });
});

test('elementwise ops and reductions match plain arithmetic', () => {
  scope(() => {
    const a = Tensor.fromArray([1, -2, 3, -4], [2, 2]);
    const b = Tensor.fromArray([0.5, 0.5, 2, 2], [2, 2]);
    assert.deepEqual([...a.add(b).toFloat32Array()], [1.5, -1.5, 5, -2]);
    assert.deepEqual([...a.sub(1).toFloat32Array()], [0, -3, 2, -5]);
    assert.deepEqual([...a.mul(b).toFloat32Array()], [0.5, -1, 6, -8]);
    assert.deepEqual([...a.div(2).toFloat32Array()], [0.5, -1, 1.5, -2]);
    assert.deepEqual([...a.abs().toFloat32Array()], [1, 2, 3, 4]);
    assert.deepEqual([...a.neg().toFloat32Array()], [-1, 2, -3, 4]);
    assert.deepEqual([...a.relu().toFloat32Array()], [1, 0, 3, 0]);
    assert.deepEqual([...Tensor.fromArray([-1, 0, 2]).sign().toFloat32Array()], [-1, 0, 1]);
    assert.equal(a.sum().item(), -2);
    assert.equal(a.mean().item(), -0.5);
    assert.equal(a.max().item(), 3);
    assert.deepEqual([...a.matmul(b).toFloat32Array()], [-3.5, -3.5, -6.5, -6.5]);
    assert.deepEqual(a.reshape([-1]).shape, [4]);
    assert.deepEqual([...a.t().toFloat32Array()], [1, 3, -2, -4]);
  });
});

test('autograd: requiresGrad, backward and grad', () => {
  scope(() => {
    const x = Tensor.fromArray([1, 2, 3], [3], { requiresGrad: true });
    assert.equal(x.requiresGrad, true);
    assert.equal(x.grad, null);
    x.square().sum().backward();
    assertClose(x.grad!.toFloat32Array(), [2, 4, 6]);
    const w = Tensor.fromArray([0.5, -1], [2]);
    assert.equal(w.requiresGrad, false);
    w.requiresGrad = true;
    w.mul(3).sum().backward();
    assertClose(w.grad!.toFloat32Array(), [3, 3]);
  });
});

test('backwardAsync runs off the main thread and gives the same gradient', async () => {
  await scope(async () => {
    const x = Tensor.fromArray([1, -2], [2], { requiresGrad: true });
    const y = x.mul(x).sum();
    let ticked = false;
    const tick = new Promise<void>((resolve) => setImmediate(() => { ticked = true; resolve(); }));
    await y.backwardAsync();
    await tick;
    assert.ok(ticked);
    assertClose(x.grad!.toFloat32Array(), [2, -4]);
  });
});

test('to(cpu) copies and converts dtype', () => {
  scope(() => {
    const x = Tensor.fromArray([1.5, 2.5]);
    const y = x.to('cpu', 'float64');
    assert.equal(y.dtype, 'float64');
    assert.deepEqual([...y.toFloat32Array()], [1.5, 2.5]);
    const h = x.to('cpu', 'float16');
    assert.equal(h.dtype, 'float16');
    assert.deepEqual([...h.toFloat32Array()], [1.5, 2.5]);
  });
});

test('CUDA tensors round-trip and compute', { skip: !cudaAvailable() && 'CUDA not available' }, () => {
  scope(() => {
    const x = Tensor.fromArray([1, -2, 3], [3], { device: 'cuda' });
    assert.equal(x.device, 'cuda:0');
    assert.deepEqual([...x.mul(2).toFloat32Array()], [2, -4, 6]);
    const back = x.to('cpu');
    assert.equal(back.device, 'cpu');
    const r = Tensor.randn([4, 4], { device: 'cuda:0', requiresGrad: true });
    r.square().sum().backward();
    assertClose(r.grad!.toFloat32Array(), [...r.toFloat32Array()].map((v) => 2 * v));
  });
});
