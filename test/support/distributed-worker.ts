// One process of the distributed tests (test/distributed.test.ts): joins a Gloo group over
// loopback, does what its JSON job says, and writes a JSON result to job.result.
import fs from 'node:fs';

import {
  Adam,
  createModel,
  DataLoader,
  DataParallel,
  Dataset,
  manualSeed,
  ProcessGroup,
  Tensor,
  trainStep,
  trainTwoStage,
  type Model,
} from '../../src/index.js';
import { mulberry32 } from '../../src/data/batches.js';

export interface WorkerJob {
  mode: 'steps' | 'die' | 'two-stage';
  rank: number;
  worldSize: number;
  port: number;
  result: string;
  /** steps: steps to train; die: the rank that exits after 2 steps. */
  steps?: number;
  bnTrainMode?: boolean;
  weights?: string;
  timeoutSeconds?: number;
  dieRank?: number;
  outDir?: string;
  resume?: boolean;
  /** two-stage: this rank aborts after this many batches (others do not). */
  abortAfter?: number;
  bucketCapMb?: number;
  /** steps: this rank builds a network of this width instead (a mismatch the broadcast must catch). */
  width?: number;
  /** steps, two-stage: BatchNorm over the global batch (DataParallel's syncBatchNorm). */
  syncBatchNorm?: boolean;
  /** two-stage: test samples (default 30). */
  testSize?: number;
}

export const GLOBAL_BATCH = 8;
export const CLASSES = 3;

/** Global batch `step` of a fixed synthetic task: 1 x 12 x 12 images. */
export function globalBatch(step: number): { images: Float32Array; labels: BigInt64Array } {
  const rand = mulberry32(1000 + step);
  const images = new Float32Array(GLOBAL_BATCH * 144);
  const labels = new BigInt64Array(GLOBAL_BATCH);
  for (let i = 0; i < GLOBAL_BATCH; i++) {
    labels[i] = BigInt(i % CLASSES);
    for (let p = 0; p < 144; p++) images[i * 144 + p] = (p % CLASSES === i % CLASSES ? 1 : -0.3) + (rand() - 0.5);
  }
  return { images, labels };
}

/** A uint8 toy dataset for the DataLoader: class c lights every third pixel from c. */
export function toyDataset(n: number, seed: number): Dataset {
  const rand = mulberry32(seed);
  const px = new Uint8Array(n * 144);
  const labels = new BigInt64Array(n);
  for (let i = 0; i < n; i++) {
    labels[i] = BigInt(i % CLASSES);
    for (let p = 0; p < 144; p++) px[i * 144 + p] = Math.min(255, Math.floor((p % CLASSES === i % CLASSES ? 170 : 40) + 60 * rand()));
  }
  const images = Tensor.fromArray(px, [n, 1, 12, 12]);
  const y = Tensor.fromArray(labels, [n]);
  try {
    return Dataset.fromTensors(images, y, { numClasses: CLASSES });
  } finally {
    images.dispose();
    y.dispose();
  }
}

const MODEL = { inChannels: 1, width: 4, numClasses: CLASSES } as const;

async function steps(job: WorkerJob, group: ProcessGroup | undefined): Promise<unknown> {
  // Different seeds per rank: only the broadcast can make the replicas start equal.
  manualSeed(7 + job.rank);
  const model: Model = createModel({ ...MODEL, width: job.width ?? MODEL.width });
  const dp = group
    ? new DataParallel(model, group, { ...(job.bucketCapMb ? { bucketCapMb: job.bucketCapMb } : {}), ...(job.syncBatchNorm ? { syncBatchNorm: true } : {}) })
    : undefined;
  try {
    await dp?.broadcastState();
  } catch (e) {
    return { error: { code: (e as { code?: string }).code, message: (e as Error).message } };
  }
  model.train(job.bnTrainMode ?? false);
  const adam = new Adam(model, { lr: 1e-3, weightDecay: 1e-5 });
  const per = GLOBAL_BATCH / job.worldSize;
  const losses: number[] = [];
  const started = performance.now();
  let error: { code?: string; message: string } | undefined;
  try {
    for (let s = 0; s < (job.steps ?? 3); s++) {
      if (job.mode === 'die' && s === 2 && job.rank === job.dieRank) process.kill(process.pid, 'SIGKILL');
      const { images, labels } = globalBatch(s);
      const x = Tensor.fromArray(images.subarray(job.rank * per * 144, (job.rank + 1) * per * 144), [per, 1, 12, 12]);
      const y = Tensor.fromArray(labels.subarray(job.rank * per, (job.rank + 1) * per), [per]);
      try {
        const r = await trainStep(model, adam, x, y, dp ? { dataParallel: dp } : {});
        losses.push(r.loss);
      } finally {
        x.dispose();
        y.dispose();
      }
    }
  } catch (e) {
    error = { code: (e as { code?: string }).code, message: (e as Error).message };
  }
  // The last step's gradients, as averaged across ranks (Adam hides a wrong gradient scale).
  const grads: Record<string, number[]> = {};
  for (const [name, p] of model.namedParameters()) {
    const g = p.grad;
    if (g) grads[name] = Array.from(g.toFloat32Array());
    g?.dispose();
    p.dispose();
  }
  const buckets = dp?.bucketCount ?? 0;
  if (!error) await dp?.syncBuffers();
  if (job.weights) await model.saveWeights(job.weights);
  dp?.dispose();
  adam.dispose();
  model.dispose();
  return { losses, error, grads, buckets, seconds: (performance.now() - started) / 1000 };
}

async function twoStage(job: WorkerJob, group: ProcessGroup | undefined): Promise<unknown> {
  const shard = group?.shard();
  const train = toyDataset(96, 1);
  const test = toyDataset(job.testSize ?? 30, 2);
  const perRank = 16 / job.worldSize;
  const trainLoader = new DataLoader(train, { batchSize: perRank, seed: 3, ...(shard ? { shard } : {}) });
  const testLoader = DataLoader.forEval(test, { batchSize: 7, ...(shard ? { shard } : {}) });
  const controller = new AbortController();
  let batches = 0;
  let error: { code?: string; message: string } | undefined;
  const history: unknown[] = [];
  let testMetrics: unknown;
  try {
    const r = await trainTwoStage({
      model: MODEL,
      stage1: { epochs: 2, lr: 5e-3, weightDecay: 1e-5, milestones: [1], gammas: [0.1] },
      stage2: { epochs: 1, lr: 1e-3, weightDecay: 0, milestones: [], gammas: [] },
      train: trainLoader,
      test: testLoader,
      seed: 5,
      ...(job.outDir ? { outDir: job.outDir } : {}),
      resume: job.resume ?? false,
      ...(group ? { group, ...(job.syncBatchNorm ? { dataParallel: { syncBatchNorm: true } } : {}) } : {}),
      signal: controller.signal,
      callbacks: {
        onBatchEnd: () => {
          batches++;
          if (job.abortAfter !== undefined && batches === job.abortAfter) controller.abort();
        },
      },
    });
    history.push(...r.history);
    testMetrics = r.test;
    if (job.weights) await r.model.saveWeights(job.weights);
    r.model.dispose();
  } catch (e) {
    error = { code: (e as { code?: string }).code, message: (e as Error).message };
  } finally {
    trainLoader.dispose();
    testLoader.dispose();
    train.dispose();
    test.dispose();
  }
  return { history, test: testMetrics, error, batches };
}

async function main(): Promise<void> {
  const job = JSON.parse(process.argv[2]!) as WorkerJob;
  const group =
    job.worldSize > 1
      ? await ProcessGroup.join({ rank: job.rank, worldSize: job.worldSize, masterAddr: '127.0.0.1', masterPort: job.port, timeoutSeconds: job.timeoutSeconds ?? 60 })
      : undefined;
  const out = job.mode === 'two-stage' ? await twoStage(job, group) : await steps(job, group);
  fs.writeFileSync(job.result, JSON.stringify(out));
  group?.dispose();
}

if (process.argv[2]) {
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
