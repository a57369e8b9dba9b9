// `bnn train`: the recipe's two-stage training on a real dataset, with progress, metrics, a report.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import yargs, { type Argv, type ArgumentsCamelCase } from 'yargs';

import { DataLoader } from '../../data/loader.js';
import { Tensor } from '../../core/tensor.js';
import { distributedBackends, ProcessGroup, rendezvousFromEnv } from '../../distributed/process-group.js';
import { checkBoolean, checkInteger, checkNumber, checkOneOf } from '../../core/check.js';
import type { Device } from '../../core/device.js';
import type { Dataset, DatasetName } from '../../data/datasets.js';
import { isBnnError } from '../../errors.js';
import { getPreset, scaleStage, type Preset, type PresetName, PRESETS } from '../../train/presets.js';
import { readRunDirectory, writeReport } from '../../report/index.js';
import { libtorchInfo, getNumThreads, setCudnnOptions } from '../../core/runtime.js';
import { summarize } from '../../nn/summary.js';
import type { ActivationStatistics } from '../../nn/model.js';
import {
  BLOCK_ACTIVATIONS,
  BLOCK_ORDERS,
  DOWNSAMPLES,
  resolveModelConfig,
  SIGN_GRADIENTS,
  type BlockActivation,
  type BlockOrder,
  type Downsample,
  type SignGradient,
} from '../../nn/model-config.js';
import { checkStage } from '../../train/trainer.js';
import { DEFAULT_DISTILL_TEMPERATURE, DEFAULT_DISTILL_WEIGHT, teacherStageOptions } from '../../train/distill.js';
import { oneStageOptions, trainTwoStage } from '../../train/two-stage.js';
import { parseDuration, type TimeBudgetPlan } from '../../train/time-budget.js';
import type { EpochLog, StageOptions, TrainerCallbacks } from '../../train/types.js';
import { VERSION } from '../../core/version.js';
import { TensorBoardWriter } from '../../io/tensorboard.js';
import { checkpointWeights, tensorBoardCallbacks, WeightDiagnostics, type LayerDiagnostics } from '../../train/diagnostics.js';
import { applyThreads, DATASETS, isImageData, loadData, modelSwitches, numberList, resolveDevice, UsageError } from '../common.js';
import { cpuThreadsPerWorker, launchWorkers, WORKER_ENV } from '../launcher.js';
import { Progress } from '../progress.js';
import { defaultRunDir, RunDirectory } from '../run-dir.js';

export interface TrainArgs {
  preset: PresetName;
  dataset: DatasetName;
  data?: string;
  stage: 'both' | '1' | '2';
  init?: string;
  epochs?: number;
  epochs1?: number;
  epochs2?: number;
  epochsScale?: number;
  stepsPerEpoch?: number;
  lr?: number;
  lr1?: number;
  lr2?: number;
  weightDecay?: number;
  weightDecay1?: number;
  weightDecay2?: number;
  schedule?: string[];
  schedule1?: string[];
  schedule2?: string[];
  gammas?: string[];
  gammas1?: string[];
  gammas2?: string[];
  warmup?: number;
  warmupEpochs?: number;
  warmupEpochs1?: number;
  warmupEpochs2?: number;
  mixup?: number;
  batchSize?: number;
  width?: number;
  stem?: 'small' | 'imagenet';
  doubleSkip: boolean;
  blockOrder: BlockOrder;
  blockActivation: BlockActivation;
  downsample: Downsample;
  signGradient: SignGradient;
  learnableThresholds: boolean;
  imageSize?: number;
  channels?: number;
  skipBad: boolean;
  workers?: number;
  limit?: number;
  cropPadding?: number;
  hflip?: boolean;
  rotation?: number;
  labelSmoothing: number;
  clipLatentWeights: boolean;
  noDecayOn?: string[];
  optimizer?: 'adam' | 'sgd';
  momentum?: number;
  nesterov?: boolean;
  lrSchedule?: 'step' | 'cosine';
  oneStage?: boolean;
  teacher?: string;
  teacherEpochs?: number;
  distillTemperature?: number;
  distillWeight?: number;
  device: string;
  precision: 'auto' | 'float32' | 'bfloat16' | 'float16';
  syncInterval?: number;
  cudaGraph: boolean;
  deterministic: boolean;
  timeBudget?: string;
  threads?: number;
  seed: number;
  out?: string;
  resume: boolean;
  progress: boolean;
  nproc: number;
  distTimeout: number;
  backend?: 'gloo' | 'nccl';
  syncBn: boolean;
  tensorboard?: string | false;
  tensorboardInterval: number;
}

export const command = 'train';
export const describe = 'Two-stage training (binary activations, then 1-bit weights) on a real dataset';

export function builder(y: Argv): Argv<TrainArgs> {
  return y
    .option('preset', { type: 'string', choices: Object.keys(PRESETS) as PresetName[], default: 'fashion-mnist-cpu' as PresetName, describe: 'schedule preset' })
    .option('dataset', { type: 'string', choices: DATASETS, default: 'fashion-mnist' as DatasetName, describe: 'dataset to train on' })
    .option('data', {
      type: 'string',
      describe:
        "the dataset's files (default: the Debian package location for fashion-mnist), or image data: a folder of class folders " +
        '(ImageFolder layout, with train/ and val/ splits), a list file ("path label" lines) or a store from bnn prepare',
    })
    .option('image-size', { type: 'number', describe: "image data: side of the training crop (default: the preset's; images up to 64 px are otherwise decoded into memory as they are)" })
    .option('channels', { type: 'number', choices: [1, 3], describe: 'image data: 3 (RGB, default) or 1 (grey)' })
    .option('skip-bad', { type: 'boolean', default: false, describe: 'image data: leave out unreadable files (counted in the run summary) instead of failing' })
    .option('workers', { type: 'number', describe: 'image data: decoder threads (default: one per core)' })
    .option('stage', { type: 'string', choices: ['both', '1', '2'] as const, default: 'both' as const, describe: 'which stage(s) to run' })
    .option('init', { type: 'string', describe: 'stage-1 weights (.safetensors) to start stage 2 from (with --stage 2)' })
    .option('epochs', { type: 'number', describe: 'epochs of every stage that runs' })
    .option('epochs1', { type: 'number', describe: 'stage-1 epochs' })
    .option('epochs2', { type: 'number', describe: 'stage-2 epochs' })
    .option('epochs-scale', { type: 'number', describe: "scale the preset's epochs and milestones (e.g. 0.1)" })
    .option('steps-per-epoch', { type: 'number', describe: "training batches per epoch, every stage (Keras's steps_per_epoch; default the whole training set)" })
    .option('lr', { type: 'number', describe: 'learning rate of the stage selected by --stage 1|2' })
    .option('lr1', { type: 'number', describe: 'stage-1 learning rate' })
    .option('lr2', { type: 'number', describe: 'stage-2 learning rate' })
    .option('weight-decay', { type: 'number', describe: 'weight decay of every stage that runs (--weight-decay1/2 override it per stage)' })
    .option('weight-decay1', { type: 'number', describe: 'stage-1 weight decay (recipe: 1e-5)' })
    .option('weight-decay2', { type: 'number', describe: 'stage-2 weight decay (recipe: 0)' })
    .option('schedule', { type: 'array', string: true, describe: 'lr milestones (epochs) of the stage selected by --stage 1|2' })
    .option('schedule1', { type: 'array', string: true, describe: 'stage-1 lr milestones, e.g. 40 60 70' })
    .option('schedule2', { type: 'array', string: true, describe: 'stage-2 lr milestones' })
    .option('gammas', { type: 'array', string: true, describe: 'lr factors at the milestones of the stage selected by --stage 1|2' })
    .option('gammas1', { type: 'array', string: true, describe: 'stage-1 lr factors, one per milestone' })
    .option('gammas2', { type: 'array', string: true, describe: 'stage-2 lr factors' })
    .option('warmup-epochs', {
      type: 'number',
      alias: 'warmup',
      describe:
        "linear learning-rate warm-up over the first k epochs of every stage that runs (with --one-stage: of the one stage), ramped every step as PyTorch's LinearLR(start_factor=1/T, total_iters=T), T = k x batches per epoch; it multiplies the step or cosine schedule, whose milestones count from the stage's epoch 0 (default 0: none)",
    })
    .option('warmup-epochs1', { type: 'number', describe: 'stage-1 warm-up epochs (overrides --warmup-epochs)' })
    .option('warmup-epochs2', { type: 'number', describe: 'stage-2 warm-up epochs (overrides --warmup-epochs)' })
    .option('batch-size', { type: 'number', describe: 'batch size (default: the preset\'s)' })
    .option('width', { type: 'number', describe: 'base channels of the ResNet (default: the preset\'s)' })
    .option('stem', { type: 'string', choices: ['small', 'imagenet'] as const, describe: "the network's stem (default: the preset's; imagenet for 224 px images)" })
    .option('double-skip', { type: 'boolean', default: true, describe: 'the recipe\'s double skip (--no-double-skip: classic blocks)' })
    .option('block-order', {
      type: 'string',
      choices: BLOCK_ORDERS,
      default: 'bn-sign-conv' as BlockOrder,
      describe: "order inside a binary block: the recipe's BatchNorm -> sign -> conv, or Bi-Real Net's sign -> conv -> BatchNorm",
    })
    .option('block-activation', {
      type: 'string',
      choices: BLOCK_ACTIVATIONS,
      default: 'prelu' as BlockActivation,
      describe: "what follows a block's residual add (rprelu: ReActNet's PReLU between two learnable per-channel shifts)",
    })
    .option('sign-gradient', {
      type: 'string',
      choices: SIGN_GRADIENTS,
      default: 'ste' as SignGradient,
      describe: "the sign activations' gradient: the recipe's clipped straight-through estimator, or Bi-Real Net's ApproxSign (2 - 2|x| for |x| < 1)",
    })
    .option('learnable-thresholds', {
      type: 'boolean',
      default: false,
      describe: "ReActNet's RSign: a learnable per-channel threshold before each block's sign (sign(x - beta), beta from 0)",
    })
    .option('downsample', {
      type: 'string',
      choices: DOWNSAMPLES,
      default: 'avgpool' as Downsample,
      describe: "shortcut of the blocks that change shape: the recipe's 1x1 conv + BatchNorm + 2x2 avg-pool, ResNet's strided 1x1 conv + BatchNorm, or a binary 1x1 conv (sign, 1-bit weights) + BatchNorm + avg-pool",
    })
    .option('limit', { type: 'number', describe: 'train on the first N samples only (quick runs)' })
    .option('crop-padding', { type: 'number', describe: 'random-crop padding in pixels (0: off; default: the preset\'s)' })
    .option('hflip', { type: 'boolean', describe: 'random horizontal flips (default: the preset\'s)' })
    .option('rotation', { type: 'number', describe: 'random rotation by up to this many degrees (default: the preset\'s; cifar100: 15)' })
    .option('label-smoothing', { type: 'number', default: 0 })
    .option('mixup', {
      type: 'number',
      describe:
        'mixup alpha, both stages: each step trains on lambda x images + (1 - lambda) x a permutation of them, lambda ~ Beta(alpha, alpha), with the same mix of the two labels\' cross-entropies; training accuracy counts the label with the larger weight (default 0: off; 0.2 is usual)',
    })
    .option('clip-latent-weights', { type: 'boolean', default: false, describe: 'clamp latent weights to [-1, 1] in stage 2' })
    .option('no-decay-on', { type: 'array', string: true, choices: ['bn', 'prelu', 'bias'], describe: 'parameters without weight decay' })
    .option('optimizer', { type: 'string', choices: ['adam', 'sgd'] as const, describe: 'optimizer of both stages: adam (the recipe, default) or sgd (torch.optim.SGD with momentum, coupled weight decay)' })
    .option('momentum', { type: 'number', describe: 'SGD momentum in [0, 1), both stages (default 0.9; with --optimizer sgd)' })
    .option('nesterov', { type: 'boolean', describe: 'SGD with Nesterov momentum, both stages (with --optimizer sgd)' })
    .option('lr-schedule', {
      type: 'string',
      choices: ['step', 'cosine'] as const,
      describe: "learning rate per epoch, both stages: step (the recipe's milestones and gammas, default) or cosine (CosineAnnealingLR over each stage's epochs, to 0)",
    })
    .option('one-stage', {
      type: 'boolean',
      describe: "ablation: one run with 1-bit weights from scratch for stage 1 + stage 2 epochs (stage 1's optimizer and weight decay; each epoch at the two-stage run's learning rate), instead of the two stages",
    })
    .option('teacher', {
      type: 'string',
      describe:
        "knowledge distillation from a full-precision teacher (the student's network with real activations and float weights): a weights file (.safetensors: teacher/stage1.safetensors of an earlier --teacher train run, or Model.saveWeights of a binaryActivations: false model), or 'train' to train one first in <run dir>/teacher (resumable; its time counts in the time budget)",
    })
    .option('teacher-epochs', { type: 'number', describe: "with --teacher train: the teacher's epochs (default: stage 1's; stage 1's optimizer and learning rate, milestones scaled)" })
    .option('distill-temperature', { type: 'number', describe: 'with --teacher: softening temperature T > 0 of the distillation loss (default 1)' })
    .option('distill-weight', { type: 'number', describe: 'with --teacher: weight w in [0, 1] of T²·KL(teacher || student) against (1 - w)·cross-entropy (default 0.5)' })
    .option('device', { type: 'string', default: 'cpu', describe: "'cpu', 'cuda' or 'cuda:N'" })
    .option('precision', {
      type: 'string',
      choices: ['auto', 'float32', 'bfloat16', 'float16'] as const,
      default: 'auto',
      describe: 'forward-pass arithmetic on CUDA (auto: bfloat16 where the GPU has it, else float16 with loss scaling; float32 on the CPU). Weights, optimizer state and checkpoints stay float32',
    })
    .option('sync-interval', { type: 'number', describe: 'CUDA: steps between reads of the loss and accuracy, which stay on the GPU in between (default 50)' })
    .option('cuda-graph', {
      type: 'boolean',
      default: false,
      describe: 'CUDA: capture each training step in a CUDA graph after three ordinary ones and replay it (one launch a step instead of hundreds); not with --mixup, --teacher or --nproc > 1',
    })
    .option('time-budget', {
      type: 'string',
      describe: "wall-clock budget for the whole run, evaluation included, e.g. 15m, 900s, 1.5h: a few batches measure this machine's speed; a shorter budget than the preset needs shortens every epoch (the epochs and milestones stay), a longer one adds epochs ('off': the epochs as given; default: the preset's, 15m for the main job; off when --epochs/--epochs1/--epochs2/--epochs-scale/--steps-per-epoch/--limit are given)",
    })
    .option('deterministic', { type: 'boolean', default: false, describe: "reproducible cuDNN algorithms (turns cuDNN's benchmark search off)" })
    .option('threads', { type: 'number', describe: 'CPU threads for LibTorch (default: all cores)' })
    .option('seed', { type: 'number', default: 0 })
    .option('out', { type: 'string', describe: 'run directory (default: runs/<dataset>-<time>)' })
    .option('resume', { type: 'boolean', default: false, describe: 'continue the run in --out from its checkpoint' })
    .option('progress', { type: 'boolean', default: true, describe: 'live progress bar on a terminal (--no-progress: one line per epoch)' })
    .option('nproc', {
      type: 'number',
      default: 1,
      describe: 'data-parallel worker processes on this machine (one per GPU with --device cuda); --batch-size stays the global batch. Under torchrun/SLURM, leave it at 1: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT are read from the environment',
    })
    .option('dist-timeout', { type: 'number', default: 300, describe: 'seconds a distributed run waits for a missing or stalled process before failing' })
    .option('backend', { type: 'string', choices: ['gloo', 'nccl'] as const, describe: 'collective backend (default: nccl on CUDA when built with it, else gloo)' })
    .option('sync-bn', {
      type: 'boolean',
      default: false,
      describe: "with several processes, BatchNorm normalises with the whole global batch's statistics (SyncBatchNorm) instead of each process's part",
    })
    .option('tensorboard', {
      type: 'string',
      describe: 'TensorBoard event files: curves, weight histograms, binary-network diagnostics (default: on, in <run dir>/tensorboard; give a folder to write elsewhere; --no-tensorboard: off)',
    })
    .option('tensorboard-interval', { type: 'number', default: 50, describe: 'training steps between TensorBoard train/* scalars' }) as unknown as Argv<TrainArgs>;
}

/** The run's time budget in seconds, or undefined: --time-budget, else the preset's unless epochs were given. */
function timeBudgetOf(a: TrainArgs, preset: Preset): number | undefined {
  const explicitEpochs = a.epochs !== undefined || a.epochs1 !== undefined || a.epochs2 !== undefined || a.epochsScale !== undefined || a.stepsPerEpoch !== undefined || a.limit !== undefined;
  const text = a.timeBudget ?? (explicitEpochs ? undefined : preset.timeBudget);
  if (text === undefined || text === 'off' || text === '0') return undefined;
  try {
    return parseDuration(text);
  } catch (e) {
    throw new UsageError(`--time-budget: ${(e as Error).message}`, 2);
  }
}

function stageOptions(a: TrainArgs, stage: 1 | 2): StageOptions {
  const preset = getPreset(a.preset);
  let s: StageOptions = { ...(stage === 1 ? preset.stage1 : preset.stage2) };
  if (a.epochsScale !== undefined) s = { ...scaleStage(s, a.epochsScale) };
  const selected = a.stage === String(stage);
  const pick = <T>(specific: T | undefined, generic: T | undefined): T | undefined => specific ?? (selected ? generic : undefined);
  const epochs = (stage === 1 ? a.epochs1 : a.epochs2) ?? a.epochs;
  if (epochs !== undefined) s.epochs = epochs;
  const lr = pick(stage === 1 ? a.lr1 : a.lr2, a.lr);
  if (lr !== undefined) s.lr = lr;
  // Unlike the rate and the milestones, one weight decay means the same in both stages.
  const wd = (stage === 1 ? a.weightDecay1 : a.weightDecay2) ?? a.weightDecay;
  if (wd !== undefined) s.weightDecay = wd;
  const milestones = numberList(pick(stage === 1 ? a.schedule1 : a.schedule2, a.schedule), `--schedule${stage}`);
  const gammas = numberList(pick(stage === 1 ? a.gammas1 : a.gammas2, a.gammas), `--gammas${stage}`);
  if (milestones) s.milestones = milestones;
  if (gammas) s.gammas = gammas;
  if (milestones && !gammas && milestones.length !== s.gammas.length) {
    s.gammas = milestones.map(() => s.gammas[0] ?? 0.1); // the preset's factor at every new milestone
  }
  const warmup = (stage === 1 ? a.warmupEpochs1 : a.warmupEpochs2) ?? a.warmupEpochs ?? a.warmup;
  if (warmup !== undefined) s.warmupEpochs = warmup;
  if (a.stepsPerEpoch !== undefined) s.stepsPerEpoch = a.stepsPerEpoch;
  if (a.labelSmoothing) s.labelSmoothing = a.labelSmoothing;
  // Only when on: a run without mixup keeps the stage options (and checkpoints) it always had.
  if (a.mixup !== undefined && a.mixup !== 0) s.mixup = a.mixup;
  if (stage === 2 && a.clipLatentWeights) s.clipLatentWeights = true;
  if (a.noDecayOn?.length) s.noDecayOn = a.noDecayOn as StageOptions['noDecayOn'];
  if (a.optimizer !== undefined) s.optimizer = a.optimizer;
  if (a.momentum !== undefined) s.momentum = a.momentum;
  if (a.nesterov !== undefined) s.nesterov = a.nesterov;
  if (a.lrSchedule !== undefined) s.lrSchedule = a.lrSchedule;
  return s;
}

// Flags that may differ on --resume: how the run executes, not what it trains (checkpoints are
// float32 whatever the precision, so a run can continue in another one; a time-budgeted run
// resumes with the schedule its checkpoint was sized to).
const RUN_ONLY_FLAGS = new Set(['resume', 'out', 'threads', 'progress', 'nproc', 'distTimeout', 'backend', 'precision', 'syncInterval', 'cudaGraph', 'deterministic', 'timeBudget', '_', '$0']);

/** The flags that decide what a run trains, as config.json keeps them (`cli`): what --resume restores. */
function trainedFlags(a: TrainArgs): Partial<TrainArgs> {
  return Object.fromEntries(Object.entries(a).filter(([k, v]) => !RUN_ONLY_FLAGS.has(k) && !k.includes('-') && v !== undefined));
}

/**
 * Parses and checks `bnn train` flags exactly as the command does before it loads data or writes a
 * file, without running anything (for `bnn ablate`, which checks every variant before its first
 * run). Returns the flags and the record of them a run's config.json keeps (`cli`); throws the
 * UsageError the command would exit with.
 */
export async function checkTrainFlags(args: readonly string[]): Promise<{ args: TrainArgs; trained: Partial<TrainArgs> }> {
  const parser = builder(yargs([...args]))
    .strict()
    .help(false)
    .version(false)
    .exitProcess(false)
    .fail((msg, err) => {
      throw err ?? new UsageError(msg, 2);
    });
  const argv = (await parser.parseAsync()) as ArgumentsCamelCase<TrainArgs>;
  if (argv._.length > 0) throw new UsageError(`Unknown argument: ${argv._.join(' ')}`, 2);
  const a = resolveRun(argv);
  resolveSettings(a, a.nproc);
  return { args: a, trained: trainedFlags(a) };
}

/** Joins the process group a launcher (bnn --nproc, torchrun, SLURM) described in the environment. */
async function joinFromEnv(a: TrainArgs, device: string): Promise<ProcessGroup | undefined> {
  const rv = rendezvousFromEnv();
  if (!rv || rv.worldSize === 1) return undefined;
  const backends = distributedBackends();
  const backend = a.backend ?? (device !== 'cpu' && backends.nccl ? 'nccl' : 'gloo');
  if (!backends[backend]) {
    throw new UsageError(`--backend ${backend}: this build of bnn-torch has no ${backend} backend (${backend === 'gloo' ? 'install libgloo-dev and rebuild' : 'it needs a CUDA LibTorch and nccl.h at build time'})`);
  }
  return ProcessGroup.join({ ...rv, backend, timeoutSeconds: a.distTimeout });
}

/**
 * `bnn train`, in three named steps: resolve the run (flags, or a resumed run's saved flags), join
 * the process group (when launched as one of several workers), run the training.
 */
export async function handler(argv: ArgumentsCamelCase<TrainArgs>): Promise<void> {
  const a = resolveRun(argv);
  // Every hyperparameter is checked here, before workers start, data loads or files are written.
  const settings = resolveSettings(a, rendezvousFromEnv()?.worldSize ?? a.nproc);
  if (a.nproc > 1 && process.env[WORKER_ENV] === undefined) {
    process.exitCode = await launch(a);
    return;
  }
  const { device, group } = await joinGroup(a);
  try {
    await runTraining(a, settings, device, group);
  } finally {
    group?.dispose();
  }
}

/** The flags of this run: a resumed run's own flags from its config.json, checked together. */
function resolveRun(argv: TrainArgs): TrainArgs {
  let a: TrainArgs = argv;
  if (a.resume) {
    if (!a.out) throw new UsageError('--resume needs --out <run dir> (the folder of the run to continue)', 2);
    const saved = path.join(a.out, 'config.json');
    if (!fs.existsSync(saved)) throw new UsageError(`--resume: ${saved} does not exist, so there is no run to continue`);
    // The run's own flags come from its config.json; only where and how to run may change.
    const cfg = JSON.parse(fs.readFileSync(saved, 'utf8')) as { cli?: Partial<TrainArgs> };
    a = { ...a, ...cfg.cli, resume: true, out: a.out, progress: a.progress, ...(a.threads !== undefined ? { threads: a.threads } : {}) };
  }
  if (a.stage === 'both') {
    for (const [flag, v] of [['--lr', a.lr], ['--schedule', a.schedule], ['--gammas', a.gammas]] as const) {
      if (v !== undefined) throw new UsageError(`${flag} applies to one stage: use ${flag}1 / ${flag}2, or --stage 1|2`, 2);
    }
  }
  if (a.oneStage && a.stage !== 'both') throw new UsageError(`--one-stage trains both stages' epochs in one run: leave out --stage ${a.stage}`, 2);
  if (a.oneStage && a.init) throw new UsageError('--one-stage trains 1-bit weights from scratch: leave out --init', 2);
  if (a.stage === '2' && !a.init && !a.resume) throw new UsageError('--stage 2 needs --init <stage-1 weights> (stage1.safetensors of a stage-1 run)', 2);
  if (a.teacher === undefined) {
    for (const [flag, v] of [['--teacher-epochs', a.teacherEpochs], ['--distill-temperature', a.distillTemperature], ['--distill-weight', a.distillWeight]] as const) {
      if (v !== undefined) throw new UsageError(`${flag} applies to knowledge distillation: give --teacher <file> or --teacher train`, 2);
    }
  } else if (a.teacher !== 'train') {
    // Absolute in config.json, so that --resume finds the file from any folder.
    const file = path.resolve(a.teacher);
    a = { ...a, teacher: file };
    if (a.teacherEpochs !== undefined) throw new UsageError("--teacher-epochs is for a teacher the run trains: --teacher train (the teacher here is a file)", 2);
    if (!fs.existsSync(file)) throw new UsageError(`--teacher: the weights file ${a.teacher} does not exist (give a .safetensors file, or 'train' to train a teacher first)`, 2);
  }
  if (!Number.isInteger(a.nproc) || a.nproc < 1) throw new UsageError(`--nproc must be a positive integer, got ${a.nproc}`, 2);
  getPreset(a.preset);
  return a;
}

/** The run's hyperparameters, each checked, as trainTwoStage and the loaders will take them. */
interface Settings {
  stage1: StageOptions;
  stage2: StageOptions;
  /** The global batch. */
  batchSize: number;
  width: number;
  augment: { cropPadding: number; hflip: boolean; rotation?: number };
  /** --time-budget (or the preset's) in seconds; undefined when off. */
  budgetSeconds: number | undefined;
  /** --teacher: the distillation's teacher (a file, or the options of one to train) and settings. */
  distill: { teacher: string | { train: StageOptions }; temperature: number; weight: number } | undefined;
}

// Stage option -> the flag that sets it, for error messages.
const STAGE_FLAGS: Record<string, (stage: 1 | 2) => string> = {
  // Before epochs: its messages name the stage's epochs too.
  warmupEpochs: (n) => `--warmup-epochs${n} or --warmup-epochs`,
  epochs: (n) => `--epochs${n} or --epochs`,
  weightDecay: (n) => `--weight-decay${n}`,
  labelSmoothing: () => '--label-smoothing',
  mixup: () => '--mixup',
  momentum: () => '--momentum (with --optimizer sgd)',
  nesterov: () => '--nesterov (with --optimizer sgd)',
  optimizer: () => '--optimizer',
  lrSchedule: () => '--lr-schedule',
  baseLr: (n) => `--lr${n}`,
  milestones: (n) => `--schedule${n}`,
  gammas: (n) => `--gammas${n}`,
};

/**
 * Checks every hyperparameter with the rules the library applies later (so a bad value fails in
 * a second, not after the dataset has loaded and the run folder has been written), as usage
 * errors naming the flag.
 */
function resolveSettings(a: TrainArgs, world: number): Settings {
  const preset = getPreset(a.preset);
  const usage = <T>(flag: string, f: () => T): T => {
    try {
      return f();
    } catch (e) {
      if (e instanceof UsageError) throw e;
      throw new UsageError(`${flag}: ${e instanceof Error ? e.message : String(e)}`, 2);
    }
  };
  if (a.epochsScale !== undefined) usage('--epochs-scale', () => checkNumber(a.epochsScale, 'the scale', { above: 0 }));
  if (a.stepsPerEpoch !== undefined) usage('--steps-per-epoch', () => checkInteger(a.stepsPerEpoch, 'the number of batches', 1));
  const stage1 = usage('stage 1', () => stageOptions(a, 1));
  const stage2 = usage('stage 2', () => stageOptions(a, 2));
  // checkStage names the option (stage1.lr, stage2.milestones, ...), which maps onto --lr1, --schedule2, ...
  for (const [n, s] of [[1, stage1], [2, stage2]] as const) {
    try {
      checkStage(s, `stage${n}`);
    } catch (e) {
      // The library names the option (stage1: baseLr ...); the user typed a flag.
      const m = e instanceof Error ? e.message : String(e);
      const field = Object.keys(STAGE_FLAGS).find((k) => new RegExp(`\\b${k}\\b`).test(m));
      throw new UsageError(`${m}${field ? ` (${STAGE_FLAGS[field]!(n)})` : ''}`, 2);
    }
  }
  const batchSize = usage('--batch-size', () => checkInteger(a.batchSize ?? preset.batchSize, 'the batch size', 1, 0x7fffffff));
  if (batchSize % world !== 0) throw new UsageError(`the batch size ${batchSize} must divide evenly among ${world} processes (it is the global batch)`, 2);
  const width = usage('--width', () => checkInteger(a.width ?? preset.width, 'the width', 1, 4096));
  const cropPadding = usage('--crop-padding', () => checkInteger(a.cropPadding ?? preset.augment.cropPadding, 'the padding', 0, 1024));
  const rotation = usage('--rotation', () => checkNumber(a.rotation ?? preset.augment.rotation ?? 0, 'the angle', { min: 0, max: 180 }));
  if (a.limit !== undefined) usage('--limit', () => checkInteger(a.limit, 'the sample count', 1));
  if (a.imageSize !== undefined) usage('--image-size', () => checkInteger(a.imageSize, 'the size', 1, 65536));
  if (a.workers !== undefined) usage('--workers', () => checkInteger(a.workers, 'the thread count', 0, 1024));
  if (a.threads !== undefined) usage('--threads', () => checkInteger(a.threads, 'the thread count', 1, 4096));
  usage('--seed', () => checkInteger(a.seed, 'the seed', 0));
  // yargs checks these choices on the command line; a resumed run's config.json is checked here.
  usage('--block-order', () => checkOneOf(a.blockOrder, 'block order', BLOCK_ORDERS));
  usage('--block-activation', () => checkOneOf(a.blockActivation, 'block activation', BLOCK_ACTIVATIONS));
  usage('--downsample', () => checkOneOf(a.downsample, 'downsample', DOWNSAMPLES));
  usage('--sign-gradient', () => checkOneOf(a.signGradient, 'sign gradient', SIGN_GRADIENTS));
  usage('--learnable-thresholds', () => checkBoolean(a.learnableThresholds, 'learnable thresholds'));
  // The model switches together (the data's classes and channels are not known yet: any will do),
  // so that an impossible combination stops before data loads or a run folder is written.
  usage('the model switches', () =>
    resolveModelConfig({
      numClasses: 2,
      inChannels: 1,
      ...modelSwitches(a),
    }),
  );
  if (!(a.distTimeout > 0)) throw new UsageError(`--dist-timeout must be positive, got ${a.distTimeout}`, 2);
  if (!(Number.isInteger(a.tensorboardInterval) && a.tensorboardInterval >= 1)) throw new UsageError(`--tensorboard-interval must be a whole number >= 1, got ${a.tensorboardInterval}`, 2);
  if (a.syncInterval !== undefined && !(Number.isInteger(a.syncInterval) && a.syncInterval >= 1)) {
    throw new UsageError(`--sync-interval must be a whole number >= 1, got ${a.syncInterval}`, 2);
  }
  if ((a.precision === 'bfloat16' || a.precision === 'float16') && !a.device.startsWith('cuda')) {
    throw new UsageError(`--precision ${a.precision} needs a CUDA device (--device cuda); on the CPU training runs in float32`, 2);
  }
  if (a.cudaGraph) {
    const clash = !a.device.startsWith('cuda') ? 'a CUDA device (--device cuda)' : a.nproc > 1 ? 'one process (not --nproc > 1)' : a.mixup ? 'no --mixup' : a.teacher !== undefined ? 'no --teacher' : undefined;
    if (clash !== undefined) throw new UsageError(`--cuda-graph needs ${clash}`, 2);
  }
  const budgetSeconds = timeBudgetOf(a, preset);
  let distill: Settings['distill'];
  if (a.teacher !== undefined) {
    const temperature = usage('--distill-temperature', () => checkNumber(a.distillTemperature ?? DEFAULT_DISTILL_TEMPERATURE, 'the temperature', { above: 0 }));
    const weight = usage('--distill-weight', () => checkNumber(a.distillWeight ?? DEFAULT_DISTILL_WEIGHT, 'the weight', { min: 0, max: 1 }));
    const epochs = usage('--teacher-epochs', () => checkInteger(a.teacherEpochs ?? stage1.epochs, "the teacher's epochs", 1));
    distill = { teacher: a.teacher === 'train' ? { train: teacherStageOptions(stage1, epochs) } : a.teacher, temperature, weight };
  }
  return { stage1, stage2, batchSize, width, augment: { cropPadding, hflip: a.hflip ?? preset.augment.hflip, ...(rotation ? { rotation } : {}) }, budgetSeconds, distill };
}

/** --nproc N: starts N workers running this same command and waits for them; the exit code. */
async function launch(a: TrainArgs): Promise<number> {
  if (rendezvousFromEnv() !== undefined) throw new UsageError('--nproc starts its own workers: do not combine it with torchrun/SLURM variables (RANK, WORLD_SIZE)', 2);
  resolveDevice(a.device);
  if (a.device !== 'cpu' && libtorchInfo().cudaDeviceCount < a.nproc) {
    throw new UsageError(`--nproc ${a.nproc} with --device ${a.device}: one GPU per worker is needed and ${libtorchInfo().cudaDeviceCount} are visible`);
  }
  return launchWorkers({ nproc: a.nproc, ...(a.device === 'cpu' ? { threadsPerWorker: cpuThreadsPerWorker(a.nproc) } : {}) });
}

/** This process's device and, under torchrun/SLURM or --nproc, the process group it joins. */
async function joinGroup(a: TrainArgs): Promise<{ device: Device; group: ProcessGroup | undefined }> {
  const localRank = rendezvousFromEnv()?.localRank ?? 0;
  // One GPU per process: 'cuda' means this process's LOCAL_RANK device.
  const device = resolveDevice(a.device === 'cuda' && (rendezvousFromEnv()?.worldSize ?? 1) > 1 ? `cuda:${localRank}` : a.device);
  applyThreads(a.threads);
  return { device, group: await joinFromEnv(a, device) };
}

/** Loads the data, prepares the run folder (rank 0), trains both stages, writes the report. */
async function runTraining(a: TrainArgs, settings: Settings, device: Device, group: ProcessGroup | undefined): Promise<void> {
  const preset = getPreset(a.preset);
  if (a.deterministic) setCudnnOptions({ deterministic: true });
  const main = group === undefined || group.isMain;
  const world = group?.worldSize ?? 1;
  // The budget counts from the process's start (performance.now()'s origin): data loading is in it.
  const { stage1, stage2, batchSize, augment, budgetSeconds, distill } = settings;

  const images = { imageSize: a.imageSize, channels: a.channels, skipBad: a.skipBad, workers: a.workers };
  const train = await loadData(a.dataset, a.data, 'train', preset, images, a.limit);
  const test = await loadData(a.dataset, a.data, 'test', preset, images);
  const dataName = a.data !== undefined && isImageData(a.data) ? train.name : a.dataset;
  const skipped = [...train.skipped, ...test.skipped];
  const model = resolveModelConfig({
    numClasses: train.numClasses,
    inChannels: train.shape[0],
    width: settings.width,
    stem: a.stem ?? (train.streamed ? preset.stem : 'small'),
    ...modelSwitches(a),
  });

  // The run folder is named by rank 0 (a default name holds the time) and shared with the others.
  const runDir = a.out ?? (group ? await sharedRunDir(group, defaultRunDir(dataName)) : defaultRunDir(dataName));
  const run = main ? new RunDirectory(runDir) : undefined;
  const outDir = run?.dir ?? path.resolve(runDir);
  const cli = trainedFlags(a);
  // --one-stage: the stages as given, and the one stage laid out from them (the plan's, when the
  // time budget sized it) that the run trains.
  const one = (plan?: TimeBudgetPlan): { stage1?: StageOptions; stage2?: StageOptions; oneStage?: StageOptions } =>
    a.oneStage ? { stage1, stage2, oneStage: plan ? plan.stage2 : oneStageOptions(stage1, stage2) } : {};
  const writeConfig = (s1: StageOptions, s2: StageOptions, plan?: TimeBudgetPlan): void =>
    run?.writeJson('config.json', { bnnTorch: VERSION, dataset: dataName, ...(a.data ? { data: path.resolve(a.data) } : {}), ...(skipped.length ? { skipped } : {}), trainSamples: train.size, testSamples: test.size, batchSize, augment, device, seed: a.seed, model, stage1: s1, stage2: s2, ...one(plan), stages: a.stage, ...(distill ? { distill } : {}), cli, ...(plan ? { timeBudget: plan } : {}), ...(group ? { processes: world, backend: group.backend } : {}) });
  if (!(a.resume && budgetSeconds !== undefined)) writeConfig(stage1, stage2);
  run?.writeText('summary.txt', summarize({ ...model, binaryWeights: a.stage !== '1' }, { height: train.shape[1], width: train.shape[2] }).text);
  if (a.resume && run) {
    const previous = readRunDirectory(run.dir);
    run.setEpochs(previous.epochs as never);
    run.setDiagnostics(previous.diagnostics ?? []);
  }

  const shard = group?.shard();
  const workers = a.workers !== undefined ? { workers: a.workers } : {};
  const trainLoader = new DataLoader(train, { batchSize: batchSize / world, seed: a.seed, augment: train.streamed ? false : augment, device, ...workers, ...(shard ? { shard } : {}) });
  const testLoader = DataLoader.forEval(test, { batchSize: train.streamed ? 100 : 500, device, ...workers, ...(shard ? { shard } : {}) });
  const progress = new Progress({ live: main && a.progress && process.stderr.isTTY === true, epochs: { 1: stage1.epochs, 2: a.oneStage ? stage1.epochs + stage2.epochs : stage2.epochs }, oneStage: a.oneStage === true });
  const say = (text: string): void => {
    if (main) progress.message(text);
  };
  const info = libtorchInfo();
  say(
    `bnn-torch ${VERSION} on ${device} (${getNumThreads()} threads, LibTorch ${info.version}): ${dataName} ${train.size}/${test.size} samples, ` +
      `width ${model.width}, batch ${batchSize}${group ? ` (${world} processes x ${batchSize / world}, ${group.backend}${a.syncBn ? ', SyncBatchNorm' : ''})` : ''}, ${a.oneStage ? `one stage of 1-bit weights from scratch, ${stage1.epochs + stage2.epochs} epochs` : `stage 1 ${stage1.epochs} epochs + stage 2 ${stage2.epochs} epochs`} -> ${outDir}`,
  );

  if (skipped.length > 0) {
    const shown = skipped.slice(0, 5).map((x) => `  ${x.file}: ${x.reason}`).join('\n');
    say(`skipped ${skipped.length} file${skipped.length === 1 ? '' : 's'} (all listed in config.json):\n${shown}${skipped.length > 5 ? '\n  ...' : ''}`);
  }

  const controller = new AbortController();
  let interrupts = 0;
  const onSigint = (): void => {
    interrupts++;
    if (interrupts === 1) {
      say('interrupt: finishing this batch and saving a checkpoint (Ctrl-C again to quit at once)');
      controller.abort();
    } else {
      process.exit(130);
    }
  };
  process.on('SIGINT', onSigint);
  let plans = 0;
  const onTimeBudget = (plan: TimeBudgetPlan): void => {
    const s = plan.secondsPerStep;
    const stage = (o: StageOptions): string =>
      `${o.epochs} epochs${o.stepsPerEpoch !== undefined ? ` of ${o.stepsPerEpoch}/${trainLoader.batchesPerEpoch} batches` : ''} (milestones ${o.milestones.join(',') || '-'})`;
    // Only the stages that train were measured and planned: a one-stage run trains its single stage
    // as stage 2 (1-bit weights), and --stage 1|2 one of the two.
    const ms = (seconds: number): string => (1000 * seconds).toFixed(0);
    const only = a.oneStage || a.stage === '2' ? 2 : a.stage === '1' ? 1 : undefined;
    const stages =
      only === undefined
        ? `stage 1 ${stage(plan.stage1)}, stage 2 ${stage(plan.stage2)}`
        : `${a.oneStage ? 'one stage' : `stage ${only}`} ${stage(only === 1 ? plan.stage1 : plan.stage2)}`;
    const perStep =
      only === undefined ? `${ms(s.stage1)} / ${ms(s.stage2)} ms a training step (stage 1 / 2)` : `${ms(only === 1 ? s.stage1 : s.stage2)} ms a training step`;
    if (plans++ > 0) {
      say(`time budget: running slower than measured, so the epochs to come are shorter: ${stages}, predicted end at ${(plan.predictedSeconds / 60).toFixed(1)} min`);
    } else say(
      `time budget ${(plan.budgetSeconds / 60).toFixed(1)} min left: measured ${perStep}, ` +
        `${ms(s.eval)} ms an evaluation batch -> x${plan.scale.toFixed(2)}: ${stages}, predicted ${(plan.predictedSeconds / 60).toFixed(1)} min`,
      );
    progress.setEpochs({ 1: plan.stage1.epochs, 2: plan.stage2.epochs });
    writeConfig(plan.stage1, plan.stage2, plan);
  };
  let tb: ReturnType<typeof openTensorBoard> | undefined;
  // Per-layer diagnostics go to metrics.jsonl (and so report.html) every epoch: measured by the
  // TensorBoard callbacks when they run, else here, from the checkpoint saved before the callbacks.
  const recordDiagnostics = (layers: LayerDiagnostics[], log: EpochLog, activations?: readonly ActivationStatistics[]): void => {
    const byLayer = new Map((activations ?? []).map((x) => [x.layer, x]));
    run?.addDiagnostics({
      stage: log.stage,
      epoch: log.epoch,
      layers: layers.map((d) => {
        const x = byLayer.get(d.layer);
        return {
          layer: d.layer,
          ...(d.flipRatio !== undefined ? { flipRatio: d.flipRatio } : {}),
          outsideWindow: d.outsideWindow,
          ...(x ? { activationSaturated: x.saturated, activationPositive: x.positive, constantChannels: x.constantChannels } : {}),
        };
      }),
    });
  };
  const ownDiagnostics = new WeightDiagnostics();
  const started = performance.now();
  let activationBatch: Tensor | undefined;
  try {
    if (main) activationBatch = await fixedBatch(train, device);
    if (main && (a.tensorboard as unknown) !== false) tb = openTensorBoard(a, outDir, trainLoader.batchesPerEpoch, world, recordDiagnostics, activationBatch);
    const result = await trainTwoStage({
      model,
      stage1,
      stage2,
      train: trainLoader,
      test: testLoader,
      device,
      ...(budgetSeconds !== undefined ? { timeBudget: Math.max(1, budgetSeconds - performance.now() / 1000), onTimeBudget } : {}),
      precision: a.precision,
      ...(a.syncInterval !== undefined ? { syncInterval: a.syncInterval } : {}),
      ...(a.cudaGraph ? { cudaGraph: true } : {}),
      seed: a.seed,
      outDir,
      ...(group ? { group, dataParallel: { syncBatchNorm: a.syncBn } } : {}),
      resume: a.resume,
      stages: a.stage === 'both' ? 'both' : (Number(a.stage) as 1 | 2),
      ...(a.oneStage ? { oneStage: true } : {}),
      ...(a.init ? { init: a.init } : {}),
      ...(distill
        ? {
            distill: {
              teacher:
                typeof distill.teacher === 'string'
                  ? distill.teacher
                  : {
                      train: distill.teacher.train,
                      callbacks: main
                        ? {
                            onTrainBegin: ({ epochs, startEpoch }) =>
                              say(`teacher: training a full-precision teacher for ${epochs} epochs${startEpoch > 0 ? ` from epoch ${startEpoch + 1}` : ''} in ${path.join(outDir, 'teacher')}`),
                            onStageEnd: ({ weightsPath }) => say(`teacher ready${weightsPath ? `: ${weightsPath}` : ''}; distilling into the binary network`),
                            onEpochEnd: (log) =>
                              say(`teacher epoch ${log.epoch + 1}: train ${(100 * log.trainAccuracy).toFixed(2)}%${log.testAccuracy !== undefined ? `, test ${(100 * log.testAccuracy).toFixed(2)}%` : ''} (${log.seconds.toFixed(1)} s)`),
                          }
                        : {},
                    },
              temperature: distill.temperature,
              weight: distill.weight,
            },
          }
        : {}),
      // A checkpoint resumes only under the same BatchNorm mode (the key is absent without it, so
      // earlier runs still resume).
      runInfo: { dataset: dataName, trainSamples: train.size, batchSize, augment, ...(a.syncBn && world > 1 ? { syncBatchNorm: true } : {}) },
      signal: controller.signal,
      callbacks: main
        ? {
            onTrainBegin: (info) => tb?.callbacks.onTrainBegin?.(info),
            onBatchEnd: async (b) => {
              progress.batch(group ? { ...b, imagesPerSecond: b.imagesPerSecond * world } : b);
              await tb?.callbacks.onBatchEnd?.(b);
            },
            onEpochEnd: async (log, context) => {
              progress.epoch(log);
              run?.addEpoch(log);
              if (tb) await tb.callbacks.onEpochEnd?.(log, context);
              else {
                const weights = await checkpointWeights(path.join(outDir, 'checkpoint.safetensors'));
                if (weights) {
                  const activations = activationBatch ? await context.model.activationStatistics(activationBatch) : undefined;
                  recordDiagnostics(ownDiagnostics.measure(weights, { binaryDownsample: a.downsample === 'binary' }), log, activations);
                }
              }
            },
            onStageEnd: ({ stage, weightsPath }) => progress.message(`${a.oneStage ? 'training' : `stage ${stage}`} done${weightsPath ? `: ${weightsPath}` : ''}`),
          }
        : {},
    });
    const m = result.test!;
    const stageSeconds: Record<string, number> = {};
    for (const h of result.history) stageSeconds[h.stage] = (stageSeconds[h.stage] ?? 0) + h.seconds;
    // Resumed, the wall clock saw only this invocation: the epochs' own seconds count them all,
    // a trained teacher's included.
    const totalSeconds = a.resume
      ? Object.values(stageSeconds).reduce((x, y) => x + y, 0) + (result.teacher?.seconds ?? 0)
      : (performance.now() - started) / 1000;
    result.model.dispose();
    if (!run) return;
    run.setFinal({
      type: 'final',
      testAccuracy: m.accuracy,
      testLoss: m.loss,
      classNames: test.classNames,
      classAccuracy: m.classAccuracy,
      totalSeconds,
      stageSeconds,
      device,
      threads: getNumThreads(),
      cpu: os.cpus()[0]?.model ?? 'unknown',
      cpuKernels: info.cpuIsa === info.cpuIsaSupported ? info.cpuIsa : `${info.cpuIsa} (capped by BNN_CPU_ISA; the CPU has ${info.cpuIsaSupported})`,
      libtorch: `${info.version} (${info.cudaBuild ? 'CUDA' : 'CPU'})`,
      bnnTorchVersion: VERSION,
    });
    // Files found corrupt while decoding (skipBad) join those left out when the data was loaded.
    const allSkipped = [...train.skipped, ...test.skipped];
    if (allSkipped.length > skipped.length) {
      run.writeJson('skipped.json', allSkipped);
      progress.message(`skipped ${allSkipped.length} unreadable file${allSkipped.length === 1 ? '' : 's'} in all (${allSkipped.length - skipped.length} found corrupt while decoding; listed in skipped.json)`);
    }
    const report = await writeReport(run.dir);
    const teacherTest = result.teacher?.test;
    if (teacherTest) progress.message(`teacher (full precision) test accuracy ${(100 * teacherTest.accuracy).toFixed(2)}%`);
    progress.message(
      `final test accuracy ${(100 * m.accuracy).toFixed(2)}% (loss ${m.loss.toFixed(4)}), 1-bit weights and activations, ` +
        `${(totalSeconds / 60).toFixed(1)} min\nweights: ${result.finalWeightsPath ?? '-'}\nreport: ${report}`,
    );
  } catch (e) {
    if (isBnnError(e) && e.code === 'BNN_INTERRUPTED') {
      if (run) await writeReport(run.dir).catch(() => undefined);
      say(`${e.message}; checkpoint saved in ${outDir}\nresume with: bnn train --resume --out ${outDir}${world > 1 ? ` --nproc ${world}` : ''}`);
      process.exitCode = 130;
      return;
    }
    throw e;
  } finally {
    process.off('SIGINT', onSigint);
    try {
      tb?.writer.close();
    } catch (e) {
      say(`TensorBoard: ${(e as Error).message}`); // a full disk here must not hide the run's own outcome
    }
    activationBatch?.dispose();
    trainLoader.dispose();
    testLoader.dispose();
    train.dispose();
    test.dispose();
  }
}

/** Rank 0's choice of run folder, sent to every rank (a default name holds rank 0's clock). */
async function sharedRunDir(group: ProcessGroup, mine: string): Promise<string> {
  const bytes = new TextEncoder().encode(path.resolve(mine));
  if (bytes.length > 4096) throw new UsageError('the run folder path is too long');
  // Fixed size, so every rank's buffer matches: [length, 4096 bytes of UTF-8].
  const buffer = new Int32Array(4097);
  if (group.isMain) {
    buffer[0] = bytes.length;
    buffer.set(bytes, 1);
  }
  const t = Tensor.fromArray(buffer, [buffer.length]);
  try {
    await group.broadcast([t], 0);
    const received = t.toTypedArray() as Int32Array;
    return new TextDecoder().decode(Uint8Array.from(received.subarray(1, 1 + received[0]!)));
  } finally {
    t.dispose();
  }
}

/**
 * --tensorboard: rank 0's event file and the callbacks that fill it. Histograms and diagnostics
 * read the weights from the checkpoint the run saves just before each epoch's callbacks (the
 * callbacks are not handed the model); the global step continues into stage 2 after stage 1's
 * steps, as config.json (the time budget's plan included) says.
 */
/** Images the activation diagnostics look at every epoch: the first training images, unaugmented, on the device. */
const ACTIVATION_BATCH = 256;

async function fixedBatch(train: Dataset, device: Device): Promise<Tensor | undefined> {
  using loader = DataLoader.forEval(train, { batchSize: Math.min(ACTIVATION_BATCH, train.size), device });
  for await (const batch of loader.epoch(0)) {
    batch.labels.dispose();
    return batch.images;
  }
  return undefined;
}

function openTensorBoard(
  a: TrainArgs,
  outDir: string,
  batchesPerEpoch: number,
  world: number,
  onDiagnostics: (layers: LayerDiagnostics[], log: EpochLog, activations?: readonly ActivationStatistics[]) => void,
  activationBatch: Tensor | undefined,
): { writer: TensorBoardWriter; callbacks: TrainerCallbacks } {
  const writer = new TensorBoardWriter({ logDir: a.tensorboard ? path.resolve(a.tensorboard) : path.join(outDir, 'tensorboard') });
  const config = (): { stage1?: StageOptions } | undefined => {
    const file = path.join(outDir, 'config.json');
    return fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, 'utf8')) as { stage1?: StageOptions }) : undefined;
  };
  const callbacks = tensorBoardCallbacks({
    writer,
    stepInterval: a.tensorboardInterval,
    imagesPerSecondScale: world,
    weights: () => checkpointWeights(path.join(outDir, 'checkpoint.safetensors')),
    binaryDownsample: a.downsample === 'binary',
    ...(activationBatch ? { activationBatch } : {}),
    onDiagnostics,
    stage1Steps: () => {
      const s1 = a.stage === '2' || a.oneStage ? undefined : config()?.stage1;
      return s1 ? s1.epochs * Math.min(s1.stepsPerEpoch ?? Infinity, batchesPerEpoch) : 0;
    },
    // Indented: markdown shows it as code in the Text tab.
    config: () => {
      const c = config();
      return c ? JSON.stringify(c, null, 2).replace(/^/gm, '    ') : undefined;
    },
  });
  return { writer, callbacks };
}
