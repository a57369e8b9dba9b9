import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { freePort } from '../src/cli/launcher.js';
import { cudaAvailable, DataLoader, distributedBackends, ProcessGroup, rendezvousFromEnv, Tensor } from '../src/index.js';
import { readSafetensorsSync } from '../src/io/safetensors.js';
import { assertClose } from './support/helpers.js';
import { toyDataset, type WorkerJob } from './support/distributed-worker.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const gloo = distributedBackends().gloo;
const skip = gloo ? false : 'this build has no Gloo backend (libgloo-dev was not installed when it was compiled)';

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
  seconds: number;
}

function runWorker(job: WorkerJob): Promise<Exit> {
  const started = performance.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(here, 'support', 'distributed-worker.ts'), JSON.stringify(job)], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, BNN_NUM_THREADS: '1' },
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code, signal) => resolve({ code, signal, stderr, seconds: (performance.now() - started) / 1000 }));
  });
}

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'bnn-dist-'));
}

async function runGroup(dir: string, worldSize: number, job: Omit<WorkerJob, 'rank' | 'worldSize' | 'port' | 'result'>, perRank: (rank: number) => Partial<WorkerJob> = () => ({})) {
  const port = await freePort();
  const jobs = Array.from({ length: worldSize }, (_, rank) => ({
    ...job,
    rank,
    worldSize,
    port,
    result: path.join(dir, `result-${worldSize}-${rank}.json`),
    ...perRank(rank),
  }));
  const exits = await Promise.all(jobs.map(runWorker));
  const results = jobs.map((j) => (fs.existsSync(j.result) ? (JSON.parse(fs.readFileSync(j.result, 'utf8')) as Record<string, unknown>) : undefined));
  return { exits, results };
}

/** Epoch logs without their wall-clock fields. */
function metrics(history: unknown): unknown {
  return (history as Record<string, unknown>[]).map(({ seconds: _s, trainImagesPerSecond: _i, dataWaitSeconds: _w, ...rest }) => rest);
}

function weights(file: string): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [name, t] of readSafetensorsSync(file).tensors) {
    if (t.dtype !== 'F32') continue;
    out.set(name, new Float32Array(t.data.slice().buffer));
  }
  return out;
}

for (const bucketCapMb of [undefined, 0.02]) {
test(`two Gloo processes end with identical weights, equal to one process on the global batch (${bucketCapMb ? 'many small buckets' : 'default buckets'})`, { skip, timeout: 120_000 }, async () => {
  const dir = tmp();
  // Eval-mode BatchNorm: with per-replica batch statistics two half batches are not one batch.
  const job = { mode: 'steps' as const, steps: 4, bnTrainMode: false, ...(bucketCapMb ? { bucketCapMb } : {}) };
  const [two, one] = [
    await runGroup(dir, 2, job, (r) => ({ weights: path.join(dir, `w2-${r}.safetensors`) })),
    await runGroup(dir, 1, job, () => ({ weights: path.join(dir, 'w1.safetensors') })),
  ];
  for (const e of [...two.exits, ...one.exits]) assert.equal(e.code, 0, e.stderr);
  const [a, b, single] = [weights(path.join(dir, 'w2-0.safetensors')), weights(path.join(dir, 'w2-1.safetensors')), weights(path.join(dir, 'w1.safetensors'))];
  assert.ok(a.size > 30, 'every float tensor of the model');
  for (const [name, v] of a) {
    assert.deepEqual(b.get(name), v, `${name}: rank 1 differs from rank 0`);
    // Only the order of float additions differs from one process (the sum over 8 samples vs two
    // sums of 4): Adam turns that into differences of a few 1e-7.
    assertClose(v, single.get(name)!, { rtol: 1e-4, atol: 2e-5, what: name });
  }
  const [g0, g1, g] = [two.results[0]!.grads, two.results[1]!.grads, one.results[0]!.grads] as Record<string, number[]>[];
  assert.equal(Object.keys(g!).length, Object.keys(g0!).length);
  for (const [name, v] of Object.entries(g!)) {
    assert.deepEqual(g1![name], g0![name], `${name}.grad: rank 1 differs from rank 0`);
    assertClose(g0![name]!, v, { rtol: 1e-3, atol: 1e-5, what: `${name}.grad (the mean over the global batch)` });
  }
  const l2 = two.results[0]!.losses as number[];
  assert.deepEqual(two.results[1]!.losses, l2, 'every rank reports the same (all-reduced) loss');
  assertClose(l2, one.results[0]!.losses as number[], { rtol: 1e-5, atol: 1e-6, what: 'loss per step' });
  const buckets = two.results[0]!.buckets as number;
  if (bucketCapMb) assert.ok(buckets >= 5, `${buckets} buckets of ${bucketCapMb} MiB`);
  else assert.equal(buckets, 1, 'the small model fits one bucket');
});
}

test('ranks that built different networks fail at the start, before any weight is overwritten', { skip, timeout: 60_000 }, async () => {
  const { exits, results } = await runGroup(tmp(), 2, { mode: 'steps' }, (r) => (r === 1 ? { width: 8 } : {}));
  for (const e of exits) assert.equal(e.code, 0, e.stderr);
  for (const r of results) {
    const error = r!.error as { code: string; message: string };
    assert.equal(error.code, 'BNN_DISTRIBUTED');
    assert.match(error.message, /the processes built different networks/);
  }
});

test('a rendezvous that a peer never joins fails after the timeout with a clear error', { skip, timeout: 60_000 }, async () => {
  const started = performance.now();
  await assert.rejects(ProcessGroup.join({ rank: 0, worldSize: 2, masterPort: await freePort(), timeoutSeconds: 2 }), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'BNN_DISTRIBUTED', e.message);
    assert.match(e.message, /rank 0 of 2 .*rendezvous.*Timed out.*are all 2 processes started/s);
    return true;
  });
  const seconds = (performance.now() - started) / 1000;
  assert.ok(seconds >= 1.5 && seconds < 20, `failed after ${seconds.toFixed(1)} s`);
  await assert.rejects(ProcessGroup.join({ rank: 2, worldSize: 2 }), /rank must be between 0 and 1, got 2/);
});

test('with per-replica BatchNorm the ranks still agree bit for bit, running statistics included', { skip, timeout: 120_000 }, async () => {
  const dir = tmp();
  const two = await runGroup(dir, 2, { mode: 'steps', steps: 3, bnTrainMode: true }, (r) => ({ weights: path.join(dir, `w-${r}.safetensors`) }));
  for (const e of two.exits) assert.equal(e.code, 0, e.stderr);
  const [a, b] = [readSafetensorsSync(path.join(dir, 'w-0.safetensors')).tensors, readSafetensorsSync(path.join(dir, 'w-1.safetensors')).tensors];
  assert.ok([...a.keys()].some((k) => k.endsWith('running_var')));
  for (const [name, t] of a) assert.deepEqual(b.get(name)!.data, t.data, name);
});

test('SyncBatchNorm: two Gloo processes with training-mode BatchNorm train as one process on the global batch', { skip, timeout: 120_000 }, async () => {
  const dir = tmp();
  const job = { mode: 'steps' as const, steps: 4, bnTrainMode: true };
  const [sync, perReplica, one] = [
    await runGroup(dir, 2, { ...job, syncBatchNorm: true }, (r) => ({ weights: path.join(dir, `sync-${r}.safetensors`) })),
    await runGroup(dir, 2, job),
    await runGroup(dir, 1, job, () => ({ weights: path.join(dir, 'one.safetensors') })),
  ];
  for (const e of [...sync.exits, ...perReplica.exits, ...one.exits]) assert.equal(e.code, 0, e.stderr);
  const [a, b, single] = [weights(path.join(dir, 'sync-0.safetensors')), weights(path.join(dir, 'sync-1.safetensors')), weights(path.join(dir, 'one.safetensors'))];
  assert.ok([...a.keys()].filter((k) => k.endsWith('running_var')).length >= 10, 'running statistics are compared too');
  for (const [name, v] of a) {
    assert.deepEqual(b.get(name), v, `${name}: rank 1 differs from rank 0`);
    // The global mean and variance come from per-rank sums: float rounding apart, one batch.
    assertClose(v, single.get(name)!, { rtol: 1e-4, atol: 2e-5, what: name });
  }
  const [g0, g] = [sync.results[0]!.grads, one.results[0]!.grads] as Record<string, number[]>[];
  for (const [name, v] of Object.entries(g!)) assertClose(g0![name]!, v, { rtol: 1e-3, atol: 1e-5, what: `${name}.grad` });
  const [l2, l1, lp] = [sync.results[0]!.losses, one.results[0]!.losses, perReplica.results[0]!.losses] as number[][];
  assertClose(l2!, l1!, { rtol: 1e-5, atol: 1e-6, what: 'loss per step' });
  // Without it the replicas normalise half batches: the first step's loss already differs.
  assert.ok(Math.abs(lp![0]! - l1![0]!) > 1e-4, `per-replica BatchNorm loss ${lp![0]} vs one process ${l1![0]}`);
});

test('SyncBatchNorm: a 2-process trainTwoStage run evaluates as a 1-process run on the same global batch', { skip, timeout: 180_000 }, async () => {
  const dir = tmp();
  const job = { mode: 'two-stage' as const, syncBatchNorm: true, testSize: 120 };
  const [two, one] = [await runGroup(dir, 2, job), await runGroup(dir, 1, job)];
  for (const e of [...two.exits, ...one.exits]) assert.equal(e.code, 0, e.stderr);
  for (const r of [...two.results, ...one.results]) assert.equal(r!.error, undefined, JSON.stringify(r!.error));
  const [h2, h1] = [two.results[0]!.history, one.results[0]!.history] as { stage: number; epoch: number; trainLoss: number; testAccuracy: number }[][];
  assert.equal(h2!.length, h1!.length);
  // Each global batch holds the same samples (the shards interleave the one-process order), so
  // the two runs differ only by float rounding, which signs amplify. Epoch losses (means over 96
  // samples) stay close; test accuracy through running statistics is itself that noisy after the
  // first 6 steps (measured: 0.51 vs 0.62, or equal, by the rounding of the local statistics), so
  // it is compared once training has settled, after stage 1 and at the end (measured 0.90 vs 0.93
  // and 0.97 vs 0.98), within 0.08: about 3 standard deviations of the difference of two
  // accuracies near 0.93 on 120 samples.
  h2!.forEach((e, i) => {
    const ref = h1![i]!;
    assertClose([e.trainLoss], [ref.trainLoss], { rtol: 0.05, atol: 0.02, what: `stage ${e.stage} epoch ${e.epoch} train loss` });
  });
  const lastStage1 = h1!.filter((e) => e.stage === 1).length - 1;
  const [a2, a1] = [h2![lastStage1]!.testAccuracy, h1![lastStage1]!.testAccuracy];
  assert.ok(Math.abs(a2 - a1) <= 0.08, `end of stage 1: test accuracy ${a2} (2 processes) vs ${a1} (1)`);
  const [t2, t1] = [two.results[0]!.test, one.results[0]!.test] as { accuracy: number; count: number }[];
  assert.equal(t2!.count, 120);
  assert.ok(Math.abs(t2!.accuracy - t1!.accuracy) <= 0.08, `final test accuracy ${t2!.accuracy} vs ${t1!.accuracy}`);
});

test('a worker that dies makes the others fail with BNN_DISTRIBUTED, not hang', { skip, timeout: 120_000 }, async () => {
  const dir = tmp();
  const timeoutSeconds = 20;
  const { exits, results } = await runGroup(dir, 2, { mode: 'die', steps: 50, dieRank: 1, timeoutSeconds });
  assert.equal(exits[1]!.signal, 'SIGKILL');
  assert.equal(exits[0]!.code, 0, exits[0]!.stderr);
  const r = results[0] as { error?: { code: string; message: string }; losses: number[]; seconds: number };
  assert.ok(r.error, 'rank 0 must see an error');
  assert.equal(r.error.code, 'BNN_DISTRIBUTED', r.error.message);
  assert.match(r.error.message, /rank 0 of 2/);
  assert.equal(r.losses.length, 2, 'the steps before the death completed');
  assert.ok(exits[0]!.seconds < timeoutSeconds + 30, `rank 0 ended after ${exits[0]!.seconds.toFixed(1)} s`);
});

test('trainTwoStage over 2 ranks: identical final weights, all-rank metrics, only rank 0 writes, and an interrupted run resumes exactly', { skip, timeout: 300_000 }, async () => {
  const dir = tmp();
  // Uninterrupted reference run.
  const full = await runGroup(dir, 2, { mode: 'two-stage', outDir: path.join(dir, 'full') }, (r) => ({ weights: path.join(dir, `full-${r}.safetensors`) }));
  for (const e of full.exits) assert.equal(e.code, 0, e.stderr);
  for (const r of full.results) assert.equal(r!.error, undefined, JSON.stringify(r!.error));
  const [w0, w1] = [weights(path.join(dir, 'full-0.safetensors')), weights(path.join(dir, 'full-1.safetensors'))];
  for (const [name, v] of w0) assert.deepEqual(w1.get(name), v, name);
  const h0 = full.results[0]!.history as { trainLoss: number; testAccuracy: number }[];
  assert.equal(h0.length, 3);
  assert.deepEqual(metrics(full.results[1]!.history), metrics(h0), 'every rank logs the same all-rank metrics');
  const t0 = full.results[0]!.test as { count: number };
  assert.equal(t0.count, 30, 'the sharded evaluation counts each of the 30 test samples once');
  assert.ok(fs.existsSync(path.join(dir, 'full', 'final.safetensors')));
  assert.ok(fs.existsSync(path.join(dir, 'full', 'checkpoint.safetensors')));

  // Rank 1 alone asks to stop after 3 batches (of 6 per epoch): its vote travels with the next
  // step's gradients, so both ranks stop after batch 4.
  const out = path.join(dir, 'cut');
  const cut = await runGroup(dir, 2, { mode: 'two-stage', outDir: out }, (r) => (r === 1 ? { abortAfter: 3 } : {}));
  for (const r of cut.results) assert.equal((r!.error as { code: string }).code, 'BNN_INTERRUPTED');
  assert.deepEqual(cut.results.map((r) => r!.batches), [4, 4]);
  const resumed = await runGroup(dir, 2, { mode: 'two-stage', outDir: out, resume: true }, (r) => ({ weights: path.join(dir, `resumed-${r}.safetensors`) }));
  for (const r of resumed.results) assert.equal(r!.error, undefined, JSON.stringify(r!.error));
  const w = weights(path.join(dir, 'resumed-0.safetensors'));
  for (const [name, v] of w0) assert.deepEqual(w.get(name), v, `${name}: resumed run differs from the uninterrupted one`);
  assert.deepEqual(metrics(resumed.results[0]!.history), metrics(h0), 'resumed metrics equal the uninterrupted run');
});

test('sharded loaders split every epoch between ranks like DistributedSampler', () => {
  const data = toyDataset(10, 1);
  try {
    const shards = [0, 1, 2].map((rank) => new DataLoader(data, { batchSize: 2, seed: 4, shard: { rank, count: 3 } }));
    const whole = new DataLoader(data, { batchSize: 2, seed: 4 });
    for (const epoch of [0, 1]) {
      const order = Array.from(whole.epochOrder(epoch));
      const parts = shards.map((s) => Array.from(s.epochOrder(epoch)));
      // Padded to 12 with the order's own beginning, then dealt out rank by rank.
      const padded = [...order, ...order.slice(0, 2)];
      parts.forEach((p, r) => assert.deepEqual(p, padded.filter((_, i) => i % 3 === r)));
      assert.deepEqual(shards.map((s) => s.batchesPerEpoch), [2, 2, 2]);
    }
    const evals = [0, 1, 2].map((rank) => DataLoader.forEval(data, { batchSize: 3, shard: { rank, count: 3 } }));
    const seen = evals.flatMap((e) => Array.from(e.epochOrder(0))).sort((x, y) => x - y);
    assert.deepEqual(seen, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'evaluation shards see each sample once');
    assert.throws(() => new DataLoader(data, { shard: { rank: 3, count: 3 } }), /shard.rank/);
    [...shards, whole, ...evals].forEach((l) => l.dispose());
  } finally {
    data.dispose();
  }
});

test('rendezvousFromEnv reads torchrun and SLURM variables and rejects half-set ones', () => {
  assert.equal(rendezvousFromEnv({}), undefined);
  assert.deepEqual(rendezvousFromEnv({ RANK: '1', WORLD_SIZE: '4', LOCAL_RANK: '1', MASTER_ADDR: '10.0.0.1', MASTER_PORT: '29400' }), {
    rank: 1,
    worldSize: 4,
    localRank: 1,
    masterAddr: '10.0.0.1',
    masterPort: 29400,
  });
  assert.deepEqual(rendezvousFromEnv({ SLURM_PROCID: '3', SLURM_NTASKS: '8', SLURM_LOCALID: '1', MASTER_ADDR: 'node1', MASTER_PORT: '1234' }), {
    rank: 3,
    worldSize: 8,
    localRank: 1,
    masterAddr: 'node1',
    masterPort: 1234,
  });
  assert.throws(() => rendezvousFromEnv({ RANK: '0' }), /both must be set/);
  assert.throws(() => rendezvousFromEnv({ RANK: '2', WORLD_SIZE: '2', MASTER_ADDR: 'a', MASTER_PORT: '1' }), /not in \[0, 1\]/);
  assert.throws(() => rendezvousFromEnv({ RANK: '0', WORLD_SIZE: '2' }), /MASTER_ADDR and MASTER_PORT/);
  assert.throws(() => rendezvousFromEnv({ RANK: 'x', WORLD_SIZE: '2' }), /RANK must be/);
});

test('NCCL (CUDA builds): a single-rank group all-reduces, broadcasts and synchronises CUDA tensors', { timeout: 120_000, skip: distributedBackends().nccl && cudaAvailable() ? false : 'needs a CUDA build with NCCL and a GPU' }, async () => {
  // One GPU cannot hold two NCCL ranks, so a single-rank group checks the NCCL path itself.
  const port = await freePort();
  const group = await ProcessGroup.join({ rank: 0, worldSize: 1, masterPort: port, backend: 'nccl', timeoutSeconds: 60 });
  const t = Tensor.fromArray([1, 2, 3], [3], { device: 'cuda' });
  try {
    await group.allReduceSum([t]);
    await group.broadcast([t], 0);
    await group.barrier();
    assert.deepEqual(Array.from(t.toFloat32Array()), [1, 2, 3]);
  } finally {
    t.dispose();
    group.dispose();
  }
});
