// The alternative binarisers of issue 16, each an option of the model: Bi-Real Net's ApproxSign
// gradient (signGradient 'approx-sign'), ReActNet's RSign thresholds (learnableThresholds) and
// RPReLU (blockActivation 'rprelu'). Numerics against PyTorch (fixtures from
// scripts/golden/binarizers.py): the ApproxSign op alone against autograd of Bi-Real's polynomial,
// and tiny networks with each option (forward, loss, every parameter's gradient, running stats).
// Then: each trains and resumes through the normal trainer, its weights travel with its config,
// other structures refuse them, and the packed export refuses what the engine cannot run.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import {
  approxSign,
  binaryActivation,
  createModel,
  crossEntropy,
  InMemoryBatches,
  InferenceModel,
  isBnnError,
  manualSeed,
  scope,
  Tensor,
  trainTwoStage,
  type ModelConfig,
  type StageOptions,
  type TwoStageConfig,
} from '../src/index.js';
import { native } from '../src/binding/native.js';
import { resolveModelConfig } from '../src/nn/model-config.js';
import { CONFIG_METADATA_KEY } from '../src/nn/model.js';
import { readSafetensorsSync } from '../src/io/safetensors.js';
import { writeStateFile } from '../src/io/state-file.js';
import { loadModelFile } from '../src/cli/commands/model-file.js';
import { assertThrowsCode } from './support/helpers.js';
import { assertCloseScaled, assertMatchesGolden, loadFixture } from './support/fixtures.js';
import { TOY_CLASSES, TOY_SHAPE, toyData } from './support/toy-task.js';

const tmpDir = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'bnn-binarizers-'));

test('approxSign: the sign forward and the gradient autograd gives for Bi-Real\'s polynomial (PyTorch fixture)', () => {
  scope(() => {
    const fx = loadFixture('binarizers/approx-sign-values');
    const xs = fx.values('x');
    const x = Tensor.fromArray(xs, [xs.length], { requiresGrad: true });
    const y = approxSign(x);
    // The forward is the recipe's sign exactly (0 and -0 to +1), as the STE's.
    assert.deepEqual([...y.toFloat32Array()], [...fx.values('output')]);
    assert.deepEqual([...y.toFloat32Array()], [...binaryActivation(Tensor.fromArray(xs, [xs.length])).toFloat32Array()]);
    y.backward(fx.tensors.get('grad_output')!);
    const got = x.grad!.toFloat32Array();
    const want = fx.values('grad_input');
    // 2 - 2|x| here, 2x + 2 / -2x + 2 in autograd's polynomial: equal up to float rounding.
    assertCloseScaled(got, want, 'approxSign gradient', 1e-6, 1e-6);
    // Cut where |x| >= 1: exactly 0, also for the inf and NaN upstream gradients the fixture puts there.
    for (let i = 0; i < xs.length; i++) if (Math.abs(xs[i]!) >= 1) assert.equal(got[i], 0, `x = ${xs[i]}`);
    // Not the STE: inside (-1, 1) the gradient is scaled by 2 - 2|x| (2 at 0, 1 at |x| = 0.5).
    const i0 = xs.indexOf(0.5);
    assert.ok(i0 >= 0 && Math.abs(got[i0]! - fx.values('grad_output')[i0]!) < 1e-6, 'at |x| = 0.5 the gradient passes unchanged');
  });
});

test('approxSign refuses a non-floating input with a typed error', () => {
  scope(() => {
    assertThrowsCode(() => approxSign(Tensor.fromArray(new Int32Array([1, -2]), [2])), TypeError, 'BNN_INVALID_TYPE', /floating-point/);
  });
});

const CASES = ['approx-sign', 'rsign', 'rprelu', 'all-classic-stage2', 'approx-sign-bireal-binary'];
for (const name of CASES) {
  test(`binarizers/${name}: eval and train logits, loss, every gradient and running stat match PyTorch`, () => {
    scope(() => {
      const { config, names, grads } = assertMatchesGolden(name, loadFixture(`binarizers/${name}`));
      // The new parameters are really exercised: nonzero values and gradients.
      const fresh = names.filter((n) => /sign_threshold|shift_in|shift_out/.test(n));
      if (config.learnableThresholds || config.blockActivation === 'rprelu') assert.ok(fresh.length > 0, 'has the new parameters');
      for (const n of fresh) assert.ok(grads.get(n)!.toFloat32Array().some((v) => v !== 0), `${n} has a nonzero gradient`);
    });
  });
}

test('ApproxSign changes the gradient, not the forward: same logits as the STE, different input gradients', () => {
  scope(() => {
    const fx = loadFixture('binarizers/approx-sign');
    const config = JSON.parse(fx.metadata.config!) as ModelConfig;
    using approx = createModel(config);
    using ste = createModel({ ...config, signGradient: 'ste' });
    approx.loadStateDict(fx.group('state/'));
    ste.loadStateDict(fx.group('state/'));
    const input = fx.tensors.get('input')!;
    const a = approx.train().forward(input);
    const s = ste.train().forward(input);
    assert.deepEqual([...a.toFloat32Array()], [...s.toFloat32Array()]);
    crossEntropy(a, fx.tensors.get('labels')!).backward();
    crossEntropy(s, fx.tensors.get('labels')!).backward();
    const ga = approx.namedParameters().get('conv1.weight')!.grad!.toFloat32Array();
    const gs = ste.namedParameters().get('conv1.weight')!.grad!.toFloat32Array();
    assert.notDeepEqual([...ga], [...gs]);
  });
});

test('RSign\'s threshold gradient is minus the sum of the sign\'s straight-through gradient over batch and space', () => {
  scope(() => {
    // layer1.0's sign sees bn(x) - beta, and that BN output feeds nothing else: with beta = 0 a model
    // with thresholds and one without compute the same, and dL/d(beta) = -sum(dL/d(sign input)) =
    // -dL/d(bn.bias) of the threshold-free model (BN's bias gradient is that same sum).
    manualSeed(21);
    const base = { numClasses: 3, inChannels: 1, width: 2 } as const;
    using rsign = createModel({ ...base, learnableThresholds: true });
    using plain = createModel(base);
    const state = rsign.stateDict();
    for (const n of [...state.keys()]) if (n.includes('sign_threshold')) state.delete(n);
    plain.loadStateDict(state);
    const x = Tensor.randn([2, 1, 8, 8]);
    const labels = Tensor.fromArray(new BigInt64Array([0n, 2n]), [2]);
    crossEntropy(rsign.train().forward(x), labels).backward();
    crossEntropy(plain.train().forward(x), labels).backward();
    const gBeta = rsign.namedParameters().get('layer1.0.sign_threshold')!.grad!.toFloat32Array();
    const gBias = plain.namedParameters().get('layer1.0.bn.bias')!.grad!.toFloat32Array();
    assert.equal(gBeta.length, 2);
    for (let c = 0; c < 2; c++) assert.ok(Math.abs(gBeta[c]! + gBias[c]!) <= 1e-6 * Math.max(1, Math.abs(gBias[c]!)), `channel ${c}: ${gBeta[c]} vs -${gBias[c]}`);
    assert.ok(gBeta.some((v) => v !== 0));
  });
});

test('the options and their parameter names; fresh parameters start where ReActNet starts them (a no-op)', () => {
  scope(() => {
    const base = { numClasses: 3, inChannels: 1, width: 2 } as const;
    using m = createModel({ ...base, learnableThresholds: true, blockActivation: 'rprelu' });
    const names = [...m.namedParameters().keys()];
    assert.deepEqual(names.slice(3, 10), [
      'layer1.0.sign_threshold',
      'layer1.0.bn.weight',
      'layer1.0.bn.bias',
      'layer1.0.conv.weight',
      'layer1.0.prelu.shift_in',
      'layer1.0.prelu.weight',
      'layer1.0.prelu.shift_out',
    ]);
    const p = m.namedParameters();
    assert.deepEqual([...p.get('layer1.0.sign_threshold')!.toFloat32Array()], [0, 0]);
    assert.deepEqual([...p.get('layer2.0.prelu.shift_out')!.toFloat32Array()], [0, 0, 0, 0]);
    assert.deepEqual([...p.get('layer2.0.prelu.weight')!.toFloat32Array()], [0.25, 0.25, 0.25, 0.25]);
    using classic = createModel({ ...base, doubleSkip: false, learnableThresholds: true, blockActivation: 'rprelu' });
    const cn = [...classic.namedParameters().keys()].filter((n) => n.startsWith('layer2.0.') && !/bn|conv|downsample/.test(n));
    assert.deepEqual(cn, ['layer2.0.sign_threshold1', 'layer2.0.sign_threshold2', 'layer2.0.prelu1.shift_in', 'layer2.0.prelu1.weight', 'layer2.0.prelu1.shift_out', 'layer2.0.prelu2.shift_in', 'layer2.0.prelu2.weight', 'layer2.0.prelu2.shift_out']);
    assert.deepEqual(classic.namedParameters().get('layer2.0.sign_threshold1')!.shape, [2], 'the first sign sees in_planes channels');
    // At their initial values the new parameters change nothing: same logits as the recipe's network.
    manualSeed(8);
    using recipe = createModel(base);
    using both = createModel({ ...base, learnableThresholds: true, blockActivation: 'rprelu', signGradient: 'approx-sign' });
    const state = new Map([...both.stateDict()].filter(([n]) => !/sign_threshold|shift_/.test(n)));
    recipe.loadStateDict(state);
    const x = Tensor.randn([2, 1, 8, 8]);
    assertCloseScaled(both.eval().forward(x).toFloat32Array(), recipe.eval().forward(x).toFloat32Array(), 'fresh options = recipe', 1e-6, 1e-6);
    // The summary counts them.
    const s = both.summary({ height: 8, width: 8 });
    assert.equal(s.totalParams, [...both.namedParameters().values()].reduce((a, t) => a + t.shape.reduce((u, v) => u * v, 1), 0));
  });
});

test('the defaults are the recipe; bad values and impossible combinations are refused, naming the option', () => {
  const r = resolveModelConfig({});
  assert.equal(r.signGradient, 'ste');
  assert.equal(r.learnableThresholds, false);
  const base = { numClasses: 3, inChannels: 1, width: 2 } as const;
  assertThrowsCode(() => createModel({ ...base, signGradient: 'approx' as never }), RangeError, 'BNN_INVALID_ARGUMENT', /signGradient 'approx': expected one of 'ste', 'approx-sign'/);
  assertThrowsCode(() => createModel({ ...base, learnableThresholds: 1 as never }), TypeError, 'BNN_INVALID_TYPE', /learnableThresholds/);
  assertThrowsCode(() => createModel({ ...base, binaryActivations: false, signGradient: 'approx-sign' }), Error, 'BNN_INVALID_ARGUMENT', /signGradient 'approx-sign' needs binaryActivations/);
  assertThrowsCode(() => createModel({ ...base, binaryActivations: false, learnableThresholds: true }), Error, 'BNN_INVALID_ARGUMENT', /learnableThresholds needs binaryActivations/);
  assertThrowsCode(() => createModel({ ...base, learnableThresholds: true, downsample: 'binary' }), Error, 'BNN_INVALID_ARGUMENT', /learnableThresholds is not supported with downsample 'binary'/);
  // The binding's own check (a caller of the raw binding skips resolveModelConfig).
  assert.throws(() => new (native().ModelHandle)({ ...resolveModelConfig(base), signGradient: 'bireal' } as never), (e: Error) => isBnnError(e) && /signGradient must be one of 'ste', 'approx-sign', got 'bireal'/.test(e.message));
});

test('weights written before the options existed (no signGradient, no learnableThresholds) load as the recipe', async () => {
  await scope(async () => {
    manualSeed(6);
    using model = createModel({ numClasses: 3, inChannels: 1, width: 2, binaryWeights: true });
    const { signGradient: _g, learnableThresholds: _t, ...older } = model.config;
    const file = path.join(tmpDir(), 'older.safetensors');
    await writeStateFile(file, model.stateDict(), { format: 'pt', [CONFIG_METADATA_KEY]: JSON.stringify(older) });
    using loaded = await loadModelFile(file);
    assert.equal(loaded.config.signGradient, 'ste');
    assert.equal(loaded.config.learnableThresholds, false);
    const x = Tensor.randn([2, 1, 8, 8]);
    assert.deepEqual(loaded.eval().forward(x).toFloat32Array(), model.eval().forward(x).toFloat32Array());
  });
});

// ---- training through the normal trainer ----------------------------------------------------------

const MODEL = { inChannels: 1, width: 4, numClasses: TOY_CLASSES };
const STAGE1: StageOptions = { epochs: 2, lr: 5e-3, weightDecay: 1e-5, milestones: [1], gammas: [0.1] };
const STAGE2: StageOptions = { epochs: 1, lr: 1e-3, weightDecay: 0, milestones: [], gammas: [] };

function runConfig(model: ModelConfig, outDir: string, extra: Partial<TwoStageConfig> = {}): TwoStageConfig {
  const tr = toyData(256, 1);
  const te = toyData(64, 101);
  return {
    model: { ...MODEL, ...model },
    stage1: STAGE1,
    stage2: STAGE2,
    train: new InMemoryBatches(tr.images, tr.labels, TOY_SHAPE, TOY_CLASSES, { batchSize: 32, seed: 1 }),
    test: new InMemoryBatches(te.images, te.labels, TOY_SHAPE, TOY_CLASSES, { batchSize: 64, shuffle: false }),
    seed: 3,
    outDir,
    ...extra,
  };
}

const weightsOf = (file: string): Map<string, Uint8Array> => new Map([...readSafetensorsSync(file).tensors].map(([k, t]) => [k, t.data]));

const OPTIONS: [string, ModelConfig][] = [
  ['approx-sign', { signGradient: 'approx-sign' }],
  ['rsign', { learnableThresholds: true }],
  ['rprelu', { blockActivation: 'rprelu' }],
];
for (const [name, option] of OPTIONS) {
  test(`${name} trains (the loss falls), its new parameters move, and a resumed run equals an uninterrupted one`, async () => {
    const whole = tmpDir();
    const result = await trainTwoStage(runConfig(option, whole));
    try {
      const h = result.history;
      assert.equal(h.length, 3);
      assert.ok(h.every((e) => Number.isFinite(e.trainLoss)));
      assert.ok(h[h.length - 1]!.trainLoss < h[0]!.trainLoss * 0.8, `loss falls: ${h.map((e) => e.trainLoss.toFixed(3)).join(' -> ')}`);
      assert.ok((h[h.length - 1]!.testAccuracy ?? 0) > 0.5, `learns the toy task: ${h.map((e) => e.testAccuracy).join(', ')}`);
      for (const [n, p] of result.model.namedParameters()) {
        if (/sign_threshold|shift_in|shift_out/.test(n)) assert.ok(p.toFloat32Array().some((v) => v !== 0), `${n} moved from 0`);
      }
      assert.deepEqual(
        Object.fromEntries(Object.entries(result.model.config).filter(([k]) => k in option)),
        option,
        'the trained model has the option',
      );
    } finally {
      result.model.dispose();
    }
    // The run records the option where a resume and `bnn export` read it.
    const stored = JSON.parse(readSafetensorsSync(path.join(whole, 'final.safetensors')).metadata[CONFIG_METADATA_KEY]!) as ModelConfig;
    for (const [k, v] of Object.entries(option)) assert.equal(stored[k as keyof ModelConfig], v, `final.safetensors config ${k}`);
    // Interrupted after the first epoch and resumed from its checkpoint: the same weights as never stopped.
    const broken = tmpDir();
    let seen = 0;
    const stop = { onEpochEnd: () => { if (++seen === 1) throw new Error('simulated interruption'); } };
    await assert.rejects(trainTwoStage(runConfig(option, broken, { callbacks: stop })), /simulated interruption/);
    const resumed = await trainTwoStage(runConfig(option, broken, { resume: true }));
    resumed.model.dispose();
    assert.deepEqual(weightsOf(path.join(broken, 'final.safetensors')), weightsOf(path.join(whole, 'final.safetensors')), 'resumed = never stopped');
    // The checkpoint belongs to this option: a run without it does not resume from it.
    await assert.rejects(trainTwoStage(runConfig({}, broken, { resume: true })), /belongs to a different run configuration/);
    // The weights load with the option (loadModelFile rebuilds it from the file's config) ...
    using loaded = await loadModelFile(path.join(whole, 'final.safetensors'));
    for (const [k, v] of Object.entries(option)) assert.equal(loaded.config[k as keyof ModelConfig], v);
    // ... and a network without it refuses them, naming the extra parameters (ApproxSign has none:
    // its weights are the recipe's, as in PyTorch).
    using recipe = createModel({ ...MODEL, binaryWeights: true });
    if (name === 'approx-sign') {
      await recipe.loadWeights(path.join(whole, 'final.safetensors'));
    } else {
      const extra = name === 'rsign' ? /unexpected key 'layer1\.0\.sign_threshold'/ : /unexpected key 'layer1\.0\.prelu\.shift_in'/;
      await assert.rejects(recipe.loadWeights(path.join(whole, 'final.safetensors')), (e: Error) => isBnnError(e) && e.code === 'BNN_INVALID_ARGUMENT' && extra.test(e.message));
      // The reverse: the option's network refuses the recipe's weights, naming what is missing.
      using withOption = createModel({ ...MODEL, ...option });
      assert.throws(() => withOption.loadStateDict(recipe.stateDict()), (e: Error) => isBnnError(e) && /missing key 'layer1\.0\.(sign_threshold|prelu\.shift_in)'/.test(e.message));
    }
  });
}

// ---- deployment ----------------------------------------------------------------------------------

test('the packed export refuses RPReLU naming the option, and packs ApproxSign (same forward) and RSign (thresholds folded) exactly', async () => {
  await scope(async () => {
    const base = { numClasses: 3, inChannels: 1, width: 4, binaryWeights: true } as const;
    {
      using model = createModel({ ...base, blockActivation: 'rprelu' });
      const out = path.join(tmpDir(), 'model.packed.safetensors');
      await assert.rejects(model.exportPacked(out), (e: Error) => isBnnError(e) && e.code === 'BNN_INVALID_ARGUMENT' && /the model has blockActivation 'rprelu'/.test(e.message));
      assert.equal(fs.existsSync(out), false, 'nothing written');
    }
    // The engine's logits are LibTorch's eval logits: ApproxSign, and RSign with learned thresholds
    // (random, of the size of the BatchNorm outputs) in double-skip and classic blocks.
    for (const [name, option] of [
      ['ApproxSign', { signGradient: 'approx-sign' }],
      ['RSign', { learnableThresholds: true }],
      ['RSign, classic blocks', { learnableThresholds: true, doubleSkip: false }],
    ] as const) {
      manualSeed(12);
      using model = createModel({ ...base, ...option });
      model.train().forward(Tensor.randn([8, 1, 8, 8])); // running statistics away from their initial values
      const state = new Map(model.stateDict());
      let thresholds = 0;
      for (const [key, t] of state) {
        if (/sign_threshold\d?$/.test(key)) {
          state.set(key, Tensor.randn(t.shape).mul(0.5));
          thresholds++;
        }
      }
      assert.equal(thresholds > 0, 'learnableThresholds' in option, `${name}: thresholds in the state`);
      model.loadStateDict(state);
      const out = path.join(tmpDir(), 'packed.safetensors');
      await model.exportPacked(out);
      const x = Tensor.randn([4, 1, 8, 8]);
      const want = model.eval().forward(x).toFloat32Array();
      using engine = await InferenceModel.load(out);
      const got = await engine.predict({ data: x.toFloat32Array(), shape: [4, 1, 8, 8] });
      assertCloseScaled(got.logits, want, `packed ${name} logits`, 1e-4, 1e-4);
    }
  });
});
