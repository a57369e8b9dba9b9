// Compares the packed engine (build/Release/bnn_infer.node) with torch_reference.py's output:
//   node compare_torch.mjs PACKED.safetensors OUT_PREFIX [threads]
// Prints the class agreement, the largest relative logit difference (|a - b| / max|logit| of the
// image) and the tie cases; exits 1 if any class differs or a logit is off by more than 1e-4.
import fs from 'node:fs';
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const [packed, prefix, threadsArg] = process.argv.slice(2);
const b = require(new URL('../../../build/Release/bnn_infer.node', import.meta.url).pathname);
const meta = JSON.parse(fs.readFileSync(prefix + '.json', 'utf8'));
const input = new Float32Array(fs.readFileSync(prefix + '.input.f32').buffer.slice(0));
const ref = new Float32Array(fs.readFileSync(prefix + '.logits.f32').buffer.slice(0));
const labels = fs.existsSync(prefix + '.labels.u8') ? fs.readFileSync(prefix + '.labels.u8') : null;
const m = await b.loadModel(packed);
const t0 = performance.now();
const got = await m.predict(input, meta.shape, { threads: Number(threadsArg ?? 2) });
const ms = performance.now() - t0;
const k = meta.classes, n = meta.shape[0];
let same = 0, worst = 0, correctRef = 0, correctGot = 0;
const argmax = (a, i) => { let best = 0; for (let j = 1; j < k; ++j) if (a[i * k + j] > a[i * k + best]) best = j; return best; };
const diffs = [];
for (let i = 0; i < n; ++i) {
  let scale = 1e-6;
  for (let j = 0; j < k; ++j) scale = Math.max(scale, Math.abs(ref[i * k + j]));
  for (let j = 0; j < k; ++j) worst = Math.max(worst, Math.abs(got[i * k + j] - ref[i * k + j]) / scale);
  const a = argmax(ref, i), g = argmax(got, i);
  if (a === g) same++; else diffs.push(i);
  if (labels) { correctRef += labels[i] === a; correctGot += labels[i] === g; }
}
console.log(`${n} images: same class ${same}/${n}, max relative logit difference ${worst.toExponential(3)}, ` +
  `engine ${ms.toFixed(1)} ms on ${m.info().isa}` + (labels ? `; accuracy torch ${(100 * correctRef / n).toFixed(2)}%, packed ${(100 * correctGot / n).toFixed(2)}%` : ''));
if (diffs.length) console.log('class differences at', diffs.slice(0, 20));
process.exit(same === n && worst <= 1e-4 ? 0 : 1);
