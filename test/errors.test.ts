import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';

import { cudaAvailable, isBnnError, scope, Tensor } from '../src/index.js';
import { native, packageRoot } from '../src/binding/native.js';
import { assertThrowsCode } from './support/helpers.js';

test('wrong shapes are RangeErrors naming both sizes', () => {
  assertThrowsCode(() => Tensor.fromArray([1, 2, 3], [2, 2]), RangeError, 'BNN_INVALID_ARGUMENT', /holds 4 elements but the data has 3/);
  assertThrowsCode(() => Tensor.zeros([2, -1]), RangeError, 'BNN_INVALID_ARGUMENT', /shape\[1\] must not be negative/);
  assertThrowsCode(() => Tensor.zeros([2.5]), TypeError, 'BNN_INVALID_TYPE', /shape\[0\] must be an integer/);
  assertThrowsCode(() => Tensor.zeros('3' as unknown as number[]), TypeError, 'BNN_INVALID_TYPE', /shape/);
  scope(() => {
    const t = Tensor.ones([2, 3]);
    assertThrowsCode(() => t.reshape([4, -1]), Error, 'BNN_TORCH_ERROR', /shape '\[4, -1\]' is invalid/);
    assertThrowsCode(() => t.matmul(Tensor.ones([2, 3])), Error, 'BNN_TORCH_ERROR', /cannot be multiplied/);
    assertThrowsCode(() => t.add(Tensor.ones([4])), Error, 'BNN_TORCH_ERROR', /must match the size/);
    assertThrowsCode(() => t.item(), RangeError, 'BNN_INVALID_ARGUMENT', /exactly one element/);
    assertThrowsCode(() => t.backward(), RangeError, 'BNN_INVALID_ARGUMENT', /does not require gradients/);
  });
});

test('wrong array and dtype types are TypeErrors', () => {
  assertThrowsCode(() => Tensor.fromArray(new Int16Array([1, 2]) as unknown as Float32Array), TypeError, 'BNN_INVALID_TYPE', /Int16Array/);
  assertThrowsCode(() => Tensor.fromArray({ length: 2 } as unknown as number[]), TypeError, 'BNN_INVALID_TYPE');
  assertThrowsCode(() => Tensor.fromArray(['a'] as unknown as number[]), TypeError, 'BNN_INVALID_TYPE', /data\[0\]/);
  assertThrowsCode(() => Tensor.fromArray([1.5], [1], { dtype: 'int64' }), TypeError, 'BNN_INVALID_TYPE', /not an integer/);
  assertThrowsCode(() => Tensor.zeros([2], { dtype: 'float8' as never }), TypeError, 'BNN_INVALID_TYPE', /unknown dtype/);
  assertThrowsCode(() => Tensor.randn([2], { dtype: 'int64' }), TypeError, 'BNN_INVALID_TYPE', /floating-point dtype/);
  assertThrowsCode(() => Tensor.zeros([2], { dtype: 'int64', requiresGrad: true }), TypeError, 'BNN_INVALID_TYPE', /floating-point/);
  scope(() => {
    const labels = Tensor.ones([2], { dtype: 'int64' });
    assertThrowsCode(() => { labels.requiresGrad = true; }, TypeError, 'BNN_INVALID_TYPE', /floating-point/);
    assertThrowsCode(() => Tensor.ones([2]).add('x' as unknown as number), TypeError, 'BNN_INVALID_TYPE', /Tensor or a number/);
  });
});

test('disposed tensors throw a clear error on every use, and dispose twice is harmless', () => {
  const t = Tensor.ones([2]);
  t.dispose();
  t.dispose();
  assert.equal(t.isDisposed, true);
  assert.equal(String(t), 'Tensor(disposed)');
  for (const use of [() => t.shape, () => t.toFloat32Array(), () => t.add(1), () => t.grad, () => Tensor.ones([2]).add(t)]) {
    assertThrowsCode(use, Error, 'BNN_DISPOSED', /disposed/);
  }
});

test('unknown device strings are refused before anything is allocated', () => {
  for (const device of ['gpu', 'cuda:', 'cuda:x', 'cpu:1', 'CUDA', '', 'cuda:-1']) {
    assertThrowsCode(() => Tensor.zeros([2], { device: device as 'cpu' }), RangeError, 'BNN_INVALID_ARGUMENT', /unknown device/);
  }
  assertThrowsCode(() => Tensor.zeros([2], { device: 3 as unknown as 'cpu' }), TypeError, 'BNN_INVALID_TYPE');
});

test('asking for CUDA where it is absent says so and never falls back', { skip: cudaAvailable() && 'CUDA is available here' }, () => {
  assertThrowsCode(() => Tensor.zeros([2], { device: 'cuda' }), Error, 'BNN_CUDA_UNAVAILABLE', /CUDA is not available.*never falls back/);
  using t = Tensor.ones([2]);
  assertThrowsCode(() => t.to('cuda:1'), Error, 'BNN_CUDA_UNAVAILABLE', /'cuda:1'/);
});

test('a CUDA index beyond the visible devices is refused', { skip: !cudaAvailable() && 'CUDA not available' }, () => {
  assertThrowsCode(() => Tensor.zeros([2], { device: 'cuda:999' }), Error, 'BNN_CUDA_UNAVAILABLE', /does not exist/);
});

test('the raw binding survives garbage arguments with TypeErrors, never a crash', () => {
  const raw = native();
  const garbage: unknown[] = [undefined, null, 1, 'x', {}, [], new Float32Array(2), () => 0, Symbol('s'), 10n];
  for (const g of garbage) {
    assert.throws(() => raw.tensorUnary(g as never, 'neg'), TypeError);
    assert.throws(() => raw.binaryActivation(g as never), TypeError);
    if (!Array.isArray(g)) assert.throws(() => raw.tensorCreate('zeros', g as never, undefined, undefined, false), TypeError);
    if (!ArrayBuffer.isView(g)) assert.throws(() => raw.tensorFromData(g as never, [2], undefined, undefined, false), TypeError);
  }
  assert.throws(() => raw.tensorCreate('zeros', [1e7, 1e7], undefined, undefined, false), RangeError);
  assert.throws(() => raw.tensorCreate('nonsense' as never, [1], undefined, undefined, false), RangeError);
  const h = raw.tensorCreate('ones', [2], undefined, undefined, false);
  assert.throws(() => raw.tensorUnary(h, 'explode' as never), RangeError);
  assert.throws(() => raw.tensorBinary(h, h, 'explode' as never), RangeError);
  assert.throws(() => h.to(5 as never), TypeError);
  const bare = new raw.TensorHandle();
  assert.throws(() => bare.shape(), /disposed/);
  h.dispose();
});

test('isBnnError recognises native and TypeScript errors', () => {
  try {
    Tensor.zeros([-1]);
  } catch (e) {
    assert.ok(isBnnError(e));
  }
  assert.ok(!isBnnError(new Error('x')));
});

test('a process hammered with bad calls exits normally (no abort, no segfault)', () => {
  const script = `
    import { Tensor, binaryActivation } from ${JSON.stringify(path.join(packageRoot, 'src/index.ts'))};
    let caught = 0;
    const bad = [
      () => Tensor.fromArray([1, 2], [3]),
      () => binaryActivation(Tensor.ones([2], { dtype: 'int32' })),
      () => Tensor.zeros([2], { device: 'cuda:7' }),
      () => Tensor.ones([2, 2]).matmul(Tensor.ones([3, 3])),
      () => { const t = Tensor.ones([1]); t.dispose(); t.item(); },
      () => Tensor.ones([3]).backward(),
    ];
    for (let i = 0; i < 200; i++) for (const f of bad) { try { f(); } catch { caught++; } }
    console.log('caught', caught);
  `;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: packageRoot,
    encoding: 'utf8',
  });
  assert.equal(r.signal, null, `child died by signal ${r.signal}: ${r.stderr}`);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /caught 1200/);
});
