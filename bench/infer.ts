// Inference benchmark (issue 14): the packed XNOR-popcount engine (bnn_infer.node, no LibTorch)
// against LibTorch's float convolution and eval (PyTorch, bench/peer/infer.py) on the same
// machine, threads and shapes, in one run, ratios printed. Also the packed and float file sizes,
// the engine on every instruction set this CPU has, and the peak resident memory of a predicting
// process against one that loads LibTorch. Writes bench/results/infer.json.
//
// Every side (engine, PyTorch, LCE) reports the fastest of 9 runs (timeit's rule): on the 2-vCPU
// virtual machines measured, the host takes a vCPU away for milliseconds at a time, and a 2-thread
// call caught by that runs 2-6x slower, often for several runs in a row, which moved medians by as
// much between two runs of this script.
//
//   npm run bench:infer                 # everything
//   BENCH_QUICK=1 npm run bench:infer   # fewer repetitions
//   BENCH_ONLY=conv|model|rss           # one part
//   BENCH_THREADS=1                     # default 2
//   BENCH_LCE=0                         # leave Larq Compute Engine out (default: scripts/lce-venv
//                                       # makes its environment once, ~600 MB, then it runs)
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { benchBinaryConv, createModel, InferenceModel, inferenceIsas, manualSeed, scope, Tensor } from '../src/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.join(here, '..');
const quick = process.env.BENCH_QUICK === '1';
const threads = Number(process.env.BENCH_THREADS ?? 2);
const only = process.env.BENCH_ONLY;
const python = process.env.PYTHON ?? 'python3';
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bnn-bench-infer-'));

const cpu = (() => {
  try {
    const text = fs.readFileSync('/proc/cpuinfo', 'utf8');
    const model = /model name\s*:\s*(.*)/.exec(text)?.[1] ?? os.cpus()[0]?.model ?? 'unknown';
    const flags = /flags\s*:\s*(.*)/.exec(text)?.[1]?.split(' ') ?? [];
    return `${model} (${['avx2', 'avx512f', 'avx512_vpopcntdq'].filter((f) => flags.includes(f)).join(', ') || 'no AVX2'})`;
  } catch {
    return os.cpus()[0]?.model ?? 'unknown';
  }
})();
const isas = inferenceIsas();
console.log(`CPU: ${cpu}; engine instruction sets: ${isas.supported.join(', ')} (best ${isas.best}); ${threads} thread(s)`);

function peer(cases: object[]): { seconds: number; maxRssMiB: number; cpuIsa: string; torch: string }[] {
  const r = spawnSync(python, [path.join(here, 'peer', 'infer.py'), JSON.stringify({ threads, cases })], { encoding: 'utf8', cwd: root, maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`the PyTorch peer failed:\n${r.stderr}`);
  return r.stdout.trim().split('\n').map((l) => JSON.parse(l));
}

/** Larq Compute Engine's python, or why there is none. */
const lce = ((): { python?: string; why?: string } => {
  if (process.env.BENCH_LCE === '0') return { why: 'left out (BENCH_LCE=0)' };
  const r = spawnSync('bash', [path.join(root, 'scripts', 'lce-venv')], { encoding: 'utf8' });
  if (r.status !== 0) return { why: `scripts/lce-venv failed: ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' ')}` };
  return { python: r.stdout.trim().split('\n').pop()! };
})();

function lcePeer(cases: object[]): { seconds: number; lce: string; tensorflow: string }[] | undefined {
  if (!lce.python) return undefined;
  const r = spawnSync(lce.python, [path.join(here, 'peer', 'lce.py'), JSON.stringify({ threads, cases })], {
    encoding: 'utf8',
    cwd: root,
    maxBuffer: 1 << 26,
    env: { ...process.env, TF_USE_LEGACY_KERAS: '1', TF_CPP_MIN_LOG_LEVEL: '3' },
  });
  if (r.status !== 0) {
    lce.why = `bench/peer/lce.py failed: ${r.stderr.trim().split('\n').slice(-3).join(' ')}`;
    lce.python = undefined;
    return undefined;
  }
  return r.stdout.trim().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
}

const results: Record<string, unknown> = { cpu, threads, isas };

// ---- one binary 3x3 convolution --------------------------------------------------------------
if (!only || only === 'conv') {
  // ResNet-18 at 224 (batch 1) and at CIFAR's 32 (batch 16): [in, out, size, stride].
  const shapes: [number, number, number, 1 | 2, number][] = [
    [64, 64, 56, 1, 1], [64, 128, 56, 2, 1], [128, 128, 28, 1, 1], [128, 256, 28, 2, 1], [256, 256, 14, 1, 1], [256, 512, 14, 2, 1], [512, 512, 7, 1, 1],
    [64, 64, 32, 1, 16], [128, 128, 16, 1, 16], [256, 256, 8, 1, 16], [512, 512, 4, 1, 16],
  ];
  const iterations = (c: number, s: number, b: number) => Math.max(2, Math.round((quick ? 2e8 : 1e9) / (c * c * 9 * s * s * b)));
  const peers = peer(shapes.map(([c, o, s, st, b]) => ({ kind: 'conv', inChannels: c, outChannels: o, height: s, width: s, stride: st, batch: b, iterations: iterations(c, s, b) })));
  const rows = [];
  // The first calls of a process run several times slower (threads, allocator and clocks settling:
  // measured 1.3 ms against 0.09 ms for the first shape), so the engine warms up for ~0.3 s before
  // the table, as the PyTorch peer runs two calls of each case untimed.
  for (const start = Date.now(); Date.now() - start < 300; ) {
    await benchBinaryConv({ inChannels: 64, outChannels: 64, height: 56, width: 56, stride: 1, batch: 1, threads, isa: isas.best, iterations: 5 });
  }
  console.log('\none binary 3x3 convolution (padding 1): engine vs PyTorch float conv2d (channels-last, inference_mode)');
  console.log(`${'in→out @ size /stride x batch'.padEnd(30)} ${isas.supported.map((i) => `${i} ms`.padStart(12)).join('')} ${'torch ms'.padStart(10)} ${'best ×'.padStart(8)}`);
  for (let k = 0; k < shapes.length; k++) {
    const [c, o, s, st, b] = shapes[k]!;
    const times: Record<string, number> = {};
    for (const isa of isas.supported) {
      const runs = [];
      for (let r = 0; r < (quick ? 3 : 9); r++) {
        runs.push((await benchBinaryConv({ inChannels: c, outChannels: o, height: s, width: s, stride: st, batch: b, threads, isa, iterations: iterations(c, s, b) })).seconds);
      }
      times[isa] = Math.min(...runs);
    }
    const torch = peers[k]!.seconds;
    const ratio = torch / times[isas.best]!;
    rows.push({ inChannels: c, outChannels: o, size: s, stride: st, batch: b, engineSeconds: times, torchSeconds: torch, ratio });
    console.log(`${`${c}→${o} @ ${s} /${st} x${b}`.padEnd(30)} ${isas.supported.map((i) => (1000 * times[i]!).toFixed(3).padStart(12)).join('')} ${(1000 * torch).toFixed(3).padStart(10)} ${ratio.toFixed(1).padStart(8)}`);
  }
  results.conv = rows;
}

// ---- whole networks --------------------------------------------------------------------------
interface Net { name: string; width: number; inChannels: number; numClasses: number; stem: 'small' | 'imagenet'; size: number; batches: number[] }
const nets: Net[] = [
  { name: 'ResNet-18 w64, 224x224x3', width: 64, inChannels: 3, numClasses: 1000, stem: 'imagenet', size: 224, batches: [1, 16] },
  { name: 'ResNet-18 w64, 32x32x3', width: 64, inChannels: 3, numClasses: 10, stem: 'small', size: 32, batches: [1, 16] },
  { name: 'Fashion-MNIST w16, 28x28x1', width: 16, inChannels: 1, numClasses: 10, stem: 'small', size: 28, batches: [1, 64] },
];

/** A stage-2 network with random weights and non-trivial BatchNorm statistics, saved and packed. */
async function makeNet(net: Net): Promise<{ float: string; packed: string }> {
  manualSeed(1);
  const float = path.join(tmp, `${net.width}-${net.stem}-${net.inChannels}.safetensors`);
  const packed = float.replace(/\.safetensors$/, '.packed.safetensors');
  using model = createModel({ width: net.width, inChannels: net.inChannels, numClasses: net.numClasses, stem: net.stem, binaryWeights: true });
  scope(() => {
    const state = model.stateDict();
    const fresh = new Map<string, Tensor>();
    for (const [name, t] of state) {
      if (name.endsWith('running_mean')) fresh.set(name, Tensor.randn(t.shape).mul(0.1));
      else if (name.endsWith('running_var')) fresh.set(name, Tensor.rand(t.shape).add(0.5));
      else fresh.set(name, t);
    }
    model.loadStateDict(fresh);
  });
  await model.saveWeights(float);
  // The Fashion-MNIST network knows its input, so bnn predict can read the IDX test set.
  await model.exportPacked(packed, net.inChannels === 1 ? { input: { channels: 1, height: 28, width: 28, mean: [0.286], std: [0.353] } } : {});
  return { float, packed };
}

if (!only || only === 'model') {
  const rows = [];
  console.log('\nwhole network, eval: packed engine vs PyTorch eval (the float network on +-1 tensors, channels-last, inference_mode)');
  console.log(`${'network'.padEnd(28)} ${'batch'.padStart(5)} ${'engine ms'.padStart(10)} ${'torch ms'.padStart(10)} ${'×'.padStart(6)} ${'LCE ms'.padStart(8)} ${'×'.padStart(6)} ${'float MB'.padStart(9)} ${'packed MB'.padStart(10)} ${'smaller'.padStart(8)}`);
  for (const net of nets) {
    const files = await makeNet(net);
    const floatBytes = fs.statSync(files.float).size;
    const packedBytes = fs.statSync(files.packed).size;
    const iterations = (b: number) => Math.max(2, Math.round(((quick ? 0.3 : 1) * 2e9) / (net.width * net.width * net.size * net.size * b * 20)));
    const peers = peer(net.batches.map((b) => ({ kind: 'model', weights: files.float, batch: b, size: net.size, iterations: iterations(b) })));
    const lces = lcePeer(net.batches.map((b) => ({ width: net.width, size: net.size, channels: net.inChannels, classes: net.numClasses, stem: net.stem, batch: b, iterations: iterations(b) })));
    using engine = await InferenceModel.load(files.packed, { threads });
    for (let k = 0; k < net.batches.length; k++) {
      const b = net.batches[k]!;
      const x = new Float32Array(b * net.inChannels * net.size * net.size).map(() => Math.random() * 2 - 1);
      const input = { data: x, shape: [b, net.inChannels, net.size, net.size] as const };
      await engine.predict(input, { batchSize: b });
      const runs = [];
      for (let r = 0; r < (quick ? 3 : 9); r++) {
        const t = performance.now();
        for (let i = 0; i < iterations(b); i++) await engine.predict(input, { batchSize: b });
        runs.push((performance.now() - t) / 1000 / iterations(b));
      }
      const ours = Math.min(...runs);
      const torch = peers[k]!.seconds;
      const l = lces?.[k]?.seconds;
      rows.push({ network: net.name, batch: b, engineSeconds: ours, torchSeconds: torch, ratio: torch / ours, lceSeconds: l, floatBytes, packedBytes, isa: engine.info.isa });
      console.log(
        `${net.name.padEnd(28)} ${String(b).padStart(5)} ${(1000 * ours).toFixed(2).padStart(10)} ${(1000 * torch).toFixed(2).padStart(10)} ${(torch / ours).toFixed(1).padStart(6)} ` +
          `${l === undefined ? '-'.padStart(8) : (1000 * l).toFixed(2).padStart(8)} ${l === undefined ? '-'.padStart(6) : (l / ours).toFixed(1).padStart(6)} ` +
          `${(floatBytes / 1e6).toFixed(2).padStart(9)} ${(packedBytes / 1e6).toFixed(3).padStart(10)} ${(floatBytes / packedBytes).toFixed(1).padStart(7)}x`,
      );
    }
  }
  results.model = rows;
  results.lce = lce.python ? { python: lce.python } : { why: lce.why };
  if (!lce.python) console.log(`Larq Compute Engine: not measured: ${lce.why}`);
}

// ---- peak resident memory of a predicting process --------------------------------------------
if (!only || only === 'rss') {
  // The two commands a user runs on the Fashion-MNIST test set (10,000 images): bnn predict on the
  // packed file, bnn eval (LibTorch) on the float one. Peak RSS of each child, from getrusage.
  const net = nets[2]!;
  const files = await makeNet(net);
  const cli = path.join(root, 'dist', 'cli', 'bnn.js');
  if (!fs.existsSync(cli)) throw new Error('dist/cli/bnn.js is missing: run npm run build:ts first');
  const data = '/usr/share/datasets/fashion-mnist';
  const measure = (args: string[]): number => {
    const code = 'import resource, subprocess, sys\nr = subprocess.run(sys.argv[1:], capture_output=True, text=True)\nif r.returncode: sys.exit(r.stderr)\nprint(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)';
    const r = spawnSync(python, ['-c', code, process.execPath, cli, ...args], { encoding: 'utf8', cwd: root });
    if (r.status !== 0) throw new Error(`bnn ${args.join(' ')} failed:\n${r.stderr}`);
    return Number(r.stdout.trim());
  };
  const engine = measure(['predict', '--model', files.packed, '--data', data, '--threads', String(threads)]);
  const libtorch = measure(['eval', '--checkpoint', files.float, '--data', data, '--threads', String(threads)]);
  console.log(`\npeak resident memory on the Fashion-MNIST test set (10,000 images, w16 network): bnn predict ${engine.toFixed(0)} MiB, bnn eval (LibTorch) ${libtorch.toFixed(0)} MiB (${(engine / libtorch).toFixed(2)}x)`);
  results.rss = { predictMiB: engine, evalMiB: libtorch };
}

fs.mkdirSync(path.join(here, 'results'), { recursive: true });
fs.writeFileSync(path.join(here, 'results', 'infer.json'), `${JSON.stringify(results, null, 2)}\n`);
fs.rmSync(tmp, { recursive: true, force: true });
