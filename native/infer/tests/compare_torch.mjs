// Compares the packed engine (build/Release/bnn_infer.node) with torch_reference.py's output:
//   node compare_torch.mjs PACKED.safetensors OUT_PREFIX [threads]
// Prints one line: class agreement, the relative logit differences (|a - b| / max|logit| of the
// image: median, 99th percentile, max), how many images exceed 1e-4, and the class differences.
//
// Exact agreement is not possible everywhere: LibTorch sums a conv's +-alpha products in float in
// its own order, the engine multiplies an exact integer sum by alpha, so activations differ in the
// last bits, and an activation that lies within that rounding of a sign threshold flips (one
// flipped sign moves the logits by ~1e-2 relative). Exit status 0 when at most 1% of the images
// exceed 1e-4 and every class difference is a tie within the image's own logit error (the engine's
// class scores within that error of LibTorch's top score); 1 otherwise.
import fs from 'node:fs';
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const [packed, prefix, threadsArg] = process.argv.slice(2);
const b = require(new URL('../../../build/Release/bnn_infer.node', import.meta.url).pathname);
const meta = JSON.parse(fs.readFileSync(prefix + '.json', 'utf8'));
// A copy of exactly the file's bytes: a small Buffer is a view into a shared pool, so `.buffer`
// alone would start elsewhere.
const floats = (path) => {
  const b = fs.readFileSync(path);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};
const input = floats(prefix + '.input.f32');
const ref = floats(prefix + '.logits.f32');
const labels = fs.existsSync(prefix + '.labels.u8') ? fs.readFileSync(prefix + '.labels.u8') : null;
const m = await b.loadModel(packed);
const t0 = performance.now();
const got = await m.predict(input, meta.shape, { threads: Number(threadsArg ?? 2) });
const ms = performance.now() - t0;
const k = meta.classes, n = meta.shape[0];
const argmax = (a, i) => { let best = 0; for (let j = 1; j < k; ++j) if (a[i * k + j] > a[i * k + best]) best = j; return best; };
let same = 0, correctRef = 0, correctGot = 0, unexplained = 0;
const rel = [], diffs = [];
for (let i = 0; i < n; ++i) {
  let scale = 1e-6, err = 0;
  for (let j = 0; j < k; ++j) scale = Math.max(scale, Math.abs(ref[i * k + j]));
  for (let j = 0; j < k; ++j) err = Math.max(err, Math.abs(got[i * k + j] - ref[i * k + j]));
  rel.push(err / scale);
  const a = argmax(ref, i), g = argmax(got, i);
  if (a === g) same++;
  else {
    const gap = ref[i * k + a] - ref[i * k + g];  // LibTorch's margin for its class over the engine's
    diffs.push(`${i} (torch ${a}, packed ${g}, torch margin ${gap.toPrecision(3)}, logit error ${err.toPrecision(3)})`);
    if (gap > 2 * err) unexplained++;
  }
  if (labels) { correctRef += labels[i] === a; correctGot += labels[i] === g; }
}
const sorted = [...rel].sort((x, y) => x - y);
const over = rel.filter((v) => v > 1e-4).length;
console.log(`${n} images: same class ${same}/${n}; relative logit difference median ${sorted[n >> 1].toExponential(2)}, ` +
  `p99 ${sorted[Math.floor(n * 0.99)].toExponential(2)}, max ${sorted[n - 1].toExponential(2)}; ${over} images above 1e-4; ` +
  `engine ${ms.toFixed(1)} ms on ${m.info().isa}` + (labels ? `; accuracy torch ${(100 * correctRef / n).toFixed(2)}%, packed ${(100 * correctGot / n).toFixed(2)}%` : ''));
if (diffs.length) console.log('class differences: ' + diffs.join('; '));
process.exit(unexplained === 0 && over <= n / 100 ? 0 : 1);
