// Every instruction-set path of the CPU kernels runs the kernel tests: this machine's best path
// runs them in the normal suite; here they run again with BNN_CPU_ISA capping the kernels at each
// lower path this CPU has (AVX2, the baseline), in child processes (the choice is made once per
// process). The children also check that the cap took effect.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { libtorchInfo } from '../src/index.js';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const ORDER = ['baseline', 'avx2', 'avx512'] as const;
const best = libtorchInfo().cpuIsaSupported;
const lower = ORDER.slice(0, ORDER.indexOf(best));
// The suites whose arithmetic goes through the multiversioned kernels: the binary activation and
// weight, the fused sign -> conv and PReLU (+ residual add) nodes, against PyTorch's golden fixtures.
const SUITES = ['test/binary-activation.test.ts', 'test/model-golden.test.ts', 'test/model.test.ts'];

test('BNN_CPU_ISA caps the kernels and is reported', () => {
  assert.ok(ORDER.includes(libtorchInfo().cpuIsa));
  const env = process.env.BNN_CPU_ISA;
  if (env && ORDER.includes(env as (typeof ORDER)[number]) && ORDER.indexOf(env as (typeof ORDER)[number]) <= ORDER.indexOf(best)) {
    assert.equal(libtorchInfo().cpuIsa, env);
  } else if (!env) {
    assert.equal(libtorchInfo().cpuIsa, best, 'without the variable the best path runs');
  }
});

for (const isa of process.env.BNN_CPU_ISA_CHILD ? [] : lower) {
  test(`the kernel suites pass on the ${isa} path`, { timeout: 600_000 }, () => {
    // Without NODE_TEST_CONTEXT, which would make the child report to this runner instead of stdout.
    const { NODE_TEST_CONTEXT: _, ...env } = process.env;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=tap', '--test-concurrency=1', ...SUITES, 'test/cpu-isa.test.ts'], {
      cwd: root,
      env: { ...env, BNN_CPU_ISA: isa, BNN_CPU_ISA_CHILD: '1' },
      encoding: 'utf8',
    });
    const summary = (r.stdout.match(/^# (tests|pass|fail) \d+/gm) ?? []).join(', ');
    assert.equal(r.status, 0, `${isa}: ${summary}\n${r.stdout.split('\n').filter((l) => l.startsWith('not ok')).join('\n')}\n${r.stderr.slice(-2000)}`);
    assert.match(r.stdout, /^# fail 0$/m);
    assert.ok(Number(/^# tests (\d+)$/m.exec(r.stdout)?.[1]) > 20, `${isa}: the suites ran (${summary})`);
  });
}
