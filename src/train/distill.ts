// Knowledge distillation from a full-precision teacher: the options, the teacher's config and its
// checks, loading a teacher from a weights file, and the options of a teacher the run trains first.
import fs from 'node:fs';
import path from 'node:path';

import { checkNumber } from '../core/check.js';
import type { Device } from '../core/device.js';
import { bnnError, rangeError, typeError } from '../errors.js';
import { readSafetensors } from '../io/safetensors.js';
import { CONFIG_METADATA_KEY, createModel, Model } from '../nn/model.js';
import { resolveModelConfig, type ModelConfig, type ResolvedModelConfig } from '../nn/model-config.js';
import type { StageOptions, TrainerCallbacks } from './types.js';

/**
 * Default softening temperature T of the distillation loss: 1, the teacher's own probabilities.
 * The loss is the standard soft-target loss (Hinton et al. 2015), which binary networks use with a
 * real-valued teacher of the same architecture (Real-to-Binary's strong baseline, Martinez et al.
 * 2020); at T = 1 its KL term is ReActNet's "distributional loss" (Liu et al. 2020), the setting
 * known to work for binary students without tuning. A teacher that is confident on most training
 * images makes higher temperatures worth trying; the T² factor keeps the gradient's scale
 * comparable between temperatures.
 */
export const DEFAULT_DISTILL_TEMPERATURE = 1;

/**
 * Default weight w of the distillation term against the cross-entropy with the labels: 0.5, an
 * equal share. The labels keep half the loss, so a teacher that is wrong on an image cannot pull
 * the student fully away from its label, while the soft targets carry the teacher's similarities
 * between classes; w = 1 is the teacher alone (ReActNet's choice), w = 0 the recipe's loss.
 */
export const DEFAULT_DISTILL_WEIGHT = 0.5;

/** Checks a temperature and a weight, naming the option. */
export function checkDistillSettings(temperature: unknown, weight: unknown, name = 'distill'): { temperature: number; weight: number } {
  const t = checkNumber(temperature ?? DEFAULT_DISTILL_TEMPERATURE, `${name}.temperature`, { above: 0 });
  const w = checkNumber(weight ?? DEFAULT_DISTILL_WEIGHT, `${name}.weight`, { min: 0, max: 1 });
  return { temperature: t, weight: w };
}

/** A teacher the run trains itself before the student (stage 0, in `<outDir>/teacher/`). */
export interface TeacherTraining {
  /**
   * The teacher's schedule: one stage of real weights and real activations (binaryActivations
   * false). {@link teacherStageOptions} lays one out from the student's stage 1.
   */
  train: StageOptions;
  /** Hooks of the teacher's training (its epochs are reported as stage 1 of the teacher's run). */
  callbacks?: TrainerCallbacks;
}

/**
 * Knowledge distillation (Hinton et al. 2015) from a full-precision teacher of the student's shape:
 * every training step also runs the teacher (eval mode, no autograd, its BatchNorm statistics never
 * change) on the batch and the loss becomes
 * `(1 - weight) * CE(student, labels) + weight * T² * KL(softmax(teacher / T) || softmax(student / T))`,
 * the KL summed over classes and averaged over the batch (PyTorch's `F.kl_div(..., reduction='batchmean')`),
 * with the stage's label smoothing in the cross-entropy. Both stages distil (and the one stage of `oneStage`).
 */
export interface DistillOptions {
  /**
   * The teacher: a weights file (`.safetensors`, as `Model.saveWeights` writes; a file with the
   * config metadata must describe the student's network with `binaryActivations: false` and float
   * weights, and every tensor must fit it), a {@link Model} of that config, or a
   * {@link TeacherTraining} to train one first (resumable: a finished teacher is never retrained).
   */
  teacher: string | Model | TeacherTraining;
  /** The softening temperature T > 0. Default {@link DEFAULT_DISTILL_TEMPERATURE} (1). */
  temperature?: number;
  /** The weight w in [0, 1] of the distillation term. Default {@link DEFAULT_DISTILL_WEIGHT} (0.5). */
  weight?: number;
}

/** The teacher's network for a student: the same config with real activations and float weights. */
export function teacherConfig(student: ModelConfig): ResolvedModelConfig {
  return resolveModelConfig({ ...student, binaryActivations: false, binaryWeights: false });
}

/**
 * Checks that a teacher's config is the student's full-precision twin, naming the first field that
 * differs (a binary-activation or 1-bit-weight teacher is refused: it is not full precision).
 */
export function checkTeacherConfig(teacher: ModelConfig, student: ModelConfig, what = 'the teacher'): void {
  const t = resolveModelConfig(teacher);
  if (t.binaryActivations) throw rangeError(`${what} has binary activations: a distillation teacher must be full precision (binaryActivations: false)`);
  if (t.binaryWeights) throw rangeError(`${what} has 1-bit weights: a distillation teacher must be full precision (binaryWeights: false)`);
  const want = teacherConfig(student);
  for (const key of Object.keys(want) as (keyof ResolvedModelConfig)[]) {
    if (t[key] !== want[key]) {
      throw rangeError(`${what} does not have the student's shape: ${key} is ${JSON.stringify(t[key])}, the student's ${JSON.stringify(want[key])}`);
    }
  }
}

/**
 * Loads a teacher from a weights file onto `device`, in eval mode: the file must exist, its config
 * metadata (when it has some) must be the student's full-precision twin, and every tensor must fit
 * (a missing, extra or misshapen tensor is named).
 *
 * @throws BnnError `BNN_IO` for a missing or unreadable file, `BNN_INVALID_ARGUMENT` for a teacher
 *   of another shape or with binary activations or weights.
 */
export async function loadTeacher(file: string, student: ModelConfig, device: Device = 'cpu'): Promise<Model> {
  if (typeof file !== 'string' || file === '') throw typeError('the teacher must be a weights file path, a Model or { train }');
  if (!fs.existsSync(file)) throw bnnError(`the teacher's weights file ${file} does not exist`, 'BNN_IO');
  const { metadata } = await readSafetensors(file);
  const raw = metadata[CONFIG_METADATA_KEY];
  if (raw !== undefined) {
    let saved: ModelConfig;
    try {
      saved = JSON.parse(raw) as ModelConfig;
    } catch {
      throw bnnError(`${file}: the teacher's config metadata is not valid JSON`, 'BNN_IO');
    }
    checkTeacherConfig(saved, student, `the teacher in ${file}`);
  }
  const model = createModel(teacherConfig(student)).to(device);
  try {
    await model.loadWeights(file);
  } catch (e) {
    model.dispose();
    if (e instanceof Error) e.message = `the teacher: ${e.message}`;
    throw e;
  }
  return model.eval();
}

/**
 * The schedule of a teacher the run trains (`bnn train --teacher train`): the student's stage 1
 * (optimizer, learning rate, weight decay, ...) over `epochs` epochs, its milestones scaled by
 * `epochs / stage1.epochs` (as `--epochs-scale` scales them). The time budget does not shorten it.
 */
export function teacherStageOptions(stage1: StageOptions, epochs: number): StageOptions {
  const scale = epochs / stage1.epochs;
  const milestones: number[] = [];
  const gammas: number[] = [];
  stage1.milestones.forEach((m, i) => {
    const scaled = Math.max(1, Math.round(m * scale), (milestones.at(-1) ?? 0) + 1);
    if (scaled >= epochs) return;
    milestones.push(scaled);
    gammas.push(stage1.gammas[i]!);
  });
  const { warmupEpochs, ...rest } = stage1;
  const warmup = warmupEpochs === undefined ? undefined : Math.min(Math.round(warmupEpochs * scale), epochs);
  return { ...rest, epochs, milestones, gammas, ...(warmup ? { warmupEpochs: warmup } : {}) };
}

/** @internal What a run's identity records of its distillation (compared on resume). */
export function distillIdentity(d: DistillOptions, settings: { temperature: number; weight: number }): Record<string, unknown> {
  const teacher = typeof d.teacher === 'string' ? { file: path.resolve(d.teacher) } : d.teacher instanceof Model ? 'model' : { train: d.teacher.train };
  return { teacher, temperature: settings.temperature, weight: settings.weight };
}
