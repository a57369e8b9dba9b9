// The tricks an ablation turns off, one row each, and the plan: which runs, with which flags.
import path from 'node:path';

import { rangeError } from '../errors.js';

/** One row of the ablation: the recipe with one thing turned off or changed. */
export interface AblationVariant {
  /** Its name, also the run folder's (`runs/<name>/seed<k>`). */
  readonly name: string;
  /** What changes against the recipe, in words (the table's "what changes" column). */
  readonly change: string;
  /** The `bnn train` flags that make the change, appended to the ablation's common flags. */
  readonly flags: readonly string[];
  /** An addition: a trick the recipe does not use, run only when asked for (`--add`). */
  readonly addition?: boolean;
  /** A remark for the table's notes (a choice made for this variant). */
  readonly note?: string;
}

/**
 * The variants `bnn ablate` knows, the recipe first. Each flag is `bnn train`'s own spelling; a
 * flag the installed `bnn train` does not know fails the ablation before its first run.
 */
export const ABLATION_VARIANTS: readonly AblationVariant[] = [
  { name: 'recipe', change: 'the full recipe (baseline)', flags: [] },
  { name: 'block-order', change: 'Bi-Real order sign → conv → BN instead of BN → sign → conv', flags: ['--block-order', 'sign-conv-bn'] },
  { name: 'relu', change: 'ReLU instead of PReLU after the residual add', flags: ['--block-activation', 'relu'] },
  { name: 'no-activation', change: 'no activation after the residual add (PReLU removed)', flags: ['--block-activation', 'none'] },
  { name: 'double-skip', change: 'classic blocks: one shortcut per block instead of one per convolution', flags: ['--no-double-skip'] },
  { name: 'strided-downsample', change: 'strided 1×1 convolution shortcut instead of the recipe’s downsampling', flags: ['--downsample', 'strided'] },
  { name: 'binary-downsample', change: 'binary (1-bit) downsampling shortcut instead of the real-valued one', flags: ['--downsample', 'binary'] },
  { name: 'one-stage', change: 'one stage (1-bit weights and activations from the start) instead of two', flags: ['--one-stage'] },
  { name: 'weight-decay', change: 'weight decay 1e-5 in both stages (recipe: 1e-5, then 0)', flags: ['--weight-decay1', '1e-5', '--weight-decay2', '1e-5'] },
  { name: 'weight-decay-0', change: 'no weight decay in either stage (recipe: 1e-5, then 0)', flags: ['--weight-decay1', '0', '--weight-decay2', '0'] },
  {
    name: 'sgd',
    change: 'SGD with momentum 0.9 instead of Adam',
    flags: ['--optimizer', 'sgd', '--momentum', '0.9', '--lr1', '0.1', '--lr2', '0.01'],
    note: "sgd: learning rates 0.1 (stage 1) and 0.01 (stage 2), SGD's usual scale (the recipe's Adam: 2e-3 and 5e-4 in the main job's preset); change them with --variant-flags 'sgd=--lr1 <a> --lr2 <b>'",
  },
  { name: 'cosine', change: 'cosine learning-rate schedule instead of step decay', flags: ['--lr-schedule', 'cosine'] },
  { name: 'label-smoothing', change: 'addition: label smoothing 0.1', flags: ['--label-smoothing', '0.1'], addition: true },
  {
    name: 'approx-sign',
    change: "addition: Bi-Real Net's ApproxSign gradient (2 − 2|x| for |x| < 1) instead of the clipped straight-through estimator",
    flags: ['--sign-gradient', 'approx-sign'],
    addition: true,
  },
  {
    name: 'rsign',
    change: "addition: ReActNet's RSign, a learnable per-channel threshold before each sign",
    flags: ['--learnable-thresholds'],
    addition: true,
    note: "rsign: in the recipe's order (BatchNorm -> sign) the threshold duplicates the BatchNorm's bias, so this row measures a re-parametrisation (two Adam-normalised parameters moving one threshold); RSign proper acts with Bi-Real's order: --variant-flags 'rsign=--learnable-thresholds --block-order sign-conv-bn' against the block-order row",
  },
  { name: 'rprelu', change: "addition: ReActNet's RPReLU (PReLU between learnable per-channel shifts) instead of PReLU", flags: ['--block-activation', 'rprelu'], addition: true },
  {
    name: 'mixup',
    change: 'addition: mixup with alpha 0.2 in both stages',
    flags: ['--mixup', '0.2'],
    addition: true,
    note: "mixup: alpha 0.2 (lambda ~ Beta(0.2, 0.2)); its training accuracy counts the label with the larger weight, so compare test accuracies; change alpha with --variant-flags 'mixup=--mixup <alpha>'",
  },
  { name: 'warmup', change: 'addition: one epoch of linear learning-rate warm-up at the start of each stage', flags: ['--warmup-epochs', '1'], addition: true },
  {
    name: 'one-stage-warmup',
    change: 'addition: one stage (1-bit weights from the start) with one epoch of linear learning-rate warm-up',
    flags: ['--one-stage', '--warmup-epochs', '1'],
    addition: true,
  },
  {
    name: 'distill',
    change: 'addition: knowledge distillation (T 1, weight 0.5) from a full-precision teacher trained first',
    flags: ['--teacher', 'train'],
    addition: true,
    note:
      "distill: each seed's run trains its own full-precision teacher first (runs/distill/seed<k>/teacher, stage 1's epochs and schedule, the same seed), resumed with the run; the addition costs about one more stage 1 per seed, plus the teacher's forward pass in every student step; change it with --variant-flags 'distill=--teacher-epochs <n> --distill-temperature <T> --distill-weight <w>'",
  },
];

/** The variant named `name`, or a BNN_INVALID_ARGUMENT error listing the known ones. */
export function ablationVariant(name: string): AblationVariant {
  const v = ABLATION_VARIANTS.find((x) => x.name === name);
  if (!v) throw rangeError(`unknown ablation variant '${name}'; known: ${ABLATION_VARIANTS.map((x) => x.name).join(', ')}`);
  return v;
}

/** A command-line flag's name without dashes, value or `no-`, in kebab case: what two flags share when one overrides the other. */
function flagName(token: string): string {
  let name = token.replace(/^--?/, '').split('=')[0]!;
  name = name.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase();
  return name.startsWith('no-') ? name.slice(3) : name;
}

/** Splits flags into groups of a flag and its values (`--schedule1 40 60 70` is one group). */
function flagGroups(args: readonly string[]): { name: string; tokens: string[] }[] {
  const groups: { name: string; tokens: string[] }[] = [];
  for (const t of args) {
    // A dash then a letter starts a flag; `-1` or `1e-5` is a value.
    if (/^--?[A-Za-z]/.test(t)) groups.push({ name: flagName(t), tokens: [t] });
    else if (groups.length > 0) groups[groups.length - 1]!.tokens.push(t);
    else throw rangeError(`'${t}' is not a flag (bnn train takes flags only)`);
  }
  return groups;
}

/**
 * `base` with `over` applied: a flag in `over` replaces the same flag in `base` (also its
 * `--no-` form), so that a variant's setting wins over a common one instead of being given twice.
 */
export function mergeFlags(base: readonly string[], over: readonly string[]): string[] {
  const overGroups = flagGroups(over);
  const replaced = new Set(overGroups.map((g) => g.name));
  return [...flagGroups(base).filter((g) => !replaced.has(g.name)), ...overGroups].flatMap((g) => g.tokens);
}

// ablate sets these itself, per run.
const OWN_FLAGS = new Set(['out', 'seed', 'resume']);

/** Options of {@link planAblation}. */
export interface AblationPlanOptions {
  /** The ablation's folder; runs go to `<out>/runs/<variant>/seed<k>`. */
  out: string;
  /** `bnn train` flags every run gets (dataset, width, epochs, ...). */
  trainArgs?: readonly string[];
  /** Seeds; every variant runs once per seed. */
  seeds: readonly number[];
  /** Variants to run (the recipe is always added, first); default: every variant that is not an addition. */
  variants?: readonly string[];
  /** Additions to run as well (e.g. `label-smoothing`). */
  additions?: readonly string[];
  /** Extra or replacing flags per variant name (e.g. `{ sgd: ['--lr1', '0.05'] }`). */
  variantFlags?: Readonly<Record<string, readonly string[]>>;
}

/** One planned `bnn train` run. */
export interface PlannedRun {
  variant: string;
  seed: number;
  /** The run folder (absolute). */
  dir: string;
  /** The complete `bnn train` flags of a fresh run (without the `train` command itself). */
  args: string[];
}

/** The plan: the variants (recipe first) with their resolved flags, and every run, seed by seed. */
export interface AblationPlan {
  variants: (AblationVariant & { flags: string[] })[];
  seeds: number[];
  runs: PlannedRun[];
}

/**
 * Plans an ablation: the recipe and each chosen variant, each once per seed, with the variant's
 * flags over the common ones. Runs are ordered seed by seed, so a partial ablation has every
 * variant at its first seeds rather than all seeds of a few variants.
 *
 * @throws BnnError `BNN_INVALID_ARGUMENT` for an unknown variant, an addition given as a variant
 *   (or the reverse), a repeated or bad seed, or common flags that ablate sets itself.
 */
export function planAblation(o: AblationPlanOptions): AblationPlan {
  const common = [...(o.trainArgs ?? [])];
  for (const g of flagGroups(common)) {
    if (OWN_FLAGS.has(g.name)) throw rangeError(`--${g.name} is set by the ablation for each run; leave it out of the train flags`);
  }
  if (o.seeds.length === 0) throw rangeError('the ablation needs at least one seed');
  for (const s of o.seeds) if (!(Number.isInteger(s) && s >= 0)) throw rangeError(`seeds must be whole numbers >= 0, got ${s}`);
  if (new Set(o.seeds).size !== o.seeds.length) throw rangeError(`seeds repeat: ${o.seeds.join(',')}`);
  const names = o.variants ?? ABLATION_VARIANTS.filter((v) => !v.addition && v.name !== 'recipe').map((v) => v.name);
  for (const n of names) {
    if (ablationVariant(n).addition) throw rangeError(`'${n}' is an addition, not a trick of the recipe: give it with --add`);
  }
  for (const n of o.additions ?? []) {
    if (!ablationVariant(n).addition) throw rangeError(`'${n}' is not an addition (additions: ${ABLATION_VARIANTS.filter((v) => v.addition).map((v) => v.name).join(', ')}); give it with --variants`);
  }
  const chosen = [...new Set(['recipe', ...names, ...(o.additions ?? [])])].map(ablationVariant);
  for (const n of Object.keys(o.variantFlags ?? {})) {
    if (!chosen.some((v) => v.name === n)) throw rangeError(`flags given for variant '${n}', which this ablation does not run`);
  }
  const variants = chosen.map((v) => ({ ...v, flags: mergeFlags(v.flags, o.variantFlags?.[v.name] ?? []) }));
  const out = path.resolve(o.out);
  const runs = o.seeds.flatMap((seed) =>
    variants.map((v) => {
      const dir = path.join(out, 'runs', v.name, `seed${seed}`);
      return { variant: v.name, seed, dir, args: [...mergeFlags(common, v.flags), '--seed', String(seed), '--out', dir] };
    }),
  );
  return { variants, seeds: [...o.seeds], runs };
}
