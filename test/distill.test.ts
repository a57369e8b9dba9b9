// Knowledge distillation from a full-precision teacher: the loss and its gradient against PyTorch,
// one distilling step of the golden network against PyTorch (the teacher untouched), the teacher
// a run trains first (stage 0) and its resume, bad teacher files, and the command line's checks.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import {
  createModel,
  crossEntropy,
  distillationLoss,
  InMemoryBatches,
  loadTeacher,
  scope,
  SGD,
  StepMetrics,
  teacherStageOptions,
  Tensor,
  trainStep,
  trainTwoStage,
  type ModelConfig,
  type StageOptions,
  type TwoStageConfig,
} from '../src/index.js';
import { readSafetensorsSync } from '../src/io/safetensors.js';
import { checkTrainFlags } from '../src/cli/commands/train.js';
import { assertCloseScaled, loadFixture } from './support/fixtures.js';
import { TOY_CLASSES, TOY_SHAPE, toyData } from './support/toy-task.js';

const close = (actual: number, expected: number, rel: number, what: string): void => {
  assert.ok(Math.abs(actual - expected) <= rel * Math.max(1, Math.abs(expected)), `${what}: ${actual} vs PyTorch ${expected}`);
};

test("distillationLoss and its gradient w.r.t. the student's logits are PyTorch's for several T, w and label smoothing", () => {
  scope(() => {
    const fx = loadFixture('distill');
    const cases = JSON.parse(fx.metadata.cases!) as { temperature: number; weight: number; labelSmoothing: number }[];
    assert.equal(cases.length, 6);
    cases.forEach((c, i) => {
      const s = fx.tensors.get(`loss/${i}/student`)!.clone();
      s.requiresGrad = true;
      const t = fx.tensors.get(`loss/${i}/teacher`)!.clone();
      t.requiresGrad = true;
      const loss = distillationLoss(s, t, fx.tensors.get(`loss/${i}/labels`)!, c);
      close(loss.item(), fx.values(`loss/${i}/loss`)[0]!, 1e-5, `case ${i} ${JSON.stringify(c)} loss`);
      loss.backward();
      assertCloseScaled(s.grad!.toFloat32Array(), fx.values(`loss/${i}/grad`), `case ${i} grad`);
      assert.equal(t.grad, null, "the teacher's logits get no gradient");
    });
    // w = 0 is the cross-entropy alone (case 4 also checks it against PyTorch).
    const s = fx.tensors.get('loss/4/student')!;
    const y = fx.tensors.get('loss/4/labels')!;
    close(distillationLoss(s, fx.tensors.get('loss/4/teacher')!, y, { temperature: 3, weight: 0, labelSmoothing: 0.2 }).item(), crossEntropy(s, y, { labelSmoothing: 0.2 }).item(), 1e-6, 'w = 0');
  });
});

test('distillationLoss refuses a bad temperature, weight or teacher shape with a clear error', () => {
  scope(() => {
    const s = Tensor.fromArray(new Float32Array(6), [2, 3]);
    const y = Tensor.fromArray(new BigInt64Array([0n, 2n]), [2]);
    assert.throws(() => distillationLoss(s, s, y, { temperature: 0 }), /distillationLoss\.temperature must be a positive number, got 0/);
    assert.throws(() => distillationLoss(s, s, y, { weight: 1.5 }), /distillationLoss\.weight must be a number in \[0, 1\], got 1\.5/);
    assert.throws(() => distillationLoss(s, Tensor.fromArray(new Float32Array(8), [2, 4]), y), /teacher logits must have the student's shape \[2, 3\], got \[2, 4\]/);
  });
});

test("one distilling step of the golden network is PyTorch's: loss, every update, running statistics; the teacher is untouched", async () => {
  const fx = loadFixture('distill');
  const step = JSON.parse(fx.metadata.step!) as { temperature: number; weight: number; labelSmoothing: number; lr: number };
  const studentFx = loadFixture(fx.metadata.student!);
  const teacherFx = loadFixture(fx.metadata.teacher!);
  const studentConfig = JSON.parse(studentFx.metadata.config!) as ModelConfig;
  const teacherConfig = JSON.parse(teacherFx.metadata.config!) as ModelConfig;
  assert.equal(teacherConfig.binaryActivations, false);
  // Both ways of stepping: LibTorch's SGD (host sync each step) and the sync-free fused SGD.
  for (const onDevice of [false, true]) {
    await scope(async () => {
      using student = createModel(studentConfig);
      student.loadStateDict(studentFx.group('state/'));
      using teacher = createModel(teacherConfig);
      teacher.loadStateDict(teacherFx.group('state/'));
      teacher.train(); // the step itself must put it in eval mode
      const before = new Map([...student.namedParameters()].map(([k, t]) => [k, t.toFloat32Array()]));
      using sgd = new SGD(student, { lr: step.lr, momentum: 0, weightDecay: 0 });
      using metrics = onDevice ? new StepMetrics() : undefined;
      const r = await trainStep(student, sgd, studentFx.tensors.get('input')!, studentFx.tensors.get('labels')!, {
        labelSmoothing: step.labelSmoothing,
        distill: { teacher, temperature: step.temperature, weight: step.weight },
        ...(metrics ? { metrics } : {}),
      });
      const loss = metrics ? (await metrics.read()).lossSum / r.count : r.loss;
      close(loss, fx.values('step/loss')[0]!, 1e-5, `loss (${onDevice ? 'fused' : 'LibTorch'} SGD)`);
      const grads = fx.group('step/grad/');
      let scale = 0;
      for (const g of grads.values()) for (const v of g.toFloat32Array()) scale = Math.max(scale, Math.abs(v));
      assert.equal(grads.size, before.size);
      for (const [name, p] of student.namedParameters()) {
        const b = before.get(name)!;
        const a = p.toFloat32Array();
        const g = grads.get(name)!.toFloat32Array();
        for (let i = 0; i < a.length; i++) {
          // SGD with lr 1: the update is the gradient.
          const update = b[i]! - a[i]!;
          const tol = 1e-4 * scale + 1e-4 * Math.abs(g[i]!) + 4 * Math.abs(b[i]!) * 2 ** -23;
          if (!(Math.abs(update - g[i]!) <= tol)) assert.fail(`${name}[${i}]: update ${update}, PyTorch's gradient ${g[i]}`);
        }
      }
      for (const [name, t] of student.buffers()) assertCloseScaled(t.toFloat32Array(), fx.values(`step/state_after/${name}`), `student ${name}`);
      // The teacher: eval mode, every parameter and buffer bit for bit as loaded, no gradient.
      assert.equal(teacher.training, false);
      for (const [name, t] of teacher.stateDict()) {
        assert.deepEqual(t.toFloat32Array(), teacherFx.values(`state/${name}`), `teacher ${name} unchanged`);
      }
      for (const [name, p] of teacher.namedParameters()) assert.equal(p.grad, null, `teacher ${name} has no gradient`);
      // The teacher's logits the step used are PyTorch's eval-mode ones.
      assertCloseScaled(teacher.forward(studentFx.tensors.get('input')!).toFloat32Array(), fx.values('step/teacher_logits'), 'teacher logits');
    });
  }
});

test('a distilling step refuses a teacher with other classes, the student itself, or bad settings', async () => {
  await scope(async () => {
    using student = createModel({ inChannels: 1, width: 4, numClasses: 4 });
    using other = createModel({ inChannels: 1, width: 4, numClasses: 5, binaryActivations: false });
    using sgd = new SGD(student, { lr: 0.1, momentum: 0 });
    const x = Tensor.zeros([2, 1, 8, 8]);
    const y = Tensor.fromArray(new BigInt64Array([0n, 1n]), [2]);
    await assert.rejects(trainStep(student, sgd, x, y, { distill: { teacher: other } }), /distillation: the teacher has 5 classes, the student 4/);
    await assert.rejects(trainStep(student, sgd, x, y, { distill: { teacher: student } }), /distill\.teacher must be another model than the student/);
    await assert.rejects(trainStep(student, sgd, x, y, { distill: { teacher: 'x' as never } }), /distill\.teacher must be a Model/);
    using teacher = createModel({ inChannels: 1, width: 4, numClasses: 4, binaryActivations: false });
    await assert.rejects(trainStep(student, sgd, x, y, { distill: { teacher, temperature: -1 } }), /distill\.temperature must be a positive number/);
    await assert.rejects(trainStep(student, sgd, x, y, { distill: { teacher, weight: 2 } }), /distill\.weight must be a number in \[0, 1\]/);
  });
});

// ------------------------------------------------------------------------------------------------
// The run: a teacher loaded from a file or trained first (stage 0), on the toy task.

const MODEL: ModelConfig = { inChannels: 1, width: 4, numClasses: TOY_CLASSES };
const STAGE1: StageOptions = { epochs: 2, lr: 5e-3, weightDecay: 1e-5, milestones: [1], gammas: [0.1] };
const STAGE2: StageOptions = { epochs: 1, lr: 1e-3, weightDecay: 0, milestones: [], gammas: [] };
const TEACHER: StageOptions = { epochs: 2, lr: 5e-3, weightDecay: 1e-5, milestones: [1], gammas: [0.1] };

function config(outDir: string | undefined, extra: Partial<TwoStageConfig> = {}): TwoStageConfig {
  const tr = toyData(128, 1);
  const te = toyData(64, 101);
  return {
    model: MODEL,
    stage1: STAGE1,
    stage2: STAGE2,
    train: new InMemoryBatches(tr.images, tr.labels, TOY_SHAPE, TOY_CLASSES, { batchSize: 32, seed: 1 }),
    test: new InMemoryBatches(te.images, te.labels, TOY_SHAPE, TOY_CLASSES, { batchSize: 64, shuffle: false }),
    seed: 5,
    ...(outDir ? { outDir } : {}),
    ...extra,
  };
}

const tmpDir = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'bnn-distill-'));
const weightsOf = (file: string): Map<string, Uint8Array> => new Map([...readSafetensorsSync(file).tensors].map(([k, t]) => [k, t.data]));

test('--teacher train: the teacher trains first in teacher/ (full precision), the student distils; an interrupted run resumes without retraining it and ends as an uninterrupted one', async () => {
  const whole = tmpDir();
  const teacherEpochs: number[] = [];
  const result = await trainTwoStage(config(whole, { distill: { teacher: { train: TEACHER, callbacks: { onEpochEnd: (l) => void teacherEpochs.push(l.epoch) } }, temperature: 2, weight: 0.7 } }));
  try {
    assert.deepEqual(teacherEpochs, [0, 1]);
    assert.deepEqual(result.history.map((h) => [h.stage, h.epoch]), [[1, 0], [1, 1], [2, 0]], "the student's history is its own");
    const teacherFile = path.join(whole, 'teacher', 'stage1.safetensors');
    assert.equal(result.teacher?.weightsPath, teacherFile);
    assert.ok(result.teacher?.seconds !== undefined && result.teacher.seconds > 0, 'the teacher reports its training seconds');
    assert.ok(result.teacher?.test && result.teacher.test.accuracy > 0.5, `the teacher learnt the toy task (${result.teacher?.test?.accuracy})`);
    const saved = JSON.parse(readSafetensorsSync(teacherFile).metadata['bnn_torch.config']!) as ModelConfig;
    assert.equal(saved.binaryActivations, false);
    assert.equal(saved.binaryWeights, false);
    // The teacher file loads as a teacher of this student.
    using t = await loadTeacher(teacherFile, MODEL);
    assert.equal(t.training, false);
  } finally {
    result.model.dispose();
  }
  // Distillation changes training: the same run without a teacher ends elsewhere.
  const plain = tmpDir();
  (await trainTwoStage(config(plain))).model.dispose();
  assert.notDeepEqual(weightsOf(path.join(plain, 'final.safetensors')), weightsOf(path.join(whole, 'final.safetensors')));

  // Interrupted in the student's first epoch, after the teacher finished; resumed.
  const broken = tmpDir();
  const teacherSeconds: number[] = [];
  const distill = (log: number[], begins: number[][]) => ({
    teacher: {
      train: TEACHER,
      callbacks: {
        onTrainBegin: (i: { epochs: number; startEpoch: number }) => void begins.push([i.startEpoch, i.epochs]),
        onEpochEnd: (l: { epoch: number; seconds: number }) => {
          log.push(l.epoch);
          teacherSeconds.push(l.seconds);
        },
      },
    },
    temperature: 2,
    weight: 0.7,
  });
  const firstRun: number[] = [];
  await assert.rejects(
    trainTwoStage(config(broken, { distill: distill(firstRun, []), callbacks: { onEpochEnd: () => { throw new Error('simulated interruption'); } } })),
    /simulated interruption/,
  );
  assert.deepEqual(firstRun, [0, 1], 'the teacher finished before the interruption');
  const teacherWeights = weightsOf(path.join(broken, 'teacher', 'stage1.safetensors'));
  const resumedEpochs: number[] = [];
  const begins: number[][] = [];
  const resumed = await trainTwoStage(config(broken, { distill: distill(resumedEpochs, begins), resume: true }));
  resumed.model.dispose();
  // The teacher's seconds come from its history, so the resumed run (bnn train's totalSeconds) still counts them.
  const firstTeacherSeconds = teacherSeconds.reduce((x, y) => x + y, 0);
  assert.ok(Math.abs(resumed.teacher!.seconds! - firstTeacherSeconds) < 1e-6, `resumed teacher seconds ${resumed.teacher?.seconds} = the first run's epochs' ${firstTeacherSeconds}`);
  assert.deepEqual(resumedEpochs, [], 'no teacher epoch is trained again');
  assert.deepEqual(begins, [], "the teacher's training does not begin again");
  assert.deepEqual(weightsOf(path.join(broken, 'teacher', 'stage1.safetensors')), teacherWeights);
  assert.deepEqual(weightsOf(path.join(broken, 'final.safetensors')), weightsOf(path.join(whole, 'final.safetensors')), 'resumed = never stopped');

  // Interrupted inside the teacher's training: the teacher continues from its checkpoint.
  const early = tmpDir();
  const once: number[] = [];
  await assert.rejects(
    trainTwoStage(config(early, { distill: { ...distill(once, []), teacher: { train: TEACHER, callbacks: { onEpochEnd: () => { throw new Error('stop in the teacher'); } } } } })),
    /stop in the teacher/,
  );
  const later: number[] = [];
  const laterBegins: number[][] = [];
  (await trainTwoStage(config(early, { distill: distill(later, laterBegins), resume: true }))).model.dispose();
  assert.deepEqual([laterBegins, later], [[[1, 2]], [1]], 'the teacher resumes at its second epoch');
  assert.deepEqual(weightsOf(path.join(early, 'final.safetensors')), weightsOf(path.join(whole, 'final.safetensors')));

  // The distillation is part of the run's identity.
  await assert.rejects(
    trainTwoStage(config(broken, { distill: { ...distill([], []), weight: 0.5 }, resume: true })),
    /belongs to a different run configuration:[\s\S]*distill: checkpoint has .*"weight":0.7.*this run has .*"weight":0.5/,
  );
  await assert.rejects(trainTwoStage(config(broken, { resume: true })), /belongs to a different run configuration:[\s\S]*distill: checkpoint has/);
});

test('a teacher file: loaded and used; a missing file, another shape, binary activations or a misfit tensor are clear errors', async () => {
  const dir = tmpDir();
  const good = path.join(dir, 'teacher.safetensors');
  {
    using t = createModel({ ...MODEL, binaryActivations: false });
    await t.saveWeights(good);
  }
  const r = await trainTwoStage(config(undefined, { stages: 1, distill: { teacher: good } }));
  r.model.dispose();
  assert.equal(r.history.length, 2);

  await assert.rejects(trainTwoStage(config(undefined, { distill: { teacher: path.join(dir, 'nope.safetensors') } })), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'BNN_IO');
    assert.match(e.message, /the teacher's weights file .*nope\.safetensors does not exist/);
    return true;
  });
  const wide = path.join(dir, 'wide.safetensors');
  {
    using t = createModel({ ...MODEL, width: 8, binaryActivations: false });
    await t.saveWeights(wide);
  }
  await assert.rejects(trainTwoStage(config(undefined, { distill: { teacher: wide } })), /the teacher in .*wide\.safetensors does not have the student's shape: width is 8, the student's 4/);
  const binary = path.join(dir, 'binary.safetensors');
  {
    using t = createModel(MODEL);
    await t.saveWeights(binary);
  }
  await assert.rejects(trainTwoStage(config(undefined, { distill: { teacher: binary } })), /the teacher in .*binary\.safetensors has binary activations: a distillation teacher must be full precision/);
  // A file without the config metadata (e.g. from PyTorch): the tensors themselves are checked, by name.
  const bare = path.join(dir, 'bare.safetensors');
  {
    using t = createModel({ ...MODEL, numClasses: 3, binaryActivations: false });
    const { writeStateFile } = await import('../src/io/state-file.js');
    await scope(() => writeStateFile(bare, t.stateDict(), { format: 'pt' }));
  }
  await assert.rejects(loadTeacher(bare, MODEL), /the teacher: .*bare\.safetensors: the weights do not fit this model:[\s\S]*fc\.weight/);
  // A teacher Model of another shape.
  using other = createModel({ ...MODEL, width: 8, binaryActivations: false });
  await assert.rejects(trainTwoStage(config(undefined, { distill: { teacher: other } })), /distill\.teacher does not have the student's shape: width is 8/);
  await assert.rejects(trainTwoStage(config(undefined, { distill: { teacher: good, temperature: 0 } })), /distill\.temperature must be a positive number/);
});

test("teacherStageOptions: stage 1's schedule over the teacher's epochs", () => {
  const s1: StageOptions = { epochs: 10, lr: 2e-3, weightDecay: 1e-5, milestones: [6, 8], gammas: [0.1, 0.1], warmupEpochs: 2 };
  assert.deepEqual(teacherStageOptions(s1, 5), { epochs: 5, lr: 2e-3, weightDecay: 1e-5, milestones: [3, 4], gammas: [0.1, 0.1], warmupEpochs: 1 });
  assert.deepEqual(teacherStageOptions(s1, 10), s1);
  // (Warm-up scales as --epochs-scale scales it: round(2 x 0.1) = 0 epochs.)
  assert.deepEqual(teacherStageOptions(s1, 1), { epochs: 1, lr: 2e-3, weightDecay: 1e-5, milestones: [], gammas: [] });
});

test('bnn train: --teacher, --teacher-epochs and --distill-* are checked before anything runs', async () => {
  const ok = await checkTrainFlags(['--teacher', 'train', '--teacher-epochs', '3', '--distill-temperature', '4', '--distill-weight', '0.9', '--epochs1', '2']);
  assert.deepEqual([ok.trained.teacher, ok.trained.teacherEpochs, ok.trained.distillTemperature, ok.trained.distillWeight], ['train', 3, 4, 0.9]);
  for (const [args, why] of [
    [['--teacher-epochs', '3'], /--teacher-epochs applies to knowledge distillation: give --teacher/],
    [['--distill-weight', '0.3'], /--distill-weight applies to knowledge distillation/],
    [['--teacher', '/nonexistent/t.safetensors'], /--teacher: the weights file \/nonexistent\/t\.safetensors does not exist/],
    [['--teacher', 'train', '--distill-weight', '1.5'], /--distill-weight: the weight must be a number in \[0, 1\], got 1\.5/],
    [['--teacher', 'train', '--distill-temperature', '0'], /--distill-temperature: the temperature must be a positive number, got 0/],
    [['--teacher', 'train', '--teacher-epochs', '0'], /--teacher-epochs: the teacher's epochs must be at least 1, got 0/],
  ] as const) {
    await assert.rejects(checkTrainFlags(args), why, args.join(' '));
  }
});
