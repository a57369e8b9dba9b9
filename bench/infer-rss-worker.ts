// One process of bench/infer.ts's memory comparison: 1000 random 28x28 images through a network,
// with the packed engine ('engine', LibTorch never loaded) or with LibTorch ('libtorch'); prints
// the process's peak resident memory.
//   node --import tsx bench/infer-rss-worker.ts engine|libtorch <file>
import fs from 'node:fs';

const [mode, file] = process.argv.slice(2) as ['engine' | 'libtorch', string];
const n = 1000;
const x = new Float32Array(n * 28 * 28).map(() => Math.random() * 2 - 1);
if (mode === 'engine') {
  const { InferenceModel } = await import('../src/infer/index.js');
  using model = await InferenceModel.load(file, { threads: 2 });
  await model.predict({ data: x, shape: [n, 1, 28, 28] });
} else {
  const { createModel, Tensor, scope } = await import('../src/index.js');
  const { readModelConfig } = await import('../src/cli/commands/model-file.js');
  using model = createModel((await readModelConfig(file)).config);
  await model.loadWeights(file);
  model.eval();
  for (let i = 0; i < n; i += 64) {
    const m = Math.min(64, n - i);
    await scope(async () => void (await model.forwardAsync(Tensor.fromArray(x.subarray(i * 784, (i + m) * 784), [m, 1, 28, 28]))));
  }
}
const maps = fs.readFileSync('/proc/self/maps', 'utf8');
console.log(JSON.stringify({ mode, maxRssMiB: process.resourceUsage().maxRSS / 1024, libtorchLoaded: /\/lib(torch|c10)[^/\s]*\.so/.test(maps) }));
