// The CUDA kernels' bodies where no GPU is: test/native/cuda-emu.cpp runs them under an emulation
// of CUDA's execution model (blocks of fiber threads, barriers, shared memory, launch limits; three
// schedules per launch, so a missing __syncthreads shows) against ATen computations of their
// contracts, under AddressSanitizer and UBSan. On a GPU the CUDA tests (fused.test.ts and others)
// run the same kernels for real.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';

import { packageRoot } from '../src/binding/native.js';
import { need } from './support/images.js';

const SUITES = ['emulator', 'binary_activation', 'sign_code', 'prelu', 'bn_sign', 'binary_weight', 'large_grids'];

test('CUDA kernels on a CPU emulation of CUDA: every kernel, dtype and schedule agrees with ATen', { timeout: 900_000 }, async (t) => {
  const gxx = spawnSync('sh', ['-c', 'command -v g++']).status === 0;
  if (!need(t, gxx ? undefined : 'g++ is not available')) return;
  const r = spawnSync('sh', [path.join(packageRoot, 'test', 'native', 'run-cuda-emu.sh')], { encoding: 'utf8', timeout: 900_000, maxBuffer: 64 << 20 });
  const out = `${r.stdout}\n${r.stderr}`;
  assert.equal(r.status, 0, out.slice(-4000));
  // Every suite ran and checked something: a suite that silently checks nothing must not pass.
  for (const suite of SUITES) {
    const m = new RegExp(`cuda-emu: ${suite}\\s+(\\d+) checks`).exec(out);
    assert.ok(m && Number(m[1]) > 0, `suite ${suite} ran no checks:\n${out.slice(-2000)}`);
  }
  assert.match(out, /cuda-emu: \d+ checks passed/);
});
