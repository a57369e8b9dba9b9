import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import {
  createModel,
  InMemoryBatches,
  loadCheckpoint,
  saveCheckpoint,
  scope,
  Tensor,
  Trainer,
  trainTwoStage,
  type Batch,
  type BatchSource,
  type EpochLog,
  type StageOptions,
  type TwoStageConfig,
} from '../src/index.js';
import { TOY_CLASSES, TOY_SHAPE, toyData } from './support/toy-task.js';
import { readSafetensorsSync } from '../src/io/safetensors.js';

const CLASSES = TOY_CLASSES;
const SHAPE = TOY_SHAPE;


function sources(seed = 1): { train: InMemoryBatches; test: InMemoryBatches } {
  const tr = toyData(256, seed);
  const te = toyData(64, seed + 100);
  return {
    train: new InMemoryBatches(tr.images, tr.labels, SHAPE, CLASSES, { batchSize: 32, seed }),
    test: new InMemoryBatches(te.images, te.labels, SHAPE, CLASSES, { batchSize: 64, shuffle: false }),
  };
}

const STAGE1: StageOptions = { epochs: 3, lr: 5e-3, weightDecay: 1e-5, milestones: [2], gammas: [0.1] };
const STAGE2: StageOptions = { epochs: 2, lr: 1e-3, weightDecay: 0, milestones: [1], gammas: [0.2] };

function config(outDir: string | undefined, extra: Partial<TwoStageConfig> = {}): TwoStageConfig {
  const { train, test } = sources();
  return {
    model: { inChannels: 1, width: 4, numClasses: CLASSES },
    stage1: STAGE1,
    stage2: STAGE2,
    train,
    test,
    seed: 3,
    ...(outDir ? { outDir } : {}),
    ...extra,
  };
}

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'bnn-train-'));
}

/** `source` with its epochs passed through `each(batch, i, epoch)`, which yields the batch to train on. */
function mapBatches(source: BatchSource, each: (b: Batch, i: number, epoch: number) => Promise<Batch> | Batch): BatchSource {
  return {
    size: source.size,
    batchesPerEpoch: source.batchesPerEpoch,
    numClasses: source.numClasses,
    async *epoch(epoch: number): AsyncIterable<Batch> {
      let i = 0;
      for await (const b of source.epoch(epoch)) yield await each(b, i++, epoch);
    },
  };
}

function weightsOf(file: string): Map<string, Uint8Array> {
  return new Map([...readSafetensorsSync(file).tensors].map(([k, t]) => [k, t.data]));
}

test('the two-stage loop learns a toy task in seconds, ending with 1-bit weights', async () => {
  const logs: EpochLog[] = [];
  const events: string[] = [];
  const out = tmpDir();
  const result = await trainTwoStage(config(out, {
    callbacks: {
      onTrainBegin: ({ stage }) => void events.push(`begin${stage}`),
      onEpochBegin: async ({ stage, epoch }) => {
        await new Promise((r) => setImmediate(r)); // callbacks are awaited
        events.push(`epoch${stage}.${epoch}`);
      },
      onEpochEnd: (log) => void logs.push(log),
      onStageEnd: ({ stage, weightsPath }) => void events.push(`end${stage}:${path.basename(weightsPath ?? '')}`),
    },
  }));
  try {
    assert.deepEqual(events, ['begin1', 'epoch1.0', 'epoch1.1', 'epoch1.2', 'end1:stage1.safetensors', 'begin2', 'epoch2.0', 'epoch2.1', 'end2:final.safetensors']);
    assert.equal(logs.length, 5);
    assert.ok(logs[2]!.trainLoss < logs[0]!.trainLoss, `loss falls: ${logs.map((l) => l.trainLoss.toFixed(3)).join(' -> ')}`);
    assert.ok(result.test!.accuracy > 0.8, `test accuracy ${result.test!.accuracy} well above chance (0.25)`);
    assert.equal(result.model.binaryWeights, true);
    assert.deepEqual(logs.map((l) => l.lr), [5e-3, 5e-3, 5e-3 * 0.1, 1e-3, 1e-3 * 0.2]);
    assert.ok(fs.existsSync(path.join(out, 'final.safetensors')));
    assert.equal(result.history.length, 5);
  } finally {
    result.model.dispose();
  }
});

test('a seeded CPU run is repeatable bit for bit', async () => {
  const a = tmpDir();
  const b = tmpDir();
  (await trainTwoStage(config(a))).model.dispose();
  (await trainTwoStage(config(b))).model.dispose();
  assert.deepEqual(weightsOf(path.join(a, 'final.safetensors')), weightsOf(path.join(b, 'final.safetensors')));
});

for (const stopAfter of [1, 3, 4]) {
  test(`interrupted after ${stopAfter} epoch(s) and resumed = never stopped (bit-identical weights)`, async () => {
    const whole = tmpDir();
    (await trainTwoStage(config(whole))).model.dispose();

    const broken = tmpDir();
    let seen = 0;
    await assert.rejects(
      trainTwoStage(config(broken, {
        callbacks: {
          onEpochEnd: () => {
            if (++seen === stopAfter) throw new Error('simulated interruption');
          },
        },
      })),
      /simulated interruption/,
    );
    const resumedLogs: EpochLog[] = [];
    const resumed = await trainTwoStage(config(broken, { resume: true, callbacks: { onEpochEnd: (l) => void resumedLogs.push(l) } }));
    resumed.model.dispose();
    assert.equal(resumedLogs.length, 5 - stopAfter, 'only the remaining epochs run');
    assert.equal(resumed.history.length, 5, 'history carries over');
    assert.deepEqual(weightsOf(path.join(broken, 'final.safetensors')), weightsOf(path.join(whole, 'final.safetensors')));
  });
}

test('a NaN loss stops training with the epoch and step, and leaves the last checkpoint intact', async () => {
  const { train, test } = sources();
  let poisoned = false;
  const poison = mapBatches(train, (b, i, epoch) => {
    if (epoch !== 1 || i !== 2) return b;
    poisoned = true;
    const n = b.images.shape[0]!;
    b.images.dispose();
    const images = Tensor.fromArray(new Float32Array(n * 64).fill(NaN), [n, ...SHAPE]);
    const dispose = (): void => {
      images.dispose();
      b.labels.dispose();
    };
    return { images, labels: b.labels, index: b.index, dispose, [Symbol.dispose]: dispose };
  });
  const out = tmpDir();
  await assert.rejects(trainTwoStage({ ...config(out), train: poison, test }), (e: Error & { code?: string; epoch?: number; step?: number }) => {
    assert.equal(e.code, 'BNN_NON_FINITE_LOSS');
    assert.match(e.message, /stage 1, epoch 2, step 3: the loss is nan/);
    assert.equal(e.epoch, 1);
    assert.equal(e.step, 2);
    return true;
  });
  assert.ok(poisoned);
  await scope(async () => {
    const ckpt = await loadCheckpoint(path.join(out, 'checkpoint.safetensors'));
    assert.equal(ckpt.meta.stage, 1);
    assert.equal(ckpt.meta.epochsDone, 1);
    for (const t of ckpt.model.values()) assert.ok(t.toFloat32Array().every(Number.isFinite));
  });
});

test('bad hyperparameters are refused before any work', async () => {
  let started = false;
  const callbacks = { onTrainBegin: () => void (started = true) };
  const bad: [Partial<TwoStageConfig>, RegExp][] = [
    [{ stage1: { ...STAGE1, epochs: 0 } }, /stage1\.epochs must be at least 1, got 0/],
    [{ stage2: { ...STAGE2, lr: -1 } }, /stage2: baseLr must be a positive number/],
    [{ stage1: { ...STAGE1, milestones: [2, 1], gammas: [0.1, 0.1] } }, /stage1: milestones must be strictly increasing/],
    [{ stage1: { ...STAGE1, gammas: [0.1, 0.1] } }, /stage1: milestones and gammas must have the same length/],
    [{ stage2: { ...STAGE2, weightDecay: -1 } }, /stage2\.weightDecay must be a number >= 0, got -1/],
    [{ stages: 2 }, /stage 2 alone needs init/],
    [{ resume: true }, /resume needs outDir/],
    [{ device: 'gpu' as never }, /unknown device 'gpu'/],
  ];
  for (const [extra, msg] of bad) await assert.rejects(trainTwoStage(config(undefined, { ...extra, callbacks })), msg);
  assert.equal(started, false);
});

test('a checkpoint from another config, a truncated one, or another version is refused', async () => {
  const out = tmpDir();
  (await trainTwoStage(config(out, { stages: 1 }))).model.dispose();
  const ckptPath = path.join(out, 'checkpoint.safetensors');
  await assert.rejects(
    trainTwoStage(config(out, { stages: 1, resume: true, stage1: { ...STAGE1, lr: 1e-2 } })),
    /belongs to a different run configuration:[\s\S]*stage1: checkpoint has .*"lr":0\.005/,
  );
  await assert.rejects(
    trainTwoStage(config(out, { stages: 1, resume: true, model: { inChannels: 1, width: 4, numClasses: CLASSES, blockOrder: 'sign-conv-bn' } })),
    /belongs to a different run configuration:[\s\S]*model: checkpoint has .*"blockOrder":"bn-sign-conv"/,
  );
  // A checkpoint written before the ablation switches existed (its model config has no blockOrder,
  // blockActivation or downsample) holds the recipe's network, and resumes.
  await scope(async () => {
    const ckpt = await loadCheckpoint(ckptPath);
    const { blockOrder, blockActivation, downsample, ...older } = ckpt.meta.runConfig.model as Record<string, unknown>;
    assert.deepEqual([blockOrder, blockActivation, downsample], ['bn-sign-conv', 'prelu', 'avgpool'], 'the resolved config is recorded');
    await saveCheckpoint(ckptPath, { ...ckpt, meta: { ...ckpt.meta, runConfig: { ...ckpt.meta.runConfig, model: older } } });
  });
  (await trainTwoStage(config(out, { stages: 1, resume: true }))).model.dispose();
  const bytes = fs.readFileSync(ckptPath);
  fs.writeFileSync(ckptPath, bytes.subarray(0, Math.floor(bytes.length / 2)));
  await assert.rejects(trainTwoStage(config(out, { stages: 1, resume: true })), (e: Error & { code?: string }) => e.code === 'BNN_IO' && /checkpoint\.safetensors/.test(e.message));
  fs.writeFileSync(ckptPath, bytes);
  await scope(async () => {
    const ckpt = await loadCheckpoint(ckptPath);
    await saveCheckpoint(ckptPath, { ...ckpt, meta: { ...ckpt.meta, version: '9.0.0' } });
  });
  await assert.rejects(loadCheckpoint(ckptPath), /written by bnn-torch 9\.0\.0, which is incompatible/);
});

test('stage 2 alone starts from given stage-1 weights', async () => {
  const first = tmpDir();
  (await trainTwoStage(config(first, { stages: 1 }))).model.dispose();
  const second = tmpDir();
  const r = await trainTwoStage(config(second, { stages: 2, init: path.join(first, 'stage1.safetensors') }));
  try {
    assert.equal(r.history.length, 2);
    assert.ok(r.history.every((h) => h.stage === 2));
    assert.ok(r.test!.accuracy > 0.6, `accuracy ${r.test!.accuracy}`);
  } finally {
    r.model.dispose();
  }
});

// Stage 1's first epoch too: its partial position must not leak into stage 2's first epoch.
for (const at of [{ stage: 2, ckptStage: 2 }, { stage: 1, ckptStage: 1 }] as const) {
test(`Ctrl-C style abort mid-epoch (stage ${at.stage}) saves a checkpoint; resume continues that epoch exactly`, async () => {
  const whole = tmpDir();
  (await trainTwoStage(config(whole))).model.dispose();
  const broken = tmpDir();
  const controller = new AbortController();
  await assert.rejects(
    trainTwoStage(config(broken, {
      signal: controller.signal,
      callbacks: {
        onBatchEnd: ({ stage, epoch, batch }) => {
          if (stage === at.stage && epoch === 0 && batch === 3) controller.abort();
        },
      },
    })),
    (e: Error & { code?: string }) => e.code === 'BNN_INTERRUPTED' && new RegExp(`stage ${at.stage}, epoch 1, after batch 3`).test(e.message),
  );
  await scope(async () => {
    const ckpt = await loadCheckpoint(path.join(broken, 'checkpoint.safetensors'));
    assert.equal(ckpt.meta.stage, at.ckptStage);
    assert.equal(ckpt.meta.epochsDone, 0);
    assert.equal(ckpt.meta.partial?.batchesDone, 3);
    const wait = ckpt.meta.partial?.dataWaitSeconds;
    assert.ok(typeof wait === 'number' && wait >= 0 && wait <= ckpt.meta.partial!.seconds, `the partial epoch's data wait is carried: ${wait}`);
  });
  const batches: number[] = [];
  const resumed = await trainTwoStage(config(broken, { resume: true, callbacks: { onBatchEnd: ({ batch }) => void batches.push(batch) } }));
  resumed.model.dispose();
  assert.equal(batches[0], 4, 'the interrupted epoch continues at its 4th batch');
  assert.deepEqual(weightsOf(path.join(broken, 'final.safetensors')), weightsOf(path.join(whole, 'final.safetensors')));
});
}

test("an epoch's data wait is the time the loop waited for batches: a slow source, a slow first batch, never the step or callbacks", async () => {
  const { train } = sources();
  const delayMs = 40;
  const delayed = (delay: (i: number) => number): BatchSource =>
    mapBatches(train, async (b, i) => {
      const ms = delay(i);
      if (ms > 0) await new Promise((resolve) => setTimeout(resolve, ms));
      return b;
    });
  const fit = async (source: BatchSource, onBatchEnd?: () => Promise<void>): Promise<EpochLog> => {
    using model = createModel({ inChannels: 1, width: 4, numClasses: CLASSES });
    const trainer = new Trainer({ model, stage: 1, options: { ...STAGE1, epochs: 1 }, train: source, ...(onBatchEnd ? { callbacks: { onBatchEnd } } : {}) });
    try {
      const [log] = await trainer.fit();
      return log!;
    } finally {
      trainer.dispose();
    }
  };
  const batches = train.batchesPerEpoch;
  const slow = await fit(delayed(() => delayMs));
  assert.ok(slow.dataWaitSeconds! >= (batches * delayMs * 0.9) / 1000, `every batch slow: ${slow.dataWaitSeconds} s over ${batches} batches`);
  assert.ok(slow.dataWaitSeconds! <= slow.seconds, `${slow.dataWaitSeconds} s within the epoch's ${slow.seconds} s`);
  const first = await fit(delayed((i) => (i === 0 ? 200 : 0)));
  assert.ok(first.dataWaitSeconds! >= 0.18 && first.dataWaitSeconds! < 0.18 + (batches * delayMs * 0.5) / 1000, `a slow first batch counts: ${first.dataWaitSeconds} s`);
  // A slow callback after each step is the loop's own time, not the source's.
  const busy = await fit(train, () => new Promise((resolve) => setTimeout(resolve, delayMs)));
  assert.ok(busy.seconds >= (batches * delayMs * 0.9) / 1000, `the callbacks took their time: ${busy.seconds} s`);
  assert.ok(busy.dataWaitSeconds! >= 0 && busy.dataWaitSeconds! < (batches * delayMs * 0.25) / 1000, `in-memory source with slow callbacks: ${busy.dataWaitSeconds} s`);
});
