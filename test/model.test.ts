import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { createModel, crossEntropy, cudaAvailable, manualSeed, scope, setAllowTF32, Tensor } from '../src/index.js';
import { assertCloseScaled, loadFixture } from './support/fixtures.js';
import { packageRoot } from '../src/binding/native.js';
import { writeSafetensorsSync, fromTypedArray } from '../src/io/safetensors.js';
import { assertClose, assertThrowsCode } from './support/helpers.js';

function tmpFile(name: string): string {
  return path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'bnn-model-')), name);
}

function countParams(model: ReturnType<typeof createModel>): number {
  return scope(() => model.parameters().reduce((a, p) => a + p.size, 0));
}

test('output shapes for 28x28x1, 32x32x3, odd sizes and the imagenet stem', () => {
  scope(() => {
    const cases: [Parameters<typeof createModel>[0], number[]][] = [
      [{ inChannels: 1, width: 4, numClasses: 10 }, [2, 1, 28, 28]],
      [{ inChannels: 3, width: 4, numClasses: 100 }, [3, 3, 32, 32]],
      [{ inChannels: 3, width: 4, numClasses: 5 }, [1, 3, 7, 7]],
      [{ inChannels: 2, width: 4, numClasses: 5 }, [2, 2, 9, 13]],
      [{ inChannels: 3, width: 4, numClasses: 7, stem: 'imagenet', doubleSkip: false }, [2, 3, 64, 48]],
      [{ inChannels: 1, width: 4, numClasses: 3 }, [1, 1, 1, 1]],
    ];
    for (const [config, shape] of cases) {
      using model = createModel(config);
      const out = model.eval().forward(Tensor.randn(shape));
      assert.deepEqual(out.shape, [shape[0], config!.numClasses], `${JSON.stringify(config)} on ${shape}`);
    }
  });
});

test('parameter counts match ResNet-18 arithmetic and PyTorch (11,176,906 at width 64)', () => {
  using full = createModel({ numClasses: 10, inChannels: 3 });
  assert.equal(countParams(full), 11_176_906);
  assert.equal(full.summary().totalParams, 11_176_906);
  using small = createModel({ inChannels: 1, width: 4 });
  assert.equal(countParams(small), 44_734); // the golden fixture's count
  using classic = createModel({ inChannels: 3, width: 4, numClasses: 7, stem: 'imagenet', doubleSkip: false });
  assert.equal(countParams(classic), 45_187);
  assert.equal(classic.summary().totalParams, 45_187);
});

test('names are PyTorch names', () => {
  using model = createModel({ inChannels: 1, width: 4 });
  const names = scope(() => [...model.stateDict().keys()]);
  for (const expected of [
    'conv1.weight', 'bn1.running_mean', 'bn1.num_batches_tracked', 'layer1.0.bn.weight', 'layer1.0.conv.weight',
    'layer1.3.prelu.weight', 'layer2.0.downsample.0.weight', 'layer2.0.downsample.1.running_var', 'fc.weight', 'fc.bias',
  ]) {
    assert.ok(names.includes(expected), `has ${expected}`);
  }
  assert.ok(!names.some((n) => n.startsWith('layer1.0.downsample')), 'no downsample where the shape does not change');
  assert.equal(names.filter((n) => /^layer\d\.\d\.conv\.weight$/.test(n)).length, 16, 'double skip: 16 binary blocks');
});

test('the stage switch changes the forward pass and leaves the latent weights untouched', () => {
  scope(() => {
    manualSeed(11);
    using model = createModel({ inChannels: 1, width: 4 });
    model.eval();
    const x = Tensor.randn([2, 1, 12, 12]);
    const latentBefore = model.namedParameters().get('layer2.1.conv.weight')!.toFloat32Array();
    const stage1 = model.forward(x).toFloat32Array();
    assert.equal(model.binaryWeights, false);
    model.setBinaryWeights(true);
    assert.equal(model.binaryWeights, true);
    assert.equal(model.config.binaryWeights, true);
    const stage2 = model.forward(x).toFloat32Array();
    assert.notDeepEqual(stage2, stage1);
    assert.deepEqual(model.namedParameters().get('layer2.1.conv.weight')!.toFloat32Array(), latentBefore);
    model.setBinaryWeights(false);
    assert.deepEqual(model.forward(x).toFloat32Array(), stage1, 'switching back restores stage 1 exactly');
  });
});

test('1-bit weights: the gradient passes only where |W| <= 1, scaled by alpha', () => {
  scope(() => {
    using model = createModel({ inChannels: 1, width: 4, binaryWeights: true });
    const w = model.namedParameters().get('layer1.0.conv.weight')!;
    // Put one weight outside the clip range; everything else stays inside.
    const values = w.toFloat32Array();
    values[0] = 1.5;
    values[1] = 1.0; // exactly on the boundary still passes (|W| <= 1)
    model.loadStateDict(new Map([...model.stateDict()].map(([k, v]) => [k, k === 'layer1.0.conv.weight' ? Tensor.fromArray(values, w.shape) : v])));
    model.train();
    model.forward(Tensor.randn([2, 1, 8, 8])).square().sum().backward();
    const g = model.namedParameters().get('layer1.0.conv.weight')!.grad!.toFloat32Array();
    assert.equal(g[0], 0);
    assert.notEqual(g[1], 0);
  });
});

test('save -> load round trip is exact, and outputs match', async () => {
  await scope(async () => {
    manualSeed(5);
    using a = createModel({ inChannels: 1, width: 4, numClasses: 7 });
    a.train();
    a.forward(Tensor.randn([4, 1, 12, 12])); // moves running stats away from their init
    const file = tmpFile('w.safetensors');
    await a.saveWeights(file);
    using b = createModel({ inChannels: 1, width: 4, numClasses: 7 });
    await b.loadWeights(file);
    const sa = a.stateDict();
    const sb = b.stateDict();
    for (const [k, v] of sa) assert.deepEqual(sb.get(k)!.toTypedArray(), v.toTypedArray(), k);
    const x = Tensor.randn([2, 1, 12, 12]);
    assert.deepEqual(b.eval().forward(x).toFloat32Array(), a.eval().forward(x).toFloat32Array());
    assert.deepEqual(fs.readdirSync(path.dirname(file)), ['w.safetensors'], 'no temp files left');
  });
});

test('loading weights that do not fit lists every problem and changes nothing', async () => {
  await scope(async () => {
    using model = createModel({ inChannels: 1, width: 4 });
    const file = tmpFile('bad.safetensors');
    const state = model.stateDict();
    const tensors = new Map<string, ReturnType<typeof fromTypedArray>>();
    for (const [k, v] of state) {
      if (k === 'fc.bias') continue; // missing
      tensors.set(k, fromTypedArray(v.toTypedArray(), v.shape));
    }
    tensors.set('fc.weight', fromTypedArray(new Float32Array(32 * 3), [3, 32])); // wrong shape
    tensors.set('extra.weight', fromTypedArray(new Float32Array(1), [1])); // unexpected
    tensors.set('bn1.num_batches_tracked', fromTypedArray(new Float32Array(1), [])); // wrong dtype
    writeSafetensorsSync(file, tensors);
    const before = model.namedParameters().get('conv1.weight')!.toFloat32Array();
    await assert.rejects(model.loadWeights(file), (e: Error & { code?: string; problems?: string[] }) => {
      assert.equal(e.code, 'BNN_INVALID_ARGUMENT');
      assert.match(e.message, /bad\.safetensors/);
      assert.match(e.message, /missing key 'fc\.bias'/);
      assert.match(e.message, /'fc\.weight' has shape \[3, 32\] but the model expects \[10, 32\]/);
      assert.match(e.message, /unexpected key 'extra\.weight'/);
      assert.match(e.message, /'bn1\.num_batches_tracked' has dtype float32 but the model expects int64/);
      assert.equal(e.problems?.length, 4);
      return true;
    });
    assert.deepEqual(model.namedParameters().get('conv1.weight')!.toFloat32Array(), before);
    fs.writeFileSync(file, Buffer.from('not a safetensors file at all'));
    await assert.rejects(model.loadWeights(file), (e: Error & { code?: string }) => e.code === 'BNN_IO' && /bad\.safetensors/.test(e.message));
  });
});

test('loadStateDict is strict and reports all mismatches at once', () => {
  scope(() => {
    using model = createModel({ inChannels: 1, width: 4 });
    const state = model.stateDict();
    state.delete('layer1.0.bn.bias');
    state.set('layer1.0.conv.weight', Tensor.zeros([4, 4, 1, 1]));
    state.set('bn1.running_var', Tensor.ones([4], { dtype: 'float64' }));
    state.set('nonsense', Tensor.zeros([1]));
    assertThrowsCode(() => model.loadStateDict(state), RangeError, 'BNN_INVALID_ARGUMENT',
      /4 problems[\s\S]*missing key 'layer1\.0\.bn\.bias'[\s\S]*'layer1\.0\.conv\.weight' has shape \[4, 4, 1, 1\][\s\S]*unexpected key 'nonsense'/);
    assertThrowsCode(() => model.loadStateDict(state), RangeError, 'BNN_INVALID_ARGUMENT', /'bn1\.running_var' has dtype float64 but the model expects float32/);
  });
});

test('bad input to forward names the problem', () => {
  scope(() => {
    using model = createModel({ inChannels: 1, width: 4 });
    assertThrowsCode(() => model.forward(Tensor.zeros([1, 28, 28])), RangeError, 'BNN_INVALID_ARGUMENT', /shape \[N, C, H, W\], got shape \[1, 28, 28\]/);
    assertThrowsCode(() => model.forward(Tensor.zeros([2, 3, 28, 28])), RangeError, 'BNN_INVALID_ARGUMENT', /inChannels = 1 but the input has 3 channels/);
    assertThrowsCode(() => model.forward(Tensor.zeros([2, 1, 28, 28], { dtype: 'float64' })), TypeError, 'BNN_INVALID_TYPE', /expected a Float input.*got Double/);
    assertThrowsCode(() => model.forward(Tensor.zeros([2, 1, 28, 28], { dtype: 'uint8' })), TypeError, 'BNN_INVALID_TYPE', /got Byte/);
    assertThrowsCode(() => model.forward(Tensor.zeros([0, 1, 28, 28])), RangeError, 'BNN_INVALID_ARGUMENT', /batch is empty/);
    assertThrowsCode(() => model.forward('x' as never), TypeError, 'BNN_INVALID_TYPE', /input must be a Tensor/);
  });
});

test('invalid configs are refused before anything is built, naming the field', () => {
  const bad: [object, RegExp, typeof TypeError | typeof RangeError][] = [
    [{ width: 0 }, /width must be between 1/, RangeError],
    [{ numClasses: -3 }, /numClasses must be between 1/, RangeError],
    [{ inChannels: 2.5 }, /inChannels must be an integer/, TypeError],
    [{ stem: 'big' }, /stem must be 'small' or 'imagenet'/, RangeError],
    [{ bnMomentum: 2 }, /bnMomentum must be a number between 0 and 1/, RangeError],
    [{ doubleSkip: 'yes' }, /doubleSkip must be a boolean/, TypeError],
    [{ widht: 8 }, /unknown model config field 'widht'/, RangeError],
    [{ arch: 'vgg' }, /arch must be 'resnet18'/, RangeError],
  ];
  for (const [config, message, type] of bad) {
    assert.throws(() => createModel(config as never), (e: unknown) => e instanceof type && message.test((e as Error).message), JSON.stringify(config));
  }
});

test('the native side validates configs too (no crash on a raw call)', async () => {
  const { native } = await import('../src/binding/native.js');
  assert.throws(() => new (native().ModelHandle)({ width: 0 } as never), RangeError);
  assert.throws(() => new (native().ModelHandle)({ width: 'x' } as never), TypeError);
  assert.throws(() => new (native().ModelHandle)(undefined as never), TypeError);
});

test('forwardAsync matches forward, and the model refuses other calls while busy', async () => {
  await scope(async () => {
    using model = createModel({ inChannels: 1, width: 4 });
    model.eval();
    const x = Tensor.randn([2, 1, 12, 12]);
    const expected = model.forward(x).toFloat32Array();
    const pending = model.forwardAsync(x);
    assertThrowsCode(() => model.forward(x), Error, 'BNN_INVALID_ARGUMENT', /busy/);
    assert.deepEqual((await pending).toFloat32Array(), expected);
    await assert.rejects(model.forwardAsync(Tensor.zeros([1, 2, 3])), /shape \[N, C, H, W\]/);
  });
});

test('a disposed model says so', () => {
  const model = createModel({ inChannels: 1, width: 4 });
  model.dispose();
  model.dispose();
  assertThrowsCode(() => model.config, Error, 'BNN_DISPOSED', /disposed/);
});

test('summary: 1-bit and 32-bit parameters, MACs, sizes', () => {
  using model = createModel({ inChannels: 1, width: 16, binaryWeights: true });
  const s = model.summary();
  assert.equal(s.totalParams, countParams(model));
  const binaryConvWeights = scope(() =>
    [...model.namedParameters()].filter(([n]) => /^layer\d\.\d\.conv\.weight$/.test(n)).reduce((a, [, p]) => a + p.size, 0),
  );
  assert.equal(s.binaryParams, binaryConvWeights);
  assert.ok(s.compressionRatio > 10, `compression ${s.compressionRatio}`);
  assert.ok(s.binaryMacShare > 0.9 && s.binaryMacShare < 1, `binary MAC share ${s.binaryMacShare}`);
  assert.equal(s.layers.find((l) => l.name === 'layer1.0.conv')!.inputBits, 1);
  assert.equal(s.layers.find((l) => l.name === 'conv1')!.inputBits, 32);
  assert.deepEqual(s.layers.find((l) => l.name === 'layer4.0.downsample.2')!.outputShape, [128, 4, 4]);
  assert.match(s.text, /layer2\.0\.downsample\.0/);
  assert.match(s.text, /compression/);
  model.setBinaryWeights(false);
  const stage1 = model.summary();
  assert.equal(stage1.binaryParams, 0);
  assert.equal(stage1.binaryMacs, 0);
  assert.equal(stage1.totalParams, s.totalParams);
});

const python = spawnSync('python3', ['-c', 'import torch, safetensors'], { encoding: 'utf8' });
test('weights load into the PyTorch reference with strict=True and give the same logits', { skip: python.status !== 0 && 'python3 with torch and safetensors not available' }, async () => {
  await scope(async () => {
    manualSeed(9);
    using model = createModel({ inChannels: 3, width: 4, numClasses: 5, binaryWeights: true });
    model.train();
    model.forward(Tensor.randn([4, 3, 10, 10]));
    model.eval();
    const file = tmpFile('export.safetensors');
    await model.saveWeights(file);
    const x = Tensor.randn([2, 3, 10, 10]);
    const ours = model.forward(x).toFloat32Array();
    const script = `
import json, sys, torch
sys.path.insert(0, ${JSON.stringify(path.join(packageRoot, 'scripts', 'golden'))})
from safetensors.torch import load_file
from bnn_reference import ResNet18
m = ResNet18(num_classes=5, in_channels=3, width=4, stem='small', double_skip=True, binary_activations=True, binary_weights=True)
m.load_state_dict(load_file(sys.argv[1]), strict=True)
m.eval()
x = torch.tensor(json.loads(sys.stdin.read()), dtype=torch.float32).reshape(2, 3, 10, 10)
print(json.dumps(m(x).flatten().tolist()))
`;
    const r = spawnSync('python3', ['-c', script, file], { input: JSON.stringify([...x.toFloat32Array()]), encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assertClose(ours, JSON.parse(r.stdout) as number[], { rtol: 1e-4, atol: 1e-5, what: 'logits in PyTorch' });
  });
});

test('CUDA: the model moves to the GPU and matches PyTorch (golden fixture, TF32 off)', { skip: !cudaAvailable() && 'CUDA not available' }, () => {
  scope(() => {
    setAllowTF32(false);
    const fx = loadFixture('model-small-c1-stage2');
    using model = createModel(JSON.parse(fx.metadata.config!) as Parameters<typeof createModel>[0]);
    model.loadStateDict(fx.group('state/'));
    model.to('cuda');
    assert.equal(model.device, 'cuda:0');
    const x = fx.tensors.get('input')!.to('cuda');
    model.eval();
    assertCloseScaled(model.forward(x).toFloat32Array(), fx.values('logits_eval'), 'CUDA logits_eval', 1e-3, 1e-3);
    model.train();
    const loss = crossEntropy(model.forward(x), fx.tensors.get('labels')!.to('cuda'));
    assertCloseScaled(loss.toFloat32Array(), fx.values('loss'), 'CUDA loss', 1e-3, 1e-3);
    loss.backward();
    const grad = model.namedParameters().get('layer1.0.conv.weight')!.grad!;
    assert.ok(grad.device.startsWith('cuda'));
    // Every parameter's gradient: the straight-through masks of the CUDA sign kernels reach all of them.
    const grads = fx.group('grad/');
    assert.ok(grads.size > 10);
    for (const [name, p] of model.namedParameters()) {
      const want = grads.get(name);
      if (want) assertCloseScaled(p.grad!.toFloat32Array(), want.toFloat32Array(), `CUDA grad ${name}`, 1e-3, 1e-3);
    }
    assertThrowsCode(() => model.forward(fx.tensors.get('input')!), RangeError, 'BNN_INVALID_ARGUMENT', /input is on cpu but the model is on cuda/);
    setAllowTF32(true);
  });
});
