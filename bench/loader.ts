// Input-pipeline throughput: images/s the DataLoader delivers to a consumer that only disposes the
// batches, for Fashion-MNIST-sized (1x28x28) and CIFAR-sized (3x32x32) data, batch 128.
// Run: node --import tsx bench/loader.ts [--epochs N]
// Uses the real Fashion-MNIST when installed, synthetic in-memory data otherwise (and for CIFAR).
import fs from 'node:fs';
import os from 'node:os';

import { DataLoader, Dataset, scope, Tensor, type DataLoaderOptions } from '../src/index.js';

const epochsArg = process.argv.indexOf('--epochs');
const EPOCHS = epochsArg > 0 ? Number(process.argv[epochsArg + 1]) : 3;
const BATCH = 128;

function synthetic(name: string, n: number, c: number, h: number, w: number): Dataset {
  const pixels = new Uint8Array(n * c * h * w);
  let s = 12345;
  for (let i = 0; i < pixels.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    pixels[i] = s >>> 24;
  }
  const labels = Array.from({ length: n }, (_, i) => i % 10);
  return scope(() =>
    Dataset.fromTensors(Tensor.fromArray(pixels, [n, c, h, w]), Tensor.fromArray(labels, [n], { dtype: 'int64' }), {
      name,
      numClasses: 10,
      mean: new Array<number>(c).fill(0.5),
      std: new Array<number>(c).fill(0.25),
    }),
  );
}

/** Best images/s over EPOCHS epochs (the first one also warms caches). */
async function measure(dataset: Dataset, options: DataLoaderOptions): Promise<{ imagesPerSecond: number; msPerBatch: number; batches: number }> {
  using loader = new DataLoader(dataset, { batchSize: BATCH, seed: 1, ...options });
  let best = 0;
  for (let e = 0; e < EPOCHS; e++) {
    let images = 0;
    const start = performance.now();
    for await (const batch of loader.epoch(e)) {
      images += batch.images.shape[0]!;
      batch.dispose();
    }
    best = Math.max(best, images / ((performance.now() - start) / 1000));
  }
  return { imagesPerSecond: best, msPerBatch: (BATCH / best) * 1000, batches: loader.batchesPerEpoch };
}

const rows: { data: string; pipeline: string; batches: number; imagesPerSecond: number; msPerBatch: number }[] = [];

const fashionRoot = '/usr/share/datasets/fashion-mnist';
const fashion = fs.existsSync(fashionRoot) ? await Dataset.load('fashion-mnist') : synthetic('fashion-mnist (synthetic)', 60000, 1, 28, 28);
const cifar = synthetic('cifar10 (synthetic)', 50000, 3, 32, 32);

for (const [dataset, padding] of [[fashion, 2], [cifar, 4]] as const) {
  const label = `${dataset.name === 'fashion-mnist' ? 'fashion-mnist (real)' : dataset.name} ${dataset.size}x${dataset.shape.join('x')}`;
  for (const [pipeline, options] of [
    [`shuffle + crop(pad ${padding}) + flip + normalise`, { augment: { cropPadding: padding, hflip: true } }],
    ['eval: in order, normalise only', { shuffle: false }],
  ] as const) {
    rows.push({ data: label, pipeline, ...(await measure(dataset, options)) });
  }
}
fashion.dispose();
cifar.dispose();

console.log(`DataLoader throughput, batch ${BATCH}, CPU batches, best of ${EPOCHS} epochs (${os.cpus().length} cores: ${os.cpus()[0]?.model ?? '?'})`);
console.log('| data | pipeline | batches/epoch | images/s | ms/batch |');
console.log('| --- | --- | ---: | ---: | ---: |');
for (const r of rows) {
  console.log(`| ${r.data} | ${r.pipeline} | ${r.batches} | ${Math.round(r.imagesPerSecond).toLocaleString('en-US')} | ${r.msPerBatch.toFixed(3)} |`);
}
