// What an ablation found, as ablation.json holds it: every run, and per variant the summary over
// seeds and the difference to the recipe.
import path from 'node:path';

import { pairedInterval, summarize, welchInterval } from './stats.js';
import type { AblationPlan } from './variants.js';

/** The state of one run. */
export type AblationRunStatus = 'finished' | 'pending' | 'interrupted' | 'failed';

/** One `bnn train` run of an ablation. */
export interface AblationRunResult {
  variant: string;
  seed: number;
  status: AblationRunStatus;
  /** Final test accuracy (fraction), when finished. */
  accuracy: number | null;
  /** Final test loss, when finished. */
  loss: number | null;
  /** The run's training time in seconds (its own `totalSeconds`), when finished. */
  seconds: number | null;
  /** The run folder, relative to the ablation's folder (`runs/<variant>/seed<k>`). */
  dir: string;
  /** The run's `report.html`, relative to the ablation's folder, when it exists. */
  report: string | null;
  /** True when a finished run from an earlier invocation was reused instead of trained again. */
  reused: boolean;
  /** Why a failed run failed. */
  error?: string;
}

/** The difference of a variant's mean accuracy to the recipe's. */
export interface AblationDelta {
  /**
   * mean(variant) - mean(recipe), as a fraction (0.01 is one percentage point). With
   * `'paired-shared'`, over the seeds both finished (the runs the interval uses, so that it is the
   * interval's centre); otherwise over every finished seed of each side.
   */
  difference: number;
  /**
   * The interval (level 0.95): paired over the seeds both sides finished when they share at least
   * two, else Welch's; null below two finished seeds on either side.
   */
  low: number | null;
  high: number | null;
  /** Its degrees of freedom (pairs - 1, or Welch–Satterthwaite's); null without an interval or when nothing varies. */
  df: number | null;
  /**
   * `'paired'`: each seed's difference is one observation (the seeds on both sides are the same).
   * `'paired-shared'`: the same, over the `pairs` seeds both sides finished; the `unpaired` runs
   * whose seed the other side has not finished are left out of the difference and the interval.
   * `'welch'`: fewer than two seeds are shared, so the two sides are taken as independent samples.
   * Null without an interval. Absent in files of older versions, which paired only identical
   * seeds (and before that always used Welch's).
   */
  method?: 'paired' | 'paired-shared' | 'welch' | null;
  /** The seed pairs a paired interval used (with `'paired'` and `'paired-shared'`). */
  pairs?: number;
  /** Finished runs left out because the other side did not finish their seed (with `'paired-shared'`). */
  unpaired?: number;
}

/** One row of the ablation table. */
export interface AblationVariantResult {
  name: string;
  /** What changes against the recipe. */
  change: string;
  /** The variant's `bnn train` flags (over the common ones). */
  flags: string[];
  addition: boolean;
  /** Finished runs. */
  n: number;
  /** Planned runs (one per seed). */
  planned: number;
  /** Mean final test accuracy over the finished seeds; null when none finished. */
  mean: number | null;
  /** Sample standard deviation over seeds; null below two. */
  sd: number | null;
  /** Difference to the recipe; null for the recipe itself or when either has no finished run. */
  delta: AblationDelta | null;
  /** Mean seconds per finished run. */
  meanSeconds: number | null;
}

/** The content of `ablation.json`. */
export interface AblationResult {
  format: 'bnn-ablation/1';
  /** The command that runs (or continues) this ablation. */
  command: string;
  /** The common `bnn train` flags. */
  trainArgs: string[];
  seeds: number[];
  /** Every planned run has finished. */
  complete: boolean;
  /** When this file was written (ISO 8601). */
  updated: string;
  /** The confidence level of the intervals. */
  level: number;
  variants: AblationVariantResult[];
  runs: AblationRunResult[];
  /** Remarks on choices made for some variants. */
  notes: string[];
}

/** The table of an ablation from its runs so far (the statistics over each variant's finished seeds). */
export function summarizeAblation(plan: AblationPlan, runs: readonly AblationRunResult[], info: { command: string; trainArgs: readonly string[] }): AblationResult {
  const level = 0.95;
  const finished = (name: string) => runs.filter((r) => r.variant === name && r.status === 'finished' && r.accuracy !== null).sort((x, y) => x.seed - y.seed);
  const accuracies = (name: string): number[] => finished(name).map((r) => r.accuracy!);
  const recipe = accuracies('recipe');
  const variants = plan.variants.map((v): AblationVariantResult => {
    const acc = accuracies(v.name);
    const s = summarize(acc);
    const seconds = runs.filter((r) => r.variant === v.name && r.status === 'finished' && r.seconds !== null).map((r) => r.seconds!);
    const delta = v.name !== 'recipe' && acc.length > 0 && recipe.length > 0 ? differenceToRecipe(finished(v.name), finished('recipe'), level) : null;
    return {
      name: v.name,
      change: v.change,
      flags: [...v.flags],
      addition: v.addition === true,
      n: acc.length,
      planned: plan.seeds.length,
      mean: acc.length > 0 ? s.mean : null,
      sd: s.sd ?? null,
      delta,
      meanSeconds: seconds.length > 0 ? summarize(seconds).mean : null,
    };
  });
  return {
    format: 'bnn-ablation/1',
    command: info.command,
    trainArgs: [...info.trainArgs],
    seeds: [...plan.seeds],
    complete: runs.every((r) => r.status === 'finished'),
    updated: new Date().toISOString(),
    level,
    variants,
    runs: [...runs],
    notes: plan.variants.flatMap((v) => (v.note ? [v.note] : [])),
  };
}

/**
 * A variant's difference to the recipe from their finished runs (each with an accuracy). Runs of
 * one seed belong together (the seed fixes the initialisation and the data order), so the runs of
 * the seeds both finished pair up, and the runs without a partner are left out rather than
 * degrading the whole comparison to independent samples; Welch's interval only when fewer than
 * two seeds are shared (one pair has no spread).
 */
function differenceToRecipe(variant: readonly AblationRunResult[], recipe: readonly AblationRunResult[], level: number): AblationDelta {
  const a = variant.map((r) => r.accuracy!);
  const b = recipe.map((r) => r.accuracy!);
  const recipeBySeed = new Map(recipe.map((r) => [r.seed, r.accuracy!]));
  const shared = variant.filter((r) => recipeBySeed.has(r.seed));
  const unpaired = variant.length + recipe.length - 2 * shared.length;
  const paired = shared.length >= 2 ? pairedInterval(shared.map((r) => r.accuracy!), shared.map((r) => recipeBySeed.get(r.seed)!), level) : undefined;
  if (paired) {
    return {
      // All seeds paired: the mean difference is also the difference of the table's means.
      difference: unpaired === 0 ? summarize(a).mean - summarize(b).mean : paired.difference,
      low: paired.low,
      high: paired.high,
      df: paired.df ?? null,
      method: unpaired === 0 ? 'paired' : 'paired-shared',
      pairs: shared.length,
      ...(unpaired > 0 ? { unpaired } : {}),
    };
  }
  const welch = welchInterval(a, b, level);
  return { difference: summarize(a).mean - summarize(b).mean, low: welch?.low ?? null, high: welch?.high ?? null, df: welch?.df ?? null, method: welch ? 'welch' : null };
}

/** A run folder relative to the ablation's, with forward slashes (also a link from its pages). */
export function relativeRunPath(out: string, file: string): string {
  return path.relative(path.resolve(out), file).split(path.sep).join('/');
}
