// The native model against PyTorch itself: same weights and input must give the same logits,
// loss, gradients and BatchNorm statistics (fixtures from scripts/golden/generate.py).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { createModel, crossEntropy, scope, type ModelConfig } from '../src/index.js';
import { assertCloseScaled, loadFixture } from './support/fixtures.js';

const CASES = [
  'model-small-c1-stage1',
  'model-small-c1-stage2',
  'model-odd-c3-stage1',
  'model-odd-c3-stage2',
  'model-classic-imagenet-stage1',
  'model-classic-imagenet-stage2',
  'model-relu-c1-stage1',
  // The tricks ablation's switches (blockOrder, blockActivation, downsample).
  'model-bireal-relu-strided-stage1',
  'model-bireal-relu-strided-stage2',
  'model-classic-none-binary-stage1',
  'model-classic-none-binary-stage2',
  'model-bireal-classic-prelu-binary-stage1',
  'model-bireal-classic-prelu-binary-stage2',
];

for (const name of CASES) {
  test(`${name}: eval logits, train logits, loss, every gradient and running stat match PyTorch`, () => {
    scope(() => {
      const fx = loadFixture(name);
      const config = JSON.parse(fx.metadata.config!) as ModelConfig;
      using model = createModel(config);
      model.loadStateDict(fx.group('state/'));

      model.eval();
      const input = fx.tensors.get('input')!;
      assertCloseScaled(model.forward(input).toFloat32Array(), fx.values('logits_eval'), `${name} logits_eval`);

      model.train();
      const logits = model.forward(input);
      assertCloseScaled(logits.toFloat32Array(), fx.values('logits_train'), `${name} logits_train`);
      const loss = crossEntropy(logits, fx.tensors.get('labels')!);
      assertCloseScaled(loss.toFloat32Array(), fx.values('loss'), `${name} loss`);
      loss.backward();

      const grads = fx.group('grad/');
      const params = model.namedParameters();
      assert.equal(params.size, grads.size, 'one gradient per parameter');
      let scale = 0;
      for (const g of grads.values()) for (const v of g.toFloat32Array()) scale = Math.max(scale, Math.abs(v));
      for (const [pname, p] of params) {
        const expected = grads.get(pname);
        assert.ok(expected, `fixture has a gradient for ${pname}`);
        const actual = p.grad;
        assert.ok(actual, `${pname} has a gradient`);
        const e = expected.toFloat32Array();
        const a = actual.toFloat32Array();
        for (let i = 0; i < a.length; i++) {
          const tol = 1e-4 * scale + 1e-4 * Math.abs(e[i]!);
          if (!(Math.abs(a[i]! - e[i]!) <= tol)) {
            assert.fail(`${name}: grad of ${pname}[${i}] is ${a[i]} but PyTorch gives ${e[i]}`);
          }
        }
      }
      for (const [bname, b] of model.buffers()) {
        assertCloseScaled(b.toFloat32Array(), fx.values(`state_after/${bname}`), `${name} ${bname} after a train step`);
      }
    });
  });
}
