// Packed engine against LibTorch on a trained run: every Fashion-MNIST test image through both,
// classes compared, logits compared (relative to the largest logit of the image), accuracies.
//   node --import tsx scripts/infer-parity.ts runs/<run>/final.safetensors [N]
import path from 'node:path';
import fs from 'node:fs';
import { createModel, exportPacked, InferenceModel, manualSeed, scope, Tensor } from '../src/index.js';
import { normalizationTable } from '../src/infer/inference-model.js';
import { readIdx } from '../src/io/idx.js';
const file = process.argv[2]!;
const dir = fs.mkdtempSync('/tmp/dbg-');
const { readModelConfig } = await import('../src/cli/commands/model-file.js');
using model = createModel((await readModelConfig(file)).config);
await model.loadWeights(file);
model.eval();
const packed = path.join(dir, 'p.safetensors');
await exportPacked(file, packed);
const images = await readIdx('/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz');
const labels = await readIdx('/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz');
const n = Number(process.argv[3] ?? 10000);
const table = normalizationTable(0.286, 0.353);
const x = Float32Array.from(images.data.subarray(0, n * 784), (v) => table[v]!);
const ref = new Float32Array(n * 10);
for (let i = 0; i < n; i += 500) {
  const m = Math.min(500, n - i);
  const y = await scope(async () => (await model.forwardAsync(Tensor.fromArray(x.subarray(i * 784, (i + m) * 784), [m, 1, 28, 28]))).toFloat32Array());
  ref.set(y, i * 10);
}
using engine = await InferenceModel.load(packed);
const got = await engine.predict({ data: x, shape: [n, 1, 28, 28] }, { batchSize: 250 });
let same = 0, bad = 0, maxRel = 0, accE = 0, accT = 0;
const rels: number[] = [];
const differ: { image: number; torchClass: number; engineClass: number; torchMargin: number; maxRel: number }[] = [];
for (let i = 0; i < n; i++) {
  const a = got.logits.subarray(i * 10, i * 10 + 10), b = ref.subarray(i * 10, i * 10 + 10);
  const scale = Math.max(1, ...Array.from(b, Math.abs));
  let r = 0; for (let j = 0; j < 10; j++) r = Math.max(r, Math.abs(a[j]! - b[j]!) / scale);
  rels.push(r); maxRel = Math.max(maxRel, r); if (r > 1e-4) bad++;
  const am = (v: Float32Array) => v.indexOf(Math.max(...v));
  if (am(a) === am(b)) same++;
  else {
    // A different class: how close LibTorch's own top two logits were (a tie broken otherwise).
    const sorted = Array.from(b).sort((p, q) => q - p);
    differ.push({ image: i, torchClass: am(b), engineClass: am(a), torchMargin: sorted[0]! - sorted[1]!, maxRel: r });
  }
  if (am(a) === labels.data[i]) accE++; if (am(b) === labels.data[i]) accT++;
}
rels.sort((p, q) => q - p);
console.log(JSON.stringify({ n, sameClass: same, over1e4: bad, maxRel, medianRel: rels[Math.floor(n / 2)], top: rels.slice(0, 8), accEngine: accE / n, accTorch: accT / n, differ }));
