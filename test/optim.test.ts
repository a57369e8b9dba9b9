import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Adam, createModel, scope, SGD, Tensor } from '../src/index.js';
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
    // RPReLU's shifts count as biases too.
    using rprelu = createModel({ inChannels: 1, width: 4, blockActivation: 'rprelu' });
    const shifts = [...rprelu.namedParameters().keys()].filter((n) => /shift_(in|out)$/.test(n));
    assert.ok(shifts.length > 0);
    using rpBias = new Adam(rprelu.namedParameters(), { weightDecay: 1e-5, noDecayOn: ['bias'] });
    for (const n of shifts) assert.ok(rpBias.noDecayParameters.includes(n), `${n} has no decay under 'bias'`);
    // RSign's thresholds count as biases (both block kinds' names).
    for (const doubleSkip of [true, false]) {
      using rsign = createModel({ inChannels: 1, width: 4, learnableThresholds: true, doubleSkip });
      const thresholds = [...rsign.namedParameters().keys()].filter((n) => n.includes('sign_threshold'));
      assert.equal(thresholds.length, 16, 'one per binary conv');
      using biasOnly = new Adam(rsign.namedParameters(), { weightDecay: 1e-5, noDecayOn: ['bias'] });
      for (const n of thresholds) assert.ok(biasOnly.noDecayParameters.includes(n), `${n} has no decay under 'bias'`);
      using bnOnly = new Adam(rsign.namedParameters(), { weightDecay: 1e-5, noDecayOn: ['bn'] });
      for (const n of thresholds) assert.ok(!bnOnly.noDecayParameters.includes(n), `${n} keeps decay without 'bias'`);
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

test('a parameter that never had a gradient has no state, and a state without it loads (Adam, SGD); partial or foreign entries are refused and change nothing', () => {
  scope(() => {
    for (const make of [(ps: Tensor[]) => new Adam(ps, { lr: 0.1 }), (ps: Tensor[]) => new SGD(ps, { lr: 0.1, momentum: 0.9 })]) {
      const p = Tensor.fromArray([1, 2, 3], [3], { requiresGrad: true });
      const q = Tensor.fromArray([4, 5], [2], { requiresGrad: true });
      using opt = make([p, q]);
      p.square().sum().backward(); // q takes no part: no gradient, no state
      opt.step();
      const state = opt.stateDict();
      assert.ok([...state.keys()].every((k) => k.startsWith('param.0.')), [...state.keys()].join(', '));
      const p2 = Tensor.fromArray(p.toFloat32Array(), [3], { requiresGrad: true }); // where p is now
      const q2 = Tensor.fromArray([4, 5], [2], { requiresGrad: true });
      using resumed = make([p2, q2]);
      resumed.loadStateDict(state);
      assert.deepEqual([...resumed.stateDict().keys()].sort(), [...state.keys()].sort());
      // Both go on the same way, q now included.
      opt.zeroGrad();
      resumed.zeroGrad();
      for (const [a, b] of [[p, q], [p2, q2]] as const) a.square().sum().add(b.square().sum()).backward();
      opt.step();
      resumed.step();
      assert.deepEqual(p2.toFloat32Array(), p.toFloat32Array());
      assert.deepEqual(q2.toFloat32Array(), q.toFloat32Array());
      const before = [...resumed.stateDict()].map(([k, t]) => [k, [...t.toFloat32Array()]]);
      const firstKey = [...state.keys()].sort()[0]!;
      const partial = new Map([...state].filter(([k]) => k !== firstKey));
      const refuse = (s: Map<string, Tensor>, message: RegExp) =>
        assert.throws(() => resumed.loadStateDict(s), (e: Error & { code?: string }) => e.code === 'BNN_INVALID_ARGUMENT' && message.test(e.message), String(message));
      if (partial.size > 0) refuse(partial, new RegExp(`missing '${firstKey.replace(/\./g, '\\.')}'`));
      refuse(new Map([...state, ['param.2.step', Tensor.fromArray([1], [])]]), /'param\.2\.step', which belongs to no parameter/);
      refuse(new Map([...state].map(([k, t]) => [k, k.endsWith('.step') ? t : Tensor.fromArray([1, 2], [2])])), /wrong shape/);
      // Adam's step count: a whole number >= 0 (its bias correction divides by 1 - beta^step).
      if (state.has('param.0.step')) {
        for (const bad of [-1, 2.5, NaN, Infinity]) {
          refuse(new Map([...state].map(([k, t]) => [k, k.endsWith('.step') ? Tensor.fromArray([bad], [], { dtype: 'float64' }) : t])), /'param\.0\.step' must be a whole number of steps >= 0/);
        }
      }
      assert.deepEqual([...resumed.stateDict()].map(([k, t]) => [k, [...t.toFloat32Array()]]), before, 'a refused state changes nothing');
    }
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

for (const mode of ['momentum', 'nesterov', 'plain'] as const) {
  test(`SGD (${mode}) matches torch.optim.SGD step by step, with a decay group and a no-decay group`, () => {
    scope(() => {
      const fx = loadFixture('sgd');
      const cfg = JSON.parse(fx.metadata.config!) as { lr: number; weightDecay: number; steps: number; cases: Record<string, { momentum: number; nesterov: boolean }> };
      const hp = cfg.cases[mode]!;
      // fc.weight keeps the decay, fc.bias is in the no-decay group (the fixture's two groups).
      const names = ['fc.weight', 'fc.bias'];
      const params = names.map((_, i) => {
        const p = fx.tensors.get(`param/${i}`)!.clone();
        p.requiresGrad = true;
        return p;
      });
      using sgd = new SGD(new Map(names.map((n, i) => [n, params[i]!])), { lr: cfg.lr, momentum: hp.momentum, nesterov: hp.nesterov, weightDecay: cfg.weightDecay, noDecayOn: ['bias'] });
      assert.equal(sgd.kind, 'sgd');
      assert.deepEqual(sgd.noDecayParameters, ['fc.bias']);
      for (let step = 1; step <= cfg.steps; step++) {
        sgd.zeroGrad();
        params.forEach((p, i) => p.mul(fx.tensors.get(`grad/${step}/${i}`)!).sum().backward());
        sgd.step();
        const state = sgd.stateDict();
        params.forEach((p, i) => {
          assertClose(p.toFloat32Array(), fx.values(`${mode}/after/${step}/${i}`), { rtol: 1e-6, atol: 1e-7, what: `${mode} step ${step} param ${i}` });
          if (hp.momentum) assertClose(state.get(`${names[i]}.momentum_buffer`)!.toFloat32Array(), fx.values(`${mode}/momentum_buffer/${step}/${i}`), { rtol: 1e-6, atol: 1e-7, what: `${mode} step ${step} buffer ${i}` });
        });
        assert.equal(state.size, hp.momentum ? 2 : 0, 'SGD without momentum keeps no state');
      }
    });
  });
}

test('SGD: state round trip resumes exactly; the other kind of state and bad options are refused', () => {
  scope(() => {
    const start = [0.5, -1, 2];
    const grads = [[1, 2, 3], [-1, 0.5, 2], [0.3, 0.3, -4]];
    const run = (steps: number[][], sgd: SGD, p: Tensor): void => {
      for (const g of steps) {
        sgd.zeroGrad();
        p.mul(Tensor.fromArray(g, [3])).sum().backward();
        sgd.step();
      }
    };
    const p = Tensor.fromArray(start, [3], { requiresGrad: true });
    using whole = new SGD([p], { lr: 0.1, weightDecay: 0.01, nesterov: true });
    assert.equal(whole.options.momentum, 0.9, 'momentum defaults to 0.9');
    run(grads, whole, p);
    const q = Tensor.fromArray(start, [3], { requiresGrad: true });
    using first = new SGD([q], { lr: 0.1, weightDecay: 0.01, nesterov: true });
    run(grads.slice(0, 1), first, q);
    const saved = first.stateDict();
    assert.deepEqual([...saved.keys()], ['param.0.momentum_buffer']);
    const r = Tensor.fromArray(q.toFloat32Array(), [3], { requiresGrad: true });
    using resumed = new SGD([r], { lr: 0.1, weightDecay: 0.01, nesterov: true });
    resumed.loadStateDict(saved);
    run(grads.slice(1), resumed, r);
    assert.deepEqual(r.toFloat32Array(), p.toFloat32Array(), 'a resumed SGD equals an uninterrupted one');

    const x = Tensor.fromArray([1, 2, 3], [3], { requiresGrad: true });
    using adam2 = new Adam([x]);
    x.square().sum().backward();
    adam2.step();
    assert.throws(() => resumed.loadStateDict(adam2.stateDict()), (e: Error & { code?: string }) => e.code === 'BNN_INVALID_ARGUMENT' && /optimizer state is Adam's .* the optimizer is SGD/.test(e.message));
    assert.throws(() => adam2.loadStateDict(saved), /optimizer state is SGD's .* the optimizer is Adam/);

    const one = Tensor.fromArray([1], [1], { requiresGrad: true });
    assert.throws(() => new SGD([one], { momentum: 1 }), /momentum must be a number in \[0, 1\), got 1/);
    assert.throws(() => new SGD([one], { momentum: 0, nesterov: true }), /nesterov needs a momentum > 0/);
    assert.throws(() => new SGD([one], { lr: -1 }), /lr must be a positive number/);
    assert.throws(() => new SGD([one], { noDecayOn: ['conv' as never] }), /unknown kind 'conv'/);
  });
});
