import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Adam, createModel, scope, Tensor } from '../src/index.js';
import { assertClose } from './support/helpers.js';
import { loadFixture } from './support/fixtures.js';

for (const mode of ['coupled', 'decoupled'] as const) {
  test(`Adam (${mode} weight decay) matches torch.optim step by step`, () => {
    scope(() => {
      const fx = loadFixture(`adam-${mode}`);
      const cfg = JSON.parse(fx.metadata.config!) as { lr: number; betas: [number, number]; eps: number; weightDecay: number; steps: number };
      const params = [0, 1].map((i) => {
        const p = fx.tensors.get(`param/${i}`)!.clone();
        p.requiresGrad = true;
        return p;
      });
      const adam = new Adam(params, { lr: cfg.lr, betas: cfg.betas, eps: cfg.eps, weightDecay: cfg.weightDecay, decoupled: mode === 'decoupled' });
      for (let step = 1; step <= cfg.steps; step++) {
        adam.zeroGrad();
        // d/dp sum(p * g) = g: sets each gradient to the fixture's.
        params.forEach((p, i) => p.mul(fx.tensors.get(`grad/${step}/${i}`)!).sum().backward());
        adam.step();
        params.forEach((p, i) =>
          assertClose(p.toFloat32Array(), fx.values(`after/${step}/${i}`), { rtol: 1e-6, atol: 1e-7, what: `${mode} step ${step} param ${i}` }),
        );
      }
      adam.dispose();
    });
  });
}

test('noDecayOn puts BatchNorm, PReLU and biases in a group without decay; the default decays everything', () => {
  scope(() => {
    using model = createModel({ inChannels: 1, width: 4 });
    using all = new Adam(model.namedParameters(), { weightDecay: 1e-5 });
    assert.deepEqual(all.noDecayParameters, []);
    using some = new Adam(model.namedParameters(), { weightDecay: 1e-5, noDecayOn: ['bn', 'prelu', 'bias'] });
    const names = some.noDecayParameters;
    for (const n of ['bn1.weight', 'bn1.bias', 'layer1.0.bn.weight', 'layer1.0.prelu.weight', 'layer2.0.downsample.1.weight', 'fc.bias']) {
      assert.ok(names.includes(n), `${n} has no decay`);
    }
    for (const n of ['conv1.weight', 'layer1.0.conv.weight', 'layer2.0.downsample.0.weight', 'fc.weight']) {
      assert.ok(!names.includes(n), `${n} keeps decay`);
    }
  });
});

test('lr get/set, state save/load round trip', () => {
  scope(() => {
    const p = Tensor.fromArray([1, 2, 3], [3], { requiresGrad: true });
    using adam = new Adam([p], { lr: 0.1 });
    assert.equal(adam.lr, 0.1);
    adam.lr = 0.05;
    assert.equal(adam.lr, 0.05);
    assert.equal(adam.stateDict().size, 0);
    p.square().sum().backward();
    adam.step();
    const state = adam.stateDict();
    assert.deepEqual([...state.keys()].sort(), ['param.0.exp_avg', 'param.0.exp_avg_sq', 'param.0.step']);
    assert.equal(state.get('param.0.step')!.item(), 1);
    const q = Tensor.fromArray([1, 2, 3], [3], { requiresGrad: true });
    using other = new Adam([q], { lr: 0.05 });
    other.loadStateDict(state);
    assert.deepEqual(other.stateDict().get('param.0.exp_avg')!.toFloat32Array(), state.get('param.0.exp_avg')!.toFloat32Array());
    assert.throws(() => { adam.lr = -1; }, RangeError);
  });
});

test('bad optimizer options and parameters are refused', () => {
  scope(() => {
    const p = Tensor.fromArray([1], [1], { requiresGrad: true });
    assert.throws(() => new Adam([p], { lr: 0 }), /lr must be a positive number/);
    assert.throws(() => new Adam([p], { betas: [1, 0.9] }), /betas\[0\] must be a number in \[0, 1\), got 1/);
    assert.throws(() => new Adam([p], { weightDecay: -1 }), /weightDecay must be a number >= 0, got -1/);
    assert.throws(() => new Adam([p], { noDecayOn: ['conv' as never] }), /unknown kind 'conv'/);
    assert.throws(() => new Adam([Tensor.ones([2])]), /not a leaf tensor that requires gradients/);
    assert.throws(() => new Adam('x' as never), TypeError);
  });
});
