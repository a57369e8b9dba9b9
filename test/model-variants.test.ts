// The tricks ablation's structural switches (blockOrder, blockActivation, downsample, with doubleSkip):
// every combination has PyTorch's names in PyTorch's order, a summary that counts its parameters and
// its binary convolutions, and a config that travels with its weights; bad values and the packed
// export of a non-recipe network are refused clearly. Numerics: the golden fixtures (model-golden).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import { createModel, crossEntropy, isBnnError, manualSeed, scope, Tensor, type ModelConfig } from '../src/index.js';
import { native, packageRoot } from '../src/binding/native.js';
import { BLOCK_ACTIVATIONS, BLOCK_ORDERS, DOWNSAMPLES, resolveModelConfig } from '../src/nn/model-config.js';
import { CONFIG_METADATA_KEY } from '../src/nn/model.js';
import { readSafetensorsSync } from '../src/io/safetensors.js';
import { writeStateFile } from '../src/io/state-file.js';
import { loadModelFile } from '../src/cli/commands/model-file.js';
import { assertThrowsCode } from './support/helpers.js';
import { loadFixture } from './support/fixtures.js';

const BASE = { numClasses: 5, inChannels: 1, width: 4 } as const;
const COMBOS: ModelConfig[] = BLOCK_ORDERS.flatMap((blockOrder) =>
  BLOCK_ACTIVATIONS.flatMap((blockActivation) =>
    DOWNSAMPLES.flatMap((downsample) => [true, false].map((doubleSkip) => ({ ...BASE, blockOrder, blockActivation, downsample, doubleSkip }))),
  ),
);
const label = (c: ModelConfig): string => `${c.blockOrder}/${c.blockActivation}/${c.downsample}/${c.doubleSkip ? 'double' : 'classic'}`;

function tmpFile(name: string): string {
  return path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'bnn-variants-')), name);
}

const python = spawnSync('python3', ['-c', 'import torch'], { encoding: 'utf8' });
test('every combination has the PyTorch reference\'s parameter and buffer names, in its order', { skip: python.status !== 0 && 'python3 with torch not available' }, () => {
  const script = `
import json, sys
sys.path.insert(0, ${JSON.stringify(path.join(packageRoot, 'scripts', 'golden'))})
from bnn_reference import ResNet18, BinaryConv2d
out = []
for c in json.loads(sys.argv[1]):
    m = ResNet18(num_classes=c["numClasses"], in_channels=c["inChannels"], width=c["width"], double_skip=c["doubleSkip"],
                 block_order=c["blockOrder"], block_activation=c["blockActivation"], downsample=c["downsample"])
    out.append({"params": [[n, list(p.shape)] for n, p in m.named_parameters()],
                "buffers": [n for n, _ in m.named_buffers()],
                "binary": [n for n, x in m.named_modules() if isinstance(x, BinaryConv2d)]})
print(json.dumps(out))
`;
  const r = spawnSync('python3', ['-c', script, JSON.stringify(COMBOS)], { encoding: 'utf8', maxBuffer: 1 << 26 });
  assert.equal(r.status, 0, r.stderr);
  const reference = JSON.parse(r.stdout) as { params: [string, number[]][]; buffers: string[]; binary: string[] }[];
  COMBOS.forEach((config, i) => {
    scope(() => {
      using model = createModel({ ...config, binaryWeights: true });
      const ref = reference[i]!;
      const params = [...model.namedParameters()].map(([n, p]): [string, number[]] => [n, p.shape]);
      assert.deepEqual(params, ref.params, `${label(config)}: parameters`);
      assert.deepEqual([...model.buffers().keys()], ref.buffers, `${label(config)}: buffers`);
      // The summary finds the same binary convolutions and counts every parameter.
      const s = model.summary({ height: 9, width: 9 });
      const total = params.reduce((a, [, shape]) => a + shape.reduce((x, y) => x * y, 1), 0);
      assert.equal(s.totalParams, total, `${label(config)}: summary parameter count`);
      assert.deepEqual(s.layers.filter((l) => l.type === 'BinaryConv2d').map((l) => l.name), ref.binary, `${label(config)}: binary layers`);
      const binaryWeights = params.filter(([n]) => ref.binary.includes(n.slice(0, -'.weight'.length))).reduce((a, [, sh]) => a + sh.reduce((x, y) => x * y, 1), 0);
      assert.equal(s.binaryParams, binaryWeights, `${label(config)}: 1-bit parameters`);
      for (const l of s.layers.filter((x) => x.type === 'BinaryConv2d')) assert.equal(l.inputBits, 1, `${l.name} multiplies signs`);
    });
  });
});

test('every combination trains: a forward on an odd-sized batch, a gradient for every parameter', () => {
  for (const config of COMBOS) {
    scope(() => {
      manualSeed(5);
      using model = createModel({ ...config, binaryWeights: true });
      const logits = model.train().forward(Tensor.randn([2, 1, 9, 9]));
      assert.deepEqual(logits.shape, [2, 5]);
      const loss = crossEntropy(logits, Tensor.fromArray(new BigInt64Array([1n, 3n]), [2]));
      loss.backward();
      for (const [name, p] of model.namedParameters()) assert.ok(p.grad, `${label(config)}: ${name} has a gradient`);
      const evalOut = model.eval().forward(Tensor.randn([1, 1, 7, 7])).toFloat32Array();
      assert.ok(evalOut.every(Number.isFinite), `${label(config)}: finite eval logits`);
    });
  }
});

test('the defaults are the recipe; a config without the switches (an older file) reads as the recipe', async () => {
  const resolved = resolveModelConfig({});
  assert.equal(resolved.blockOrder, 'bn-sign-conv');
  assert.equal(resolved.blockActivation, 'prelu');
  assert.equal(resolved.downsample, 'avgpool');
  await scope(async () => {
    manualSeed(3);
    using model = createModel({ ...BASE, binaryWeights: true });
    const file = tmpFile('old.safetensors');
    // As an older bnn-torch wrote it: the config without the three fields.
    const { blockOrder: _o, blockActivation: _a, downsample: _d, ...older } = model.config;
    await writeStateFile(file, model.stateDict(), { format: 'pt', [CONFIG_METADATA_KEY]: JSON.stringify(older) });
    using loaded = await loadModelFile(file);
    assert.equal(loaded.config.blockOrder, 'bn-sign-conv');
    const x = Tensor.randn([2, 1, 9, 9]);
    assert.deepEqual(loaded.eval().forward(x).toFloat32Array(), model.eval().forward(x).toFloat32Array());
  });
});

test('the switches travel with the weights: saveWeights records them and loading rebuilds the same network', async () => {
  await scope(async () => {
    manualSeed(4);
    const config: ModelConfig = { ...BASE, blockOrder: 'sign-conv-bn', blockActivation: 'none', downsample: 'binary', doubleSkip: false, binaryWeights: true };
    using model = createModel(config);
    model.train().forward(Tensor.randn([4, 1, 9, 9])); // running statistics away from their initial values
    const file = tmpFile('variant.safetensors');
    await model.saveWeights(file);
    const stored = JSON.parse(readSafetensorsSync(file).metadata[CONFIG_METADATA_KEY]!) as ModelConfig;
    assert.deepEqual([stored.blockOrder, stored.blockActivation, stored.downsample], ['sign-conv-bn', 'none', 'binary']);
    using loaded = await loadModelFile(file);
    assert.deepEqual(loaded.config, model.config);
    const x = Tensor.randn([2, 1, 9, 9]);
    assert.deepEqual(loaded.eval().forward(x).toFloat32Array(), model.eval().forward(x).toFloat32Array());
    // Weights of another structure do not fit: the names say so.
    using recipe = createModel({ ...BASE, doubleSkip: false, binaryWeights: true });
    await assert.rejects(recipe.loadWeights(file), (e: Error) => isBnnError(e) && /layer1\.0\.prelu1\.weight/.test(e.message));
  });
});

test('bad values are refused with the field named, in TypeScript and in the native config', () => {
  assertThrowsCode(() => createModel({ ...BASE, blockOrder: 'bi-real' as never }), RangeError, 'BNN_INVALID_ARGUMENT', /blockOrder 'bi-real': expected one of 'bn-sign-conv', 'sign-conv-bn'/);
  assertThrowsCode(() => createModel({ ...BASE, blockActivation: 'gelu' as never }), RangeError, 'BNN_INVALID_ARGUMENT', /blockActivation 'gelu': expected one of 'prelu', 'relu', 'none'/);
  assertThrowsCode(() => createModel({ ...BASE, downsample: 2 as never }), TypeError, 'BNN_INVALID_TYPE', /downsample must be one of 'avgpool', 'strided', 'binary', got/);
  // The binding's own check (a caller of the raw binding skips resolveModelConfig).
  const full = resolveModelConfig(BASE);
  for (const [field, value] of [['blockOrder', 'bi-real'], ['blockActivation', 'gelu'], ['downsample', 'maxpool']] as const) {
    assert.throws(
      () => new (native().ModelHandle)({ ...full, [field]: value } as never),
      (e: Error) => isBnnError(e) && e.code === 'BNN_INVALID_ARGUMENT' && e.message.includes(`${field} must be one of`) && e.message.includes(`got '${value}'`),
      field,
    );
  }
});

test('the packed export refuses a network that is not the recipe\'s structure, naming the field', async () => {
  await scope(async () => {
    for (const [field, value] of [['blockOrder', 'sign-conv-bn'], ['blockActivation', 'relu'], ['blockActivation', 'none'], ['downsample', 'strided'], ['downsample', 'binary']] as const) {
      using model = createModel({ ...BASE, binaryWeights: true, [field]: value });
      const out = tmpFile('model.packed.safetensors');
      await assert.rejects(
        model.exportPacked(out),
        (e: Error) => isBnnError(e) && e.code === 'BNN_INVALID_ARGUMENT' && e.message.includes(`the model has ${field} '${value}'`),
        `${field} ${value}`,
      );
      assert.equal(fs.existsSync(out), false, 'nothing written');
    }
    using recipe = createModel({ ...BASE, binaryWeights: true });
    const out = tmpFile('recipe.packed.safetensors');
    await recipe.exportPacked(out);
    assert.ok(fs.existsSync(out), 'the recipe still packs');
  });
});

// The activation probe in Bi-Real's order: each conv's sign sees the conv's own input (the block's
// input; in a classic block, the first activation's output for conv2), as PyTorch's reference
// computes it in train mode.
const BIREAL_SIGN_INPUTS = `
import json, sys
import torch
from safetensors.torch import load_file
from safetensors import safe_open
sys.path.insert(0, sys.argv[1])
from bnn_reference import build_from_config, ClassicBasicBlock
path = sys.argv[2]
with safe_open(path, "pt") as f:
    cfg = json.loads(f.metadata()["config"])
model = build_from_config(cfg)
model.load_state_dict({k[6:]: v for k, v in load_file(path).items() if k.startswith("state/")})
model.train()
out = []
def record(name, x):
    out.append({"layer": name, "values": x.numel(), "saturated": int((x.abs() >= 1).sum()), "positive": int((x >= 0).sum())})
for name, m in model.named_modules():
    if name.count(".") == 1 and name.startswith("layer"):
        classic = isinstance(m, ClassicBasicBlock)
        m.register_forward_pre_hook(lambda _m, inp, n=name + (".conv1" if classic else ".conv"): record(n, inp[0]))
        if classic:
            getattr(m, m.act_names[0]).register_forward_hook(lambda _m, _i, y, n=name + ".conv2": record(n, y))
    # A binary shortcut's sign sees the block's input itself (downsample 'binary').
    if name.endswith(".downsample.0") and type(m).__name__ == "BinaryConv2d":
        m.register_forward_pre_hook(lambda _m, inp, n=name: record(n, inp[0]))
with torch.no_grad():
    model(load_file(path)["input"])
print(json.dumps(out))
`;

for (const name of ['model-bireal-classic-prelu-binary-stage2', 'model-bireal-relu-strided-stage1']) {
  test(`activationStatistics in Bi-Real's order (${name}): the conv inputs PyTorch's signs see`, { skip: python.status !== 0 && 'python3 with torch not available' }, async () => {
    const fx = loadFixture(name);
    const r = spawnSync('python3', ['-c', BIREAL_SIGN_INPUTS, path.join(packageRoot, 'scripts', 'golden'), fx.file], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const expected = JSON.parse(r.stdout) as { layer: string; values: number; saturated: number; positive: number }[];
    using model = createModel(JSON.parse(fx.metadata.config!) as ModelConfig);
    model.loadStateDict(fx.group('state/'));
    const stats = await model.activationStatistics(fx.tensors.get('input')!);
    assert.deepEqual(stats.map((s) => s.layer), expected.map((e) => e.layer));
    // One per binary convolution: the blocks' 16, and the 3 shortcuts' with downsample 'binary'.
    assert.equal(stats.length, name.includes('-binary-') ? 19 : 16);
    for (const [i, e] of expected.entries()) {
      const s = stats[i]!;
      assert.equal(s.values, e.values, e.layer);
      // The fixtures keep sign inputs 1e-3 away from 0 and ±1: the counts agree exactly.
      assert.equal(Math.round(s.saturated * s.values), e.saturated, `${e.layer}: saturated`);
      assert.equal(Math.round(s.positive * s.values), e.positive, `${e.layer}: positive`);
    }
    if (name.includes('-relu-')) {
      // ReLU after the add (and the stem's ReLU) leave nothing negative for the next sign: in this
      // order every sign is +1. That is what the switches say; the ablation measures it.
      assert.ok(expected.every((e) => e.positive === e.values), 'every sign input is >= 0');
    } else {
      assert.ok(expected.some((e) => e.positive < e.values), 'some sign inputs are negative');
    }
  });
}
