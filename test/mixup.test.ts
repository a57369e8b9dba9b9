// Mixup's maths against PyTorch (its draws, the mixed images and the loss, with their gradients),
// and the one-call step that trains on them.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';

import {
  createModel,
  crossEntropy,
  distillationLoss,
  drawMixup,
  manualSeed,
  mixImages,
  mixupCrossEntropy,
  mixupSeed,
  scope,
  SGD,
  StepMetrics,
  Tensor,
  trainStep,
  type Mixing,
  type Model,
} from '../src/index.js';
import { mulberry32 } from '../src/data/batches.js';
import { TOY_CLASSES, TOY_SHAPE, toyData } from './support/toy-task.js';

const python = spawnSync('python3', ['-c', 'import torch'], { encoding: 'utf8' });
const noTorch = python.status !== 0 && 'python3 with torch not available';

/** Runs a Python snippet with torch, passing `input` as JSON on argv[1], and parses its JSON output. */
function torchJson<T>(script: string, input: unknown): T {
  const r = spawnSync('python3', ['-c', `import json, sys, torch\ntorch.set_num_threads(1)\n${script}`, JSON.stringify(input)], { encoding: 'utf8', maxBuffer: 1 << 26 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as T;
}

const int64 = (values: readonly number[]): Tensor => Tensor.fromArray(values, [values.length], { dtype: 'int64' });
const numbers = (t: Tensor): number[] => Array.from(t.toTypedArray() as ArrayLike<number | bigint>, Number);
const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  assert.equal(a.length, b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
};

test("drawMixup is PyTorch's Beta (via _sample_dirichlet) then randperm on one generator seeded with the seed alone", { skip: noTorch }, () => {
  const cases = [
    { alpha: 0.2, n: 8, seed: 12345 },
    { alpha: 1, n: 32, seed: 0 },
    { alpha: 0.4, n: 1, seed: 2 ** 40 + 7 },
    { alpha: 3.5, n: 128, seed: mixupSeed(7, 2, 3, 11) },
  ];
  const want = torchJson<{ lambda: number; index: number[] }[]>(
    `out = []
for c in json.loads(sys.argv[1]):
    g = torch.Generator().manual_seed(c["seed"])
    lam = torch._sample_dirichlet(torch.full((2,), c["alpha"], dtype=torch.float64), g)[0].item()
    out.append({"lambda": lam, "index": torch.randperm(c["n"], generator=g).tolist()})
print(json.dumps(out))`,
    cases,
  );
  cases.forEach((c, i) =>
    scope(() => {
      const d = drawMixup(c.alpha, c.n, c.seed);
      assert.equal(d.lambda, want[i]!.lambda, `lambda of ${JSON.stringify(c)}`);
      assert.deepEqual(numbers(d.index), want[i]!.index, `permutation of ${JSON.stringify(c)}`);
    }),
  );
});

test('a small alpha draws lambda near 0 or 1 as Beta(alpha, alpha) does, never the 0.5 that ATen\'s Dirichlet underflows to', () => {
  scope(() => {
    for (const alpha of [1e-4, 1e-3, 0.01, 0.04]) {
      const lambdas = Array.from({ length: 2000 }, (_, i) => drawMixup(alpha, 2, mixupSeed(1, 1, 0, i)).lambda);
      assert.ok(lambdas.every((l) => l >= 0 && l <= 1), `${alpha}: in [0, 1]`);
      // Beta(a, a): E[lambda (1 - lambda)] = a / (2 (2a + 1)); each half holds half the mass.
      const spread = lambdas.reduce((s, l) => s + l * (1 - l), 0) / lambdas.length;
      const want = alpha / (2 * (2 * alpha + 1));
      assert.ok(spread < want * 1.6 + 1e-4 && spread > want * 0.5 - 1e-4, `${alpha}: E[l(1-l)] ${spread.toExponential(2)}, Beta's ${want.toExponential(2)}`);
      const low = lambdas.filter((l) => l < 0.5).length;
      assert.ok(low > 900 && low < 1100, `${alpha}: ${low} of 2000 below 0.5`);
      assert.ok(lambdas.filter((l) => l === 0.5).length === 0, `${alpha}: no draw is exactly 0.5`);
    }
    // Where both log-Gammas reach -inf (alpha ~ 1e-310), still 0 or 1 in about equal numbers, never NaN.
    const extreme = Array.from({ length: 200 }, (_, i) => drawMixup(1e-310, 2, i).lambda);
    assert.ok(extreme.every((l) => l === 0 || l === 1), 'alpha 1e-310: 0 or 1');
    const ones = extreme.filter((l) => l === 1).length;
    assert.ok(ones > 60 && ones < 140, `alpha 1e-310: ${ones} of 200 are 1`);
  });
});

test('the mixup stream is a pure function of (seed, stage, epoch, step): the same draw again, another draw elsewhere', () => {
  scope(() => {
    const seeds = new Set<number>();
    for (const s of [0, 1]) for (const stage of [1, 2]) for (const e of [0, 1, 2]) for (const b of [0, 1, 5]) seeds.add(mixupSeed(s, stage, e, b));
    assert.equal(seeds.size, 2 * 2 * 3 * 3, 'every position its own seed');
    assert.equal(mixupSeed(3, 1, 4, 9), mixupSeed(3, 1, 4, 9));
    assert.ok(Number.isSafeInteger(mixupSeed(2 ** 40, 2, 400, 10000)));
    const a = drawMixup(0.2, 64, mixupSeed(3, 1, 4, 9));
    const b = drawMixup(0.2, 64, mixupSeed(3, 1, 4, 9));
    const c = drawMixup(0.2, 64, mixupSeed(3, 1, 4, 10));
    assert.equal(a.lambda, b.lambda);
    assert.deepEqual(numbers(a.index), numbers(b.index));
    assert.notEqual(a.lambda, c.lambda);
    assert.deepEqual([...numbers(a.index)].sort((x, y) => x - y), Array.from({ length: 64 }, (_, i) => i), 'a permutation');
    // Beta(0.2, 0.2) piles up near 0 and 1; its mean is 1/2.
    const lambdas = Array.from({ length: 400 }, (_, i) => drawMixup(0.2, 2, mixupSeed(0, 1, 0, i)).lambda);
    assert.ok(lambdas.every((l) => l >= 0 && l <= 1));
    const mean = lambdas.reduce((x, y) => x + y, 0) / lambdas.length;
    assert.ok(Math.abs(mean - 0.5) < 0.06, `mean ${mean}`);
    assert.ok(lambdas.filter((l) => l < 0.1 || l > 0.9).length > 200, 'U-shaped');
  });
});

test("mixed images, the mixup loss and their gradients (logits and input) are PyTorch's", { skip: noTorch }, () => {
  const rand = mulberry32(17);
  const n = 6;
  const classes = 5;
  const pixels = 2 * 3 * 3;
  const logits = Array.from({ length: n * classes }, () => (rand() - 0.5) * 6);
  const labels = Array.from({ length: n }, (_, i) => (i * 2) % classes);
  const images = Array.from({ length: n * pixels }, () => rand() * 2 - 1);
  const upstream = Array.from({ length: n * pixels }, () => rand() - 0.5);
  const index = [3, 0, 5, 1, 2, 4];
  const cases = [0.7, 0.13, 1, 0].flatMap((lambda) => [0, 0.1].map((smoothing) => ({ lambda, smoothing })));
  const want = torchJson<{ loss: number; glogits: number[]; mixed: number[]; gimages: number[] }[]>(
    `d = json.loads(sys.argv[1])
out = []
for c in d["cases"]:
    lam, idx = c["lambda"], torch.tensor(d["index"])
    z = torch.tensor(d["logits"], dtype=torch.float32).reshape(${n}, ${classes}).requires_grad_()
    y = torch.tensor(d["labels"])
    ce = lambda t: torch.nn.functional.cross_entropy(z, t, label_smoothing=c["smoothing"])
    loss = lam * ce(y) + (1 - lam) * ce(y[idx])
    loss.backward()
    x = torch.tensor(d["images"], dtype=torch.float32).reshape(${n}, 2, 3, 3).requires_grad_()
    mixed = lam * x + (1 - lam) * x[idx]
    mixed.backward(torch.tensor(d["upstream"], dtype=torch.float32).reshape(${n}, 2, 3, 3))
    out.append({"loss": loss.item(), "glogits": z.grad.flatten().tolist(), "mixed": mixed.detach().flatten().tolist(), "gimages": x.grad.flatten().tolist()})
print(json.dumps(out))`,
    { cases, index, logits, labels, images, upstream },
  );
  cases.forEach(({ lambda, smoothing }, i) =>
    scope(() => {
      const what = `lambda ${lambda}, smoothing ${smoothing}`;
      const ref = want[i]!;
      const mixing: Mixing = { lambda, index: int64(index) };
      const z = Tensor.fromArray(logits, [n, classes], { requiresGrad: true });
      const loss = mixupCrossEntropy(z, int64(labels), mixing, { labelSmoothing: smoothing });
      assert.ok(Math.abs(loss.item() - ref.loss) <= 1e-6 * ref.loss, `${what}: loss ${loss.item()} vs PyTorch ${ref.loss}`);
      loss.backward();
      assert.ok(maxDiff(z.grad!.toFloat32Array(), ref.glogits) < 1e-7, `${what}: logit gradient`);
      const x = Tensor.fromArray(images, [n, 2, 3, 3], { requiresGrad: true });
      const mixed = mixImages(x, mixing);
      assert.ok(maxDiff(mixed.toFloat32Array(), ref.mixed) < 1e-7, `${what}: mixed images`);
      mixed.backward(Tensor.fromArray(upstream, [n, 2, 3, 3]));
      assert.ok(maxDiff(x.grad!.toFloat32Array(), ref.gimages) < 1e-7, `${what}: input gradient`);
      if (lambda === 1) {
        // lambda = 1 is the plain loss exactly, and the images as they were.
        assert.equal(loss.item(), crossEntropy(Tensor.fromArray(logits, [n, classes]), int64(labels), { labelSmoothing: smoothing }).item());
        assert.deepEqual(mixed.toFloat32Array(), Float32Array.from(images));
      }
    }),
  );
});

test('bad mixing is a clear error', () => {
  scope(() => {
    const z = Tensor.zeros([3, 4]);
    const y = int64([0, 1, 2]);
    const bad: [() => unknown, RegExp][] = [
      [() => mixupCrossEntropy(z, y, { lambda: 1.5, index: int64([0, 1, 2]) }), /mixup lambda must be a number in \[0, 1\], got 1\.5/],
      [() => mixupCrossEntropy(z, y, { lambda: 0.5, index: int64([0, 1]) }), /mixup: index must be \[N\] with N = 3 \(the batch size\), got \[2\]/],
      [() => mixupCrossEntropy(z, y, { lambda: 0.5, index: int64([0, 1, 3]) }), /mixup: index must be in \[0, 2\], found 3/],
      [() => mixupCrossEntropy(z, y, { lambda: 0.5, index: Tensor.fromArray([0, 1, 2], [3]) }), /mixup: index must be int64, got Float/],
      [() => mixImages(Tensor.zeros([2, 1, 2, 2]), { lambda: 0.5, index: int64([0, 1, 1, 0]) }), /index must be \[N\] with N = 2/],
      [() => drawMixup(0, 4, 1), /mixup alpha must be a positive number, got 0/],
      [() => drawMixup(0.2, 4, -1), /seed must be at least 0, got -1/],
      [() => mixupSeed(0, 1, 0.5, 0), /epoch must be an integer, got 0\.5/],
    ];
    for (const [f, msg] of bad) assert.throws(f, msg);
  });
});

const MODEL = { inChannels: 1, width: 4, numClasses: TOY_CLASSES };
const N = 8;

function batch(): { x: Tensor; y: Tensor } {
  const d = toyData(N, 5);
  return { x: Tensor.fromArray(d.images, [N, ...TOY_SHAPE]), y: Tensor.fromArray(d.labels, [N], { dtype: 'int64' }) };
}

function seededModel(): Model {
  manualSeed(4);
  return createModel(MODEL);
}

const params = (m: Model): Float32Array[] => scope(() => m.parameters().map((t) => t.toFloat32Array()));

test('a mixup step trains on the mixed images with the mixup loss: its loss and its SGD update are those of the composed forward and backward', async () => {
  const index = [5, 2, 7, 0, 1, 3, 6, 4];
  for (const [lambda, smoothing] of [[0.3, 0], [0.8, 0.1]] as const) {
    await scope(async () => {
      const { x, y } = batch();
      const mixing: Mixing = { lambda, index: int64(index) };
      const lr = 0.1;
      // The reference: the same model, forward on mixImages, mixupCrossEntropy, backward; SGD without
      // momentum or decay moves each parameter by -lr x its gradient.
      using ref = seededModel();
      const before = params(ref);
      ref.train();
      const loss = mixupCrossEntropy(ref.forward(mixImages(x, mixing)), y, mixing, { labelSmoothing: smoothing });
      const want = loss.item();
      loss.backward();
      const grads = ref.parameters().map((p) => p.grad!.toFloat32Array());
      using m = seededModel();
      using opt = new SGD(m, { lr, momentum: 0, weightDecay: 0 });
      const r = await trainStep(m, opt, x, y, { mixup: mixing, labelSmoothing: smoothing });
      assert.ok(Math.abs(r.loss - want) <= 1e-6 * want, `lambda ${lambda}: step loss ${r.loss} vs composed ${want}`);
      const after = params(m);
      let worst = 0;
      after.forEach((p, i) => {
        const expected = before[i]!.map((v, j) => v - lr * grads[i]![j]!);
        worst = Math.max(worst, maxDiff(p, expected));
      });
      assert.ok(worst < 1e-6, `lambda ${lambda}: update differs by ${worst}`);
    });
  }
});

test('a mixup step: lambda = 1 is the plain step bit for bit; accuracy counts the dominant label; the sync-free path agrees', async () => {
  await scope(async () => {
    const { x, y } = batch();
    const identity: Mixing = { lambda: 1, index: int64([7, 6, 5, 4, 3, 2, 1, 0]) };
    using a = seededModel();
    using b = seededModel();
    using optA = new SGD(a, { lr: 0.05, momentum: 0.9 });
    using optB = new SGD(b, { lr: 0.05, momentum: 0.9 });
    const plain = await trainStep(a, optA, x, y);
    const mixed = await trainStep(b, optB, x, y, { mixup: identity });
    assert.deepEqual([mixed.loss, mixed.correct], [plain.loss, plain.correct]);
    assert.deepEqual(params(b), params(a), 'lambda = 1: the same update');

    // Accuracy under mixup: hits on labels where lambda >= 0.5, else on labels[index].
    const index = [1, 2, 3, 4, 5, 6, 7, 0];
    for (const lambda of [0.6, 0.4]) {
      using m = seededModel();
      m.train();
      const mixing: Mixing = { lambda, index: int64(index) };
      const predicted = scope(() => {
        const z = m.forward(mixImages(x, mixing)).toFloat32Array();
        return Array.from({ length: N }, (_, i) => {
          const row = [...z.slice(i * TOY_CLASSES, (i + 1) * TOY_CLASSES)];
          return row.indexOf(Math.max(...row));
        });
      });
      const labels = numbers(y);
      const dominant = lambda >= 0.5 ? labels : index.map((j) => labels[j]!);
      // Train mode updates BatchNorm's running statistics only: the step's forward sees what this one saw.
      using fresh = seededModel();
      using opt = new SGD(fresh, { lr: 1e-9, momentum: 0 });
      const r = await trainStep(fresh, opt, x, y, { mixup: mixing });
      assert.equal(r.correct, predicted.filter((p, i) => p === dominant[i]).length, `lambda ${lambda}`);
    }

    // Drawn from { alpha, seed }: the same as given the draw; and the sync-free step (device-side
    // metrics, fused SGD) trains the same.
    const draw = drawMixup(0.4, N, 99);
    using c = seededModel();
    using d = seededModel();
    using e = seededModel();
    using optC = new SGD(c, { lr: 0.05, momentum: 0.9 });
    using optD = new SGD(d, { lr: 0.05, momentum: 0.9 });
    using optE = new SGD(e, { lr: 0.05, momentum: 0.9 });
    const rc = await trainStep(c, optC, x, y, { mixup: { alpha: 0.4, seed: 99 } });
    const rd = await trainStep(d, optD, x, y, { mixup: draw });
    assert.deepEqual([rc.loss, rc.correct], [rd.loss, rd.correct]);
    assert.deepEqual(params(c), params(d));
    using metrics = new StepMetrics();
    await trainStep(e, optE, x, y, { mixup: { alpha: 0.4, seed: 99 }, metrics });
    const t = await metrics.read();
    assert.ok(Math.abs(t.lossSum / t.count - rc.loss) <= 1e-6 * rc.loss, `device-side loss ${t.lossSum / t.count} vs ${rc.loss}`);
    assert.equal(t.correct, rc.correct);
    const worst = Math.max(...params(e).map((p, i) => maxDiff(p, params(c)[i]!)));
    assert.ok(worst < 1e-6, `sync-free update differs by ${worst}`);

    // lambda < 0.5 (the draw above is 0.59): the device-side hit count scores labels[index] too.
    const low: Mixing = { lambda: 0.3, index: int64([3, 0, 6, 1, 7, 2, 5, 4]) };
    using f = seededModel();
    using g = seededModel();
    using optF = new SGD(f, { lr: 0.05, momentum: 0.9 });
    using optG = new SGD(g, { lr: 0.05, momentum: 0.9 });
    const rf = await trainStep(f, optF, x, y, { mixup: low });
    using lowMetrics = new StepMetrics();
    await trainStep(g, optG, x, y, { mixup: low, metrics: lowMetrics });
    const tl = await lowMetrics.read();
    assert.ok(Math.abs(tl.lossSum / tl.count - rf.loss) <= 1e-6 * rf.loss, `lambda 0.3: device-side loss ${tl.lossSum / tl.count} vs ${rf.loss}`);
    assert.equal(tl.correct, rf.correct, 'lambda 0.3: the same hits on the dominant labels');

    await assert.rejects(trainStep(c, optC, x, y, { mixup: { lambda: 0.5, index: int64([0, 1]) } }), /mixup: index must be \[N\] with N = 8/);
    await assert.rejects(trainStep(c, optC, x, y, { mixup: { alpha: -1, seed: 0 } }), /mixup\.alpha must be a positive number, got -1/);
    await assert.rejects(trainStep(c, optC, x, y, { mixup: 0.2 as never }), /mixup must be an object/);
  });
});

test('mixup with distillation: the teacher sees the mixed images, and the loss is (1 - w) x the mixup loss + w x T^2 x KL, on both step paths', async () => {
  await scope(async () => {
    const { x, y } = batch();
    const mixing: Mixing = { lambda: 0.35, index: int64([5, 2, 7, 0, 1, 3, 6, 4]) };
    const temperature = 2, weight = 0.7;
    manualSeed(9);
    using teacher = createModel({ ...MODEL, binaryActivations: false });
    teacher.eval();
    using ref = seededModel();
    ref.train();
    const mixed = mixImages(x, mixing);
    const studentLogits = ref.forward(mixed);
    const teacherLogits = teacher.forward(mixed);
    // distillationLoss with weight 1 is the KL term alone (T^2 x batchmean KL).
    const kl = distillationLoss(studentLogits, teacherLogits, y, { temperature, weight: 1 }).item();
    const want = (1 - weight) * mixupCrossEntropy(studentLogits, y, mixing).item() + weight * kl;
    using a = seededModel();
    using optA = new SGD(a, { lr: 0.05, momentum: 0 });
    const r = await trainStep(a, optA, x, y, { mixup: mixing, distill: { teacher, temperature, weight } });
    assert.ok(Math.abs(r.loss - want) <= 1e-6 * Math.abs(want), `step loss ${r.loss} vs composed ${want}`);
    using b = seededModel();
    using optB = new SGD(b, { lr: 0.05, momentum: 0 });
    using metrics = new StepMetrics();
    await trainStep(b, optB, x, y, { mixup: mixing, distill: { teacher, temperature, weight }, metrics });
    const t = await metrics.read();
    assert.ok(Math.abs(t.lossSum / t.count - want) <= 1e-6 * Math.abs(want), `device-side loss ${t.lossSum / t.count} vs composed ${want}`);
  });
});
