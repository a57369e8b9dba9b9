// The fused nodes of the block's memory-bound chains (native/nn/fused_cuda.cu: BatchNorm -> sign ->
// conv, residual add -> PReLU) against the unfused modules, from the same weights and batch. On
// the CPU through the reference flag: the nodes' own formulas (batch statistics, running-statistics
// update, straight-through mask inside BatchNorm's backward, every gradient) with ATen ops standing
// in for the kernels. On CUDA: the kernels themselves, in float32 and bfloat16.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';

import { createModel, crossEntropy, cudaAvailable, manualSeed, scope, setAllowTF32, setFusionOptions, SGD, StepMetrics, Tensor, trainStep } from '../src/index.js';
import type { Device, ModelConfig } from '../src/index.js';
import { native, packageRoot } from '../src/binding/native.js';
import { assertCloseScaled, loadFixture } from './support/fixtures.js';

function fusedNodes(): { bnSign: number; prelu: number } {
  const r = native().setFusionFlags({});
  return { bnSign: r.bnSignNodes, prelu: r.preluNodes };
}

const values = (t: Tensor): Float32Array => t.to('cpu', 'float32').toFloat32Array();

interface Pass {
  logits: Float32Array;
  loss: number;
  grads: Map<string, Float32Array>;
  buffers: Map<string, Float32Array>;
  nodes: { bnSign: number; prelu: number };
}

/**
 * From `state`: one forward (in training mode it moves the running statistics), then a second with
 * backward, so the buffers have blended two batches in.
 */
function pass(config: ModelConfig, state: Map<string, Tensor>, x: Tensor, y: Tensor, device: Device, evalMode = false): Pass {
  return scope(() => {
    using m = createModel(config);
    m.loadStateDict(state);
    m.to(device);
    if (evalMode) m.eval();
    else m.train();
    const before = fusedNodes();
    const xd = x.to(device);
    const yd = y.to(device);
    m.forward(xd);
    const logits = m.forward(xd);
    const loss = crossEntropy(logits, yd);
    loss.backward();
    const after = fusedNodes();
    const grads = new Map<string, Float32Array>();
    for (const [name, p] of m.namedParameters()) if (p.grad) grads.set(name, values(p.grad));
    const buffers = new Map<string, Float32Array>();
    for (const [name, b] of m.buffers()) buffers.set(name, values(b));
    return { logits: values(logits), loss: loss.item(), grads, buffers, nodes: { bnSign: after.bnSign - before.bnSign, prelu: after.prelu - before.prelu } };
  });
}

function assertSame(fused: Pass, plain: Pass, what: string, tol: number): void {
  assertCloseScaled(fused.logits, plain.logits, `${what}: logits`, tol, tol);
  assert.ok(Math.abs(fused.loss - plain.loss) <= tol * 10 * Math.abs(plain.loss), `${what}: loss ${fused.loss} vs ${plain.loss}`);
  assert.deepEqual([...fused.grads.keys()].sort(), [...plain.grads.keys()].sort(), `${what}: the same parameters get gradients`);
  for (const [name, g] of plain.grads) assertCloseScaled(fused.grads.get(name)!, g, `${what}: grad ${name}`, tol, tol);
  assert.deepEqual([...fused.buffers.keys()].sort(), [...plain.buffers.keys()].sort());
  for (const [name, b] of plain.buffers) assertCloseScaled(fused.buffers.get(name)!, b, `${what}: buffer ${name}`, tol, tol);
}

function withFlags<T>(flags: { cuda?: boolean; cpuReference?: boolean }, work: () => T): T {
  const old = setFusionOptions();
  setFusionOptions(flags);
  try {
    return work();
  } finally {
    setFusionOptions(old);
  }
}

async function withFlagsAsync<T>(flags: { cuda?: boolean; cpuReference?: boolean }, work: () => Promise<T>): Promise<T> {
  const old = setFusionOptions();
  setFusionOptions(flags);
  try {
    return await work();
  } finally {
    setFusionOptions(old);
  }
}

const base: ModelConfig = { inChannels: 3, width: 8, numClasses: 5 };

function batch(seed: number): { x: Tensor; y: Tensor } {
  manualSeed(seed);
  return { x: Tensor.randn([4, 3, 12, 12]), y: Tensor.fromArray([0, 1, 2, 4], [4], { dtype: 'int64' }) };
}

function stateOf(config: ModelConfig, seed: number): Map<string, Tensor> {
  manualSeed(seed);
  using m = createModel(config);
  // Away from the initial 1 / 0, so a swapped or missing BatchNorm parameter shows.
  const state = new Map<string, Tensor>();
  for (const [name, t] of m.stateDict()) {
    const noisy = /bn\d?\.(weight|bias)$/.test(name) ? t.add(Tensor.randn(t.shape).mul(0.3)) : t.clone();
    state.set(name, noisy);
  }
  return state;
}

test('defaults: the CUDA kernels on, the CPU reference off; options are checked', () => {
  // On unless the environment says BNN_CUDA_FUSION=0 (as scripts/gpu-check does after a failed smoke test).
  assert.deepEqual(setFusionOptions(), { cuda: process.env.BNN_CUDA_FUSION !== '0', cpuReference: false });
  assert.throws(() => setFusionOptions({ cuda: 1 as unknown as boolean }), (e: Error) => e instanceof TypeError && /cuda/.test(e.message));
  assert.throws(() => setFusionOptions(null as never), TypeError);
});

for (const [name, config] of [
  ['stage 1 (double skip)', base],
  ['stage 2 (1-bit weights)', { ...base, binaryWeights: true }],
  ['classic blocks, BatchNorm momentum 0.3', { ...base, doubleSkip: false, bnMomentum: 0.3 }],
] as const) {
  test(`CPU reference of the fused BatchNorm -> sign -> conv node equals the modules: ${name}`, () => {
    scope(() => {
      const { x, y } = batch(11);
      const state = stateOf(config, 5);
      const plain = withFlags({ cpuReference: false }, () => pass(config, state, x, y, 'cpu'));
      const fused = withFlags({ cpuReference: true }, () => pass(config, state, x, y, 'cpu'));
      assert.equal(plain.nodes.bnSign, 0, 'the modules path takes no fused node');
      // ResNet-18: 16 binary convolutions (double skip: 16 blocks of one; classic: 8 blocks of two),
      // each after its BatchNorm; two training passes.
      assert.equal(fused.nodes.bnSign, 32, 'every BatchNorm -> sign -> conv of both passes is fused');
      assertSame(fused, plain, name, 2e-5);
      // num_batches_tracked counted the two batches either way.
      assert.deepEqual([...fused.buffers.get('layer1.0.bn.num_batches_tracked') ?? fused.buffers.get('layer1.0.bn1.num_batches_tracked')!], [2]);
    });
  });
}

test('CPU reference of the fused node matches PyTorch itself (golden fixture, stage 2: logits, loss, every gradient)', () => {
  scope(() => {
    const fx = loadFixture('model-small-c1-stage2');
    using model = createModel(JSON.parse(fx.metadata.config!) as ModelConfig);
    model.loadStateDict(fx.group('state/'));
    const x = fx.tensors.get('input')!;
    model.train();
    const before = fusedNodes().bnSign;
    withFlags({ cpuReference: true }, () => {
      const loss = crossEntropy(model.forward(x), fx.tensors.get('labels')!);
      assertCloseScaled(loss.toFloat32Array(), fx.values('loss'), 'loss', 1e-4, 1e-4);
      loss.backward();
    });
    // All 16, the first block's too: a one-channel input leaves the stem in NCHW unless the model
    // makes it channels-last (it does).
    assert.equal(fusedNodes().bnSign - before, 16, 'every block ran the fused node');
    const grads = fx.group('grad/');
    assert.ok(grads.size > 10);
    for (const [name, p] of model.namedParameters()) {
      const want = grads.get(name);
      if (want) assertCloseScaled(p.grad!.toFloat32Array(), want.toFloat32Array(), `grad ${name}`, 1e-4, 1e-4);
    }
  });
});

test('BNN_CUDA_FUSION=0 starts a process with the fused CUDA kernels off; anything else leaves them on', () => {
  const flagsIn = (env: Record<string, string>) => {
    const inherited = { ...process.env };
    delete inherited.BNN_CUDA_FUSION;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', "import { setFusionOptions } from './src/index.ts'; console.log(JSON.stringify(setFusionOptions()))"], {
      cwd: packageRoot,
      env: { ...inherited, ...env },
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout.trim()) as { cuda: boolean; cpuReference: boolean };
  };
  assert.deepEqual(flagsIn({ BNN_CUDA_FUSION: '0' }), { cuda: false, cpuReference: false });
  assert.deepEqual(flagsIn({ BNN_CUDA_FUSION: '1' }), { cuda: true, cpuReference: false });
  assert.deepEqual(flagsIn({}), { cuda: true, cpuReference: false });
});

test('the fused node steps aside where BatchNorm\'s output is needed itself, and in eval mode', () => {
  scope(() => {
    const { x, y } = batch(3);
    for (const [what, config, evalMode] of [
      ['learnable thresholds (RSign)', { ...base, learnableThresholds: true }, false],
      ['ApproxSign gradient', { ...base, signGradient: 'approx-sign' }, false],
      ['Bi-Real order', { ...base, blockOrder: 'sign-conv-bn' }, false],
      ['real-valued activations', { ...base, binaryActivations: false }, false],
      ['eval mode', base, true],
    ] as const) {
      const state = stateOf(config, 1);
      const plain = withFlags({ cpuReference: false }, () => pass(config, state, x, y, 'cpu', evalMode));
      const fused = withFlags({ cpuReference: true }, () => pass(config, state, x, y, 'cpu', evalMode));
      assert.equal(fused.nodes.bnSign, 0, what);
      assertSame(fused, plain, what, 1e-6);
    }
  });
});

const noCuda = !cudaAvailable() && 'CUDA not available';

test('CUDA: the fused kernels equal ATen\'s separate ops in float32 (forward, every gradient, running statistics)', { skip: noCuda }, () => {
  scope(() => {
    setAllowTF32(false);
    try {
      // Width 12: channel counts (12 ... 96) that leave a 32-channel column block part empty.
      for (const config of [base, { ...base, binaryWeights: true }, { ...base, doubleSkip: false }, { ...base, stem: 'imagenet' as const }, { ...base, width: 12 }]) {
        const { x, y } = batch(7);
        const xx = config.stem === 'imagenet' ? Tensor.randn([4, 3, 40, 40]) : x;
        const state = stateOf(config, 9);
        const plain = withFlags({ cuda: false }, () => pass(config, state, xx, y, 'cuda'));
        const fused = withFlags({ cuda: true }, () => pass(config, state, xx, y, 'cuda'));
        assert.equal(plain.nodes.bnSign + plain.nodes.prelu, 0);
        // Two passes of 16 BatchNorm -> sign -> conv and 16 PReLUs after a residual add (double
        // skip: one each per block; classic: prelu1 alone, prelu2 with the add, in 8 blocks).
        assert.equal(fused.nodes.bnSign, 32, `${JSON.stringify(config)}: BatchNorm -> sign -> conv fused`);
        assert.equal(fused.nodes.prelu, 32, `${JSON.stringify(config)}: PReLU fused`);
        assertSame(fused, plain, `CUDA float32 ${JSON.stringify(config)}`, 1e-4);
      }
    } finally {
      setAllowTF32(true);
    }
  });
});

test('CUDA: bfloat16 and float16 training steps with the fused kernels follow the unfused ones (every gradient, running statistics)', { skip: noCuda }, async () => {
  const step = async (fusedOn: boolean, config: ModelConfig, precision: 'bfloat16' | 'float16') => {
    const state = stateOf(config, 4);
    using m = createModel(config);
    m.to('cuda');
    using opt = new SGD(m, { lr: 1e-3 });
    using metrics = new StepMetrics();
    manualSeed(8);
    using x = Tensor.randn([64, 3, 32, 32], { device: 'cuda' });
    using y = Tensor.fromArray(Array.from({ length: 64 }, (_, i) => i % 5), [64], { dtype: 'int64', device: 'cuda' });
    const before = fusedNodes();
    // float16 scales the loss (dynamic loss scaling): a scale that overflows skips the update and
    // backs off, so step again from the same weights (the scaler lives on the optimizer) until one
    // update is taken; its gradients (unscaled in place) are compared. bfloat16 takes the first.
    let steps = 0;
    for (;;) {
      m.loadStateDict(state);
      await withFlagsAsync({ cuda: fusedOn }, () => trainStep(m, opt, x, y, { precision, metrics }));
      steps++;
      const totals = await metrics.read();
      metrics.reset();
      if (totals.skipped === 0) break;
      assert.ok(steps < 30, `${precision}: every update skipped`);
    }
    const after = fusedNodes();
    // The step clears gradients before backward, not after: they are this step's.
    return scope(() => ({
      grads: new Map([...m.namedParameters()].map(([k, p]) => [k, values(p.grad!)] as const)),
      buffers: new Map([...m.buffers()].map(([k, b]) => [k, values(b)] as const)),
      bnSign: (after.bnSign - before.bnSign) / steps,
      prelu: (after.prelu - before.prelu) / steps,
    }));
  };
  for (const precision of ['bfloat16', 'float16'] as const) {
    for (const config of [base, { ...base, binaryWeights: true }]) {
      const plain = await step(false, config, precision);
      const fused = await step(true, config, precision);
      assert.equal(plain.bnSign + plain.prelu, 0);
      assert.equal(fused.bnSign, 16, `${precision}: BatchNorm -> sign -> conv fused`);
      assert.equal(fused.prelu, 16, `${precision}: PReLU fused`);
      // Reduced precision: BatchNorm's output is rounded before the unfused sign and not before the
      // fused one, so a rare element at |v| = 1 falls on the other side of the mask, and sums run
      // in other orders (and in float32 where ATen's float16 PReLU sums in float16).
      const tol = precision === 'bfloat16' ? 3e-2 : 1e-2;
      for (const [name, g] of plain.grads) assertCloseScaled(fused.grads.get(name)!, g, `${precision} grad ${name}`, tol, tol);
      // (Each try reloads the buffers too, so both hold the state plus the one batch.)
      for (const [name, b] of plain.buffers) assertCloseScaled(fused.buffers.get(name)!, b, `${precision} buffer ${name}`, tol, tol);
    }
  }
});
