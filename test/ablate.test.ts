// `bnn ablate`: its statistics against scipy, its plan, and a tiny real ablation through the CLI
// that is interrupted and continued.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import {
  ABLATION_VARIANTS,
  mergeFlags,
  planAblation,
  regularizedIncompleteBeta,
  renderAblationHtml,
  renderAblationMarkdown,
  runAblation,
  summarizeAblation,
  studentTCdf,
  studentTQuantile,
  summarize,
  pairedInterval,
  welchInterval,
  type AblationResult,
  type AblationRunResult,
} from '../src/ablate/index.js';
import { packageRoot } from '../src/binding/native.js';
import { checkTrainFlags } from '../src/cli/commands/train.js';
import { resolveModelConfig } from '../src/nn/model-config.js';
import { randomImageSet, tempDir, writeIdxSplit } from './support/data-files.js';

const BNN = path.join(packageRoot, 'src', 'cli', 'bnn.ts');

function bnn(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', BNN, ...args], { encoding: 'utf8', cwd: packageRoot, timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const close = (actual: number, expected: number, rel: number, what: string): void =>
  assert.ok(Math.abs(actual - expected) <= rel * Math.max(1, Math.abs(expected)), `${what}: ${actual} vs ${expected}`);

// scipy 1.17.1: stats.t.ppf(p, df) and special.betainc(a, b, x), printed with repr.
const T_QUANTILES: [number, number, number][] = [
  [0.975, 1, 12.706204736174694],
  [0.975, 2, 4.302652729749462],
  [0.975, 2.5, 3.5746548420036817],
  [0.975, 3.7, 2.8675207071911895],
  [0.975, 4.959183673469389, 2.576958449009055],
  [0.975, 10, 2.228138851986274],
  [0.975, 30.5, 2.04086944518632],
  [0.975, 1000, 1.9623390808264083],
  [0.995, 0.5, 4113.964588804174],
  [0.9, 7.3, 1.4089223177480423],
  [0.6, 1.2, 0.3128326213239681],
  [0.75, 0.3, 3.0273369408647977],
  [0.025, 5.5, -2.501858617589239],
];
const BETAS: [number, number, number, number][] = [
  [0.3, 2.5, 0.5, 0.018927124071945658],
  [0.9, 0.25, 0.5, 0.8762125439900634],
  [0.5, 10, 0.5, 0.00023344743474862207],
  [0.01, 1.5, 3, 0.0043226875],
];

test("Student's t quantile and the incomplete beta function match scipy's tabulated values, fractional df included", () => {
  for (const [p, df, q] of T_QUANTILES) close(studentTQuantile(p, df), q, 1e-9, `t.ppf(${p}, ${df})`);
  for (const [p, df, q] of T_QUANTILES) close(studentTCdf(q, df), p, 1e-9, `t.cdf(${q}, ${df})`);
  for (const [x, a, b, v] of BETAS) close(regularizedIncompleteBeta(x, a, b), v, 1e-12, `betainc(${a}, ${b}, ${x})`);
  // Closed forms: df 1 is Cauchy, df 2 is t = (2p - 1) / sqrt(2p(1 - p)).
  close(studentTQuantile(0.9, 1), Math.tan(Math.PI * 0.4), 1e-10, 'Cauchy');
  close(studentTQuantile(0.8, 2), 0.6 / Math.sqrt(2 * 0.8 * 0.2), 1e-10, 'df 2');
  assert.equal(studentTQuantile(0.5, 3.3), 0);
  assert.throws(() => studentTQuantile(1, 3), /probability must be in \(0, 1\)/);
  assert.throws(() => studentTQuantile(0.9, 0), /degrees of freedom/);
});

const scipy = spawnSync('python3', ['-c', 'import scipy'], { encoding: 'utf8' }).status === 0;

test('Welch and paired intervals and t quantiles agree with scipy computed now', { skip: scipy ? false : 'scipy is not importable' }, () => {
  const samples: [number[], number[]][] = [
    [[0.912, 0.905, 0.918], [0.9, 0.895, 0.905, 0.91]],
    [[0.5, 0.52], [0.41, 0.47, 0.44, 0.43, 0.46]],
    [[0.9101, 0.9093, 0.9120, 0.9088, 0.9111], [0.9131, 0.9129]],
  ];
  const dfs = [0.7, 1.5, 2.2, 3, 6.6, 17.25, 123.4];
  const py = [
    'import json, sys',
    'from scipy import stats',
    'd = json.load(sys.stdin)',
    'out = {"t": [stats.t.ppf(0.975, df) for df in d["dfs"]], "welch": []}',
    'for a, b in d["samples"]:',
    '    r = stats.ttest_ind(a, b, equal_var=False)',
    '    ci = r.confidence_interval(0.95)',
    '    out["welch"].append([float(ci.low), float(ci.high), float(r.df)])',
    'out["paired"] = []',
    'for a, b in d["pairs"]:',
    '    r = stats.ttest_rel(a, b)',
    '    ci = r.confidence_interval(0.95)',
    '    out["paired"].append([float(ci.low), float(ci.high), float(r.df)])',
    'print(json.dumps(out))',
  ].join('\n');
  const pairs: [number[], number[]][] = [
    [[0.912, 0.905, 0.918], [0.9, 0.895, 0.905]],
    [[0.7947, 0.8012, 0.7851, 0.79], [0.7853, 0.7921, 0.7765, 0.7811]],
    [[0.5, 0.52], [0.41, 0.47]],
  ];
  const r = spawnSync('python3', ['-c', py], { input: JSON.stringify({ dfs, samples, pairs }), encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const expected = JSON.parse(r.stdout) as { t: number[]; welch: [number, number, number][]; paired: [number, number, number][] };
  dfs.forEach((df, i) => close(studentTQuantile(0.975, df), expected.t[i]!, 1e-9, `t(${df})`));
  samples.forEach(([a, b], i) => {
    const w = welchInterval(a, b)!;
    const [low, high, df] = expected.welch[i]!;
    close(w.low, low, 1e-9, `low ${i}`);
    close(w.high, high, 1e-9, `high ${i}`);
    close(w.df!, df, 1e-9, `df ${i}`);
  });
  pairs.forEach(([a, b], i) => {
    const p = pairedInterval(a, b)!;
    const [low, high, df] = expected.paired[i]!;
    close(p.low, low, 1e-9, `paired low ${i}`);
    close(p.high, high, 1e-9, `paired high ${i}`);
    assert.equal(p.df, df);
  });
});

test('one seed has no spread and no interval; identical seeds a zero-width one', () => {
  assert.deepEqual(summarize([0.9]), { n: 1, mean: 0.9, sd: undefined });
  assert.equal(welchInterval([0.9], [0.8, 0.85]), undefined);
  assert.deepEqual(welchInterval([0.5, 0.5], [0.25, 0.25]), { difference: 0.25, low: 0.25, high: 0.25, df: undefined, level: 0.95 });
  assert.equal(pairedInterval([0.9], [0.8]), undefined);
  assert.deepEqual(pairedInterval([0.5, 0.75], [0.25, 0.5]), { difference: 0.25, low: 0.25, high: 0.25, df: undefined, level: 0.95 });
  assert.throws(() => pairedInterval([0.5, 0.6], [0.4]), /as many values on both sides, got 2 and 1/);
  close(summarize([1, 2, 3, 4]).sd!, Math.sqrt(5 / 3), 1e-15, 'sample sd');
});

test('the plan: recipe first, every variant once per seed, seed by seed, variant flags over the common ones', async () => {
  const plan = planAblation({
    out: '/tmp/abl',
    seeds: [3, 5],
    variants: ['double-skip', 'weight-decay'],
    additions: ['label-smoothing'],
    trainArgs: ['--width', '4', '--weight-decay2', '0.5', '--double-skip', '--schedule1', '3', '6'],
    variantFlags: { 'weight-decay': ['--weight-decay1', '2e-5'] },
  });
  assert.deepEqual(plan.variants.map((v) => v.name), ['recipe', 'double-skip', 'weight-decay', 'label-smoothing']);
  assert.deepEqual(plan.runs.map((r) => `${r.variant}@${r.seed}`), ['recipe@3', 'double-skip@3', 'weight-decay@3', 'label-smoothing@3', 'recipe@5', 'double-skip@5', 'weight-decay@5', 'label-smoothing@5']);
  const args = (v: string, seed: number): string[] => plan.runs.find((r) => r.variant === v && r.seed === seed)!.args;
  assert.deepEqual(args('recipe', 3), ['--width', '4', '--weight-decay2', '0.5', '--double-skip', '--schedule1', '3', '6', '--seed', '3', '--out', '/tmp/abl/runs/recipe/seed3']);
  // --no-double-skip replaces --double-skip; the variant's weight decays replace the common one, the override its first.
  assert.deepEqual(args('double-skip', 5), ['--width', '4', '--weight-decay2', '0.5', '--schedule1', '3', '6', '--no-double-skip', '--seed', '5', '--out', '/tmp/abl/runs/double-skip/seed5']);
  assert.deepEqual(args('weight-decay', 3).slice(0, 10), ['--width', '4', '--double-skip', '--schedule1', '3', '6', '--weight-decay2', '1e-5', '--weight-decay1', '2e-5']);
  assert.deepEqual(plan.variants.find((v) => v.name === 'weight-decay')!.flags, ['--weight-decay2', '1e-5', '--weight-decay1', '2e-5']);
  assert.deepEqual(args('label-smoothing', 3).slice(-6), ['--label-smoothing', '0.1', '--seed', '3', '--out', '/tmp/abl/runs/label-smoothing/seed3']);
  // The alternative binarisers (issue 16) are additions too: one bnn train flag each.
  const binarizers = planAblation({ out: '/tmp/abl', seeds: [0], variants: [], additions: ['approx-sign', 'rsign', 'rprelu'] });
  assert.deepEqual(binarizers.variants.map((v) => v.name), ['recipe', 'approx-sign', 'rsign', 'rprelu']);
  const binarizerArgs = (v: string): string[] => binarizers.runs.find((r) => r.variant === v)!.args.slice(0, -4);
  assert.deepEqual(binarizerArgs('approx-sign'), ['--sign-gradient', 'approx-sign']);
  assert.deepEqual(binarizerArgs('rsign'), ['--learnable-thresholds']);
  assert.deepEqual(binarizerArgs('rprelu'), ['--block-activation', 'rprelu']);
  // Default: every trick but no addition.
  const all = planAblation({ out: 'x', seeds: [0] });
  assert.deepEqual(all.variants.map((v) => v.name), ABLATION_VARIANTS.filter((v) => !v.addition).map((v) => v.name));
  assert.equal(all.variants.find((v) => v.name === 'sgd')!.flags.join(' '), '--optimizer sgd --momentum 0.9 --lr1 0.1 --lr2 0.01');
  assert.deepEqual(mergeFlags(['--lr1', '0.1', '--lr2=0.01', '--gammas1', '0.1', '-1'], ['--lr2', '0.5', '--lr1=2']), ['--gammas1', '0.1', '-1', '--lr2', '0.5', '--lr1=2']);
  // The additions of issue #16: each is bnn train's own flags, checked as bnn train checks them.
  const tricks = planAblation({ out: '/tmp/abl', seeds: [0], variants: [], additions: ['mixup', 'warmup', 'one-stage-warmup'], trainArgs: ['--width', '4', '--warmup-epochs', '2'] });
  assert.deepEqual(tricks.variants.map((v) => [v.name, v.flags.join(' ')]), [
    ['recipe', ''],
    ['mixup', '--mixup 0.2'],
    ['warmup', '--warmup-epochs 1'],
    ['one-stage-warmup', '--one-stage --warmup-epochs 1'],
  ]);
  const trick = (v: string): string[] => tricks.runs.find((r) => r.variant === v)!.args;
  assert.deepEqual(trick('one-stage-warmup').slice(0, 5), ['--width', '4', '--one-stage', '--warmup-epochs', '1'], "the variant's warm-up replaces the common one");
  for (const [v, want] of [['mixup', { mixup: 0.2, warmupEpochs: 2 }], ['warmup', { warmupEpochs: 1 }], ['one-stage-warmup', { oneStage: true, warmupEpochs: 1 }], ['recipe', { warmupEpochs: 2 }]] as const) {
    const { args } = await checkTrainFlags(trick(v));
    const got = { mixup: args.mixup, warmupEpochs: args.warmupEpochs, oneStage: args.oneStage };
    assert.deepEqual(got, { ...{ mixup: undefined, oneStage: undefined }, ...want }, v);
  }
  // The distillation addition: each seed's run trains its own teacher (its flags, checked by bnn
  // train as ablate checks them; the teacher's settings overridable per variant).
  const kd = planAblation({ out: '/tmp/abl', seeds: [0, 1], variants: [], additions: ['distill'], trainArgs: ['--epochs1', '2'], variantFlags: { distill: ['--teacher-epochs', '3'] } });
  assert.deepEqual(kd.runs.map((r) => `${r.variant}@${r.seed}`), ['recipe@0', 'distill@0', 'recipe@1', 'distill@1']);
  assert.deepEqual(kd.runs[1]!.args, ['--epochs1', '2', '--teacher', 'train', '--teacher-epochs', '3', '--seed', '0', '--out', '/tmp/abl/runs/distill/seed0']);
  assert.ok(ABLATION_VARIANTS.find((v) => v.name === 'distill')!.addition);
  assert.throws(() => planAblation({ out: 'x', seeds: [0], variants: ['distill'] }), /'distill' is an addition/);
  for (const [o, msg] of [
    [{ seeds: [] }, /at least one seed/],
    [{ seeds: [1, 1] }, /seeds repeat/],
    [{ seeds: [-1] }, /whole numbers >= 0/],
    [{ seeds: [0], variants: ['nope'] }, /unknown ablation variant 'nope'; known: recipe, /],
    [{ seeds: [0], variants: ['label-smoothing'] }, /'label-smoothing' is an addition/],
    [{ seeds: [0], additions: ['sgd'] }, /'sgd' is not an addition/],
    [{ seeds: [0], trainArgs: ['--out', 'y'] }, /--out is set by the ablation/],
    [{ seeds: [0], trainArgs: ['width', '4'] }, /'width' is not a flag/],
    [{ seeds: [0], variants: ['cosine'], variantFlags: { sgd: ['--lr1', '1'] } }, /variant 'sgd', which this ablation does not run/],
  ] as const) {
    assert.throws(() => planAblation({ out: 'x', ...o }), (e: Error & { code?: string }) => e.code === 'BNN_INVALID_ARGUMENT' && msg.test(e.message));
  }
});

test("the binariser additions' flags are bnn train's own and set the model option they name", async () => {
  const model = async (flags: readonly string[]) => {
    const { args } = await checkTrainFlags(flags);
    return resolveModelConfig({ blockActivation: args.blockActivation, signGradient: args.signGradient, learnableThresholds: args.learnableThresholds });
  };
  const recipe = await model([]);
  assert.deepEqual([recipe.signGradient, recipe.learnableThresholds, recipe.blockActivation], ['ste', false, 'prelu']);
  const expected: Record<string, Partial<ReturnType<typeof resolveModelConfig>>> = {
    'approx-sign': { signGradient: 'approx-sign' },
    rsign: { learnableThresholds: true },
    rprelu: { blockActivation: 'rprelu' },
  };
  for (const [name, option] of Object.entries(expected)) {
    const v = ABLATION_VARIANTS.find((x) => x.name === name)!;
    assert.equal(v.addition, true, `${name} is an addition`);
    assert.deepEqual(await model(v.flags), { ...recipe, ...option }, name);
  }
  await assert.rejects(checkTrainFlags(['--sign-gradient', 'bireal']), /sign-gradient/);
  // Impossible combinations of model switches stop at the flags, before data loads (a variant
  // given them fails before any run starts).
  await assert.rejects(checkTrainFlags(['--learnable-thresholds', '--downsample', 'binary']), /the model switches: learnableThresholds is not supported with downsample 'binary'/);

});

test('the table: n, mean ± sd, Δ with a paired interval (over the shared seeds where the finished seeds differ), one seed without one, unfinished runs counted', () => {
  const plan = planAblation({ out: '/tmp/abl', seeds: [0, 1, 2], variants: ['double-skip', 'weight-decay', 'cosine', 'sgd'] });
  const acc: Record<string, (number | null)[]> = {
    recipe: [0.912, 0.905, 0.918],
    'double-skip': [0.9, 0.895, 0.905],
    'weight-decay': [0.91, null, null],
    cosine: [null, null, null],
    sgd: [null, 0.85, 0.86],
  };
  const runs: AblationRunResult[] = plan.runs.map((r) => {
    const a = acc[r.variant]![r.seed]!;
    return { variant: r.variant, seed: r.seed, status: a === null ? 'pending' : 'finished', accuracy: a, loss: a === null ? null : 1 - a, seconds: a === null ? null : 60 + r.seed * 30, dir: `runs/${r.variant}/seed${r.seed}`, report: a === null ? null : `runs/${r.variant}/seed${r.seed}/report.html`, reused: false };
  });
  const result = summarizeAblation(plan, runs, { command: 'bnn ablate --out /tmp/abl', trainArgs: [] });
  const row = (name: string) => result.variants.find((v) => v.name === name)!;
  assert.equal(result.complete, false);
  assert.deepEqual([row('recipe').n, row('double-skip').n, row('weight-decay').n, row('cosine').n, row('sgd').n], [3, 3, 1, 0, 2]);
  const ds = row('double-skip');
  // The same three seeds on both sides: paired, seed by seed.
  const expected = pairedInterval([0.9, 0.895, 0.905], [0.912, 0.905, 0.918])!;
  assert.equal(expected.df, 2);
  assert.deepEqual(ds.delta, { difference: ds.mean! - row('recipe').mean!, low: expected.low, high: expected.high, df: expected.df, method: 'paired', pairs: 3 });
  assert.ok(expected.high - expected.low < welchInterval([0.9, 0.895, 0.905], [0.912, 0.905, 0.918])!.high - welchInterval([0.9, 0.895, 0.905], [0.912, 0.905, 0.918])!.low, 'these seeds move together: pairing narrows the interval');
  // Seeds 1 and 2 against 0, 1 and 2: paired on the two seeds both finished, the recipe's seed 0 left out.
  const shared = pairedInterval([0.85, 0.86], [0.905, 0.918])!;
  assert.deepEqual(row('sgd').delta, { difference: shared.difference, low: shared.low, high: shared.high, df: 1, method: 'paired-shared', pairs: 2, unpaired: 1 });
  close(ds.meanSeconds!, 90, 1e-12, 'mean seconds');
  assert.deepEqual(row('weight-decay').delta, { difference: 0.91 - row('recipe').mean!, low: null, high: null, df: null, method: null });
  assert.equal(row('weight-decay').sd, null);
  assert.deepEqual([row('cosine').mean, row('cosine').delta, row('cosine').meanSeconds], [null, null, null]);
  const md = renderAblationMarkdown(result).split('\n');
  assert.equal(md[2], '| recipe | the full recipe (baseline) | 91.17 ± 0.65% | — | 1.5 | 3 |');
  assert.equal(md[3], `| double-skip | ${row('double-skip').change} | 90.00 ± 0.50% | -1.17 pp [${(100 * expected.low).toFixed(2)}, ${expected.high > 0 ? '+' : '-'}${Math.abs(100 * expected.high).toFixed(2)}] | 1.5 | 3 |`);
  assert.match(md[4]!, /\| 91\.00% \(1 seed\) \| -0\.17 pp \(1 seed: no CI\) \| 1\.0 \| 1 of 3 \|$/);
  assert.match(md[5]!, /\| — \| — \| — \| 0 of 3 \|$/);
  assert.match(md[6]!, /\| 85\.50 ± 0\.71% \| -5\.65 pp \[-?\d+\.\d\d, [+-]\d+\.\d\d\] \(paired on 2 shared seeds, 1 unpaired run left out\) \| 1\.8 \| 2 of 3 \|$/);
  assert.ok(md.some((l) => l.includes('**Partial: 9 of 15 runs finished**')));
  const html = renderAblationHtml(result, 'abl <test>');
  assert.match(html, /<h1>abl &lt;test&gt;<\/h1>/);
  assert.match(html, /<tr data-variant="double-skip" data-n="3" data-mean="0\.9000000000000001|<tr data-variant="double-skip" data-n="3" data-mean="0\.9"/);
  assert.equal(html.match(/<a href="runs\//g)?.length, 9, 'a link for each finished run');
});

/** Runs of `plan` with these accuracies by variant, one per seed in plan order (null: still pending). */
function runsWith(plan: ReturnType<typeof planAblation>, acc: Record<string, (number | null)[]>): AblationRunResult[] {
  return plan.runs.map((r) => {
    const a = acc[r.variant]![plan.seeds.indexOf(r.seed)]!;
    return { variant: r.variant, seed: r.seed, status: a === null ? 'pending' : 'finished', accuracy: a, loss: a === null ? null : 1 - a, seconds: a === null ? null : 60, dir: `runs/${r.variant}/seed${r.seed}`, report: null, reused: false };
  });
}

// Seeds 1-4; the recipe finished all four, the variants some (the brief's case: seeds 1, 2 and 3
// against 1, 2, 3 and 4), and a recipe that finished only seeds 1 and 2.
const SHARED_SEEDS = [1, 2, 3, 4];
const SHARED_ACC: Record<string, (number | null)[]> = {
  recipe: [0.912, 0.905, 0.918, 0.909],
  'double-skip': [0.9, 0.897, 0.905, null],
  sgd: [null, 0.85, null, 0.86],
  cosine: [0.915, 0.904, 0.921, 0.913],
};
const PARTIAL_ACC: Record<string, (number | null)[]> = {
  recipe: [0.912, 0.905, null, null],
  'double-skip': [null, 0.9, 0.897, 0.905],
  sgd: [null, null, 0.85, 0.86],
  cosine: [null, null, null, null],
};

test('Δ pairs on the seeds both sides finished, leaving the unpaired runs out; Welch only below two shared seeds', () => {
  const plan = planAblation({ out: '/tmp/abl', seeds: SHARED_SEEDS, variants: ['double-skip', 'sgd', 'cosine'] });
  const result = summarizeAblation(plan, runsWith(plan, SHARED_ACC), { command: 'bnn ablate', trainArgs: [] });
  const row = (name: string) => result.variants.find((v) => v.name === name)!;
  // Seeds 1, 2, 3 against 1, 2, 3, 4: three pairs, the recipe's seed 4 left out of Δ and its interval.
  const three = pairedInterval([0.9, 0.897, 0.905], [0.912, 0.905, 0.918])!;
  assert.deepEqual(row('double-skip').delta, { difference: three.difference, low: three.low, high: three.high, df: 2, method: 'paired-shared', pairs: 3, unpaired: 1 });
  close(three.difference, (0.9 + 0.897 + 0.905 - 0.912 - 0.905 - 0.918) / 3, 1e-15, 'the mean difference over the shared seeds');
  // Seeds 2 and 4: two pairs, the recipe's seeds 1 and 3 left out.
  const two = pairedInterval([0.85, 0.86], [0.905, 0.909])!;
  assert.deepEqual(row('sgd').delta, { difference: two.difference, low: two.low, high: two.high, df: 1, method: 'paired-shared', pairs: 2, unpaired: 2 });
  assert.equal(row('cosine').delta!.method, 'paired');
  assert.equal(row('cosine').delta!.pairs, 4);
  assert.equal(row('cosine').delta!.unpaired, undefined);
  const md = renderAblationMarkdown(result);
  assert.ok(md.includes(`| 90.07 ± 0.40% | -1.10 pp [${(100 * three.low).toFixed(2)}, ${three.high >= 0 ? '+' : '-'}${Math.abs(100 * three.high).toFixed(2)}] (paired on 3 shared seeds, 1 unpaired run left out) |`), md);
  assert.ok(md.includes('(paired on 2 shared seeds, 2 unpaired runs left out)'), md);
  assert.ok(renderAblationHtml(result, 'abl').includes('(paired on 3 shared seeds, 1 unpaired run left out)'));

  // A recipe that finished seeds 1 and 2: one seed shared (double-skip: 2, 3, 4) or none (sgd: 3,
  // 4), so Welch's interval over every finished run.
  const partial = summarizeAblation(plan, runsWith(plan, PARTIAL_ACC), { command: 'bnn ablate', trainArgs: [] });
  const prow = (name: string) => partial.variants.find((v) => v.name === name)!;
  for (const [name, a] of [['double-skip', [0.9, 0.897, 0.905]], ['sgd', [0.85, 0.86]]] as const) {
    const w = welchInterval(a, [0.912, 0.905])!;
    assert.deepEqual(prow(name).delta, { difference: prow(name).mean! - prow('recipe').mean!, low: w.low, high: w.high, df: w.df, method: 'welch' }, name);
  }
  assert.match(renderAblationMarkdown(partial), /\| -?\d+\.\d\d pp \[-?\d+\.\d\d, [+-]\d+\.\d\d\] \(Welch\) \|/);
});

test('Δ over the shared seeds agrees with scipy computed now', { skip: scipy ? false : 'scipy is not importable' }, () => {
  // scipy is given every finished run and finds the shared seeds itself: an independent computation.
  const py = [
    'import json, sys',
    'from scipy import stats',
    'd = json.load(sys.stdin)',
    'recipe = {s: a for s, a in zip(d["seeds"], d["acc"]["recipe"]) if a is not None}',
    'out = {}',
    'for name in ["double-skip", "sgd"]:',
    '    mine = {s: a for s, a in zip(d["seeds"], d["acc"][name]) if a is not None}',
    '    common = sorted(set(mine) & set(recipe))',
    '    a = [mine[s] for s in common]',
    '    b = [recipe[s] for s in common]',
    '    r = stats.ttest_rel(a, b)',
    '    ci = r.confidence_interval(0.95)',
    '    out[name] = [sum(x - y for x, y in zip(a, b)) / len(a), float(ci.low), float(ci.high), float(r.df), len(common)]',
    'print(json.dumps(out))',
  ].join('\n');
  const r = spawnSync('python3', ['-c', py], { input: JSON.stringify({ seeds: SHARED_SEEDS, acc: SHARED_ACC }), encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const expected = JSON.parse(r.stdout) as Record<string, [number, number, number, number, number]>;
  const plan = planAblation({ out: '/tmp/abl', seeds: SHARED_SEEDS, variants: ['double-skip', 'sgd', 'cosine'] });
  const result = summarizeAblation(plan, runsWith(plan, SHARED_ACC), { command: 'bnn ablate', trainArgs: [] });
  for (const name of ['double-skip', 'sgd']) {
    const d = result.variants.find((v) => v.name === name)!.delta!;
    const [difference, low, high, df, pairs] = expected[name]!;
    close(d.difference, difference, 1e-12, `${name} difference`);
    close(d.low!, low, 1e-9, `${name} low`);
    close(d.high!, high, 1e-9, `${name} high`);
    assert.equal(d.df, df, `${name} df`);
    assert.equal(d.pairs, pairs, `${name} pairs`);
  }
});

test('runAblation checks every variant with bnn train’s own parser before anything runs', async () => {
  const out = path.join(tempDir('bnn-ablate-refused'), 'abl');
  await assert.rejects(
    runAblation({ out, seeds: [0], variants: ['double-skip'], trainArgs: ['--width', '4'], variantFlags: { 'double-skip': ['--frobnicate', '1'] } }),
    (e: Error & { code?: string }) => e.code === 'BNN_INVALID_ARGUMENT' && /refuses the flags of one variant, so nothing ran:\ndouble-skip \(--no-double-skip --frobnicate 1\): Unknown argument/.test(e.message),
  );
  await assert.rejects(runAblation({ out, seeds: [0], variants: [], trainArgs: ['--epochs1', '0'] }), /recipe: stage1\.epochs must be/);
  // An addition impossible with the common flags is refused before anything runs, too.
  await assert.rejects(
    runAblation({ out, seeds: [0], variants: [], additions: ['rsign'], trainArgs: ['--downsample', 'binary'] }),
    /rsign \(--learnable-thresholds\): the model switches: learnableThresholds is not supported with downsample 'binary'/,
  );
  assert.equal(fs.existsSync(out), false, 'nothing written');
});

function fakeData(): string {
  const dir = tempDir('bnn-ablate-data');
  writeIdxSplit(dir, 'train', randomImageSet(300, 1, 28, 28, 10, 1), true);
  writeIdxSplit(dir, 'test', randomImageSet(64, 1, 28, 28, 10, 2), true);
  return dir;
}

/** Every file below `dir` with its modification time and contents. */
function snapshot(dir: string): Map<string, string> {
  const files = new Map<string, string>();
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else files.set(path.relative(dir, p), `${fs.statSync(p).mtimeMs}:${fs.readFileSync(p).toString('base64')}`);
    }
  };
  walk(dir);
  return files;
}

const readResult = (out: string): AblationResult => JSON.parse(fs.readFileSync(path.join(out, 'ablation.json'), 'utf8')) as AblationResult;

test('bnn ablate: a tiny ablation, interrupted in its second run, continues where it stopped', { timeout: 240_000 }, async () => {
  const data = fakeData();
  const out = path.join(tempDir('bnn-ablate-run'), 'abl');
  const train = ['--data', data, '--epochs1', '1', '--epochs2', '1', '--width', '4', '--batch-size', '32', '--no-tensorboard'];
  const args = ['ablate', '--out', out, '--seeds', '2', '--variants', 'double-skip,weight-decay', '--add', 'label-smoothing', '--', ...train];

  // First invocation: Ctrl-C once the second run has started training (a moment after its first
  // line, which bnn train writes just before it installs its Ctrl-C handler).
  const child = spawn(process.execPath, ['--import', 'tsx', BNN, ...args], { cwd: packageRoot });
  let stderr = '';
  let sent = false;
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
    const second = stderr.indexOf('run 2/8: double-skip, seed 0');
    if (!sent && second >= 0 && stderr.indexOf(' -> ', stderr.indexOf('\n', second)) >= 0) {
      sent = true;
      setTimeout(() => child.kill('SIGINT'), 300);
    }
  });
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  assert.equal(code, 130, stderr);
  assert.match(stderr, /checkpoint saved/);
  assert.match(stderr, /stopped with 1 of 8 runs finished .*; run the same command again to continue/);
  const partial = readResult(out);
  assert.equal(partial.complete, false);
  assert.deepEqual(partial.runs.map((r) => r.status), ['finished', 'interrupted', 'pending', 'pending', 'pending', 'pending', 'pending', 'pending']);
  assert.match(fs.readFileSync(path.join(out, 'ablation.md'), 'utf8'), /\*\*Partial: 1 of 8 runs finished\*\*/);
  assert.match(fs.readFileSync(path.join(out, 'ablation.html'), 'utf8'), /data-status="partial"/);
  const recipeRun = path.join(out, 'runs', 'recipe', 'seed0');
  const before = snapshot(recipeRun);

  // Second: the finished run is reused untouched, the interrupted one resumes, the rest run.
  const again = bnn(args);
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stderr, /reusing 1 finished run, 7 to run/);
  assert.match(again.stderr, /run 1\/7: double-skip, seed 0 \(continuing its checkpoint\)/);
  assert.deepEqual(snapshot(recipeRun), before, 'the reused run is untouched');

  const r = readResult(out);
  assert.equal(r.format, 'bnn-ablation/1');
  assert.equal(r.complete, true);
  assert.deepEqual(r.seeds, [0, 1]);
  assert.deepEqual(r.variants.map((v) => [v.name, v.n, v.planned, v.addition]), [['recipe', 2, 2, false], ['double-skip', 2, 2, false], ['weight-decay', 2, 2, false], ['label-smoothing', 2, 2, true]]);
  assert.equal(r.runs.length, 8);
  for (const run of r.runs) {
    assert.equal(run.status, 'finished');
    assert.ok(run.accuracy! >= 0 && run.accuracy! <= 1 && Number.isFinite(run.loss) && run.seconds! > 0, JSON.stringify(run));
    assert.equal(run.dir, `runs/${run.variant}/seed${run.seed}`);
    assert.equal(run.report, `${run.dir}/report.html`);
    assert.ok(fs.existsSync(path.join(out, run.report)));
    const final = fs.readFileSync(path.join(out, run.dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string; testAccuracy?: number }).find((l) => l.type === 'final')!;
    assert.equal(run.accuracy, final.testAccuracy, 'the accuracy is the run’s own final record');
  }
  assert.deepEqual(r.runs.filter((x) => x.reused).map((x) => x.dir), ['runs/recipe/seed0']);
  for (const v of r.variants) {
    const accs = r.runs.filter((x) => x.variant === v.name).map((x) => x.accuracy!);
    close(v.mean!, (accs[0]! + accs[1]!) / 2, 1e-12, `${v.name} mean`);
    assert.ok(v.sd !== null && v.meanSeconds! > 0);
    if (v.name === 'recipe') assert.equal(v.delta, null);
    else {
      assert.ok(v.delta !== null && v.delta.low !== null && v.delta.high !== null);
      assert.ok(v.delta.low <= v.delta.difference && v.delta.difference <= v.delta.high);
    }
  }
  // The weight-decay runs trained with 1e-5 in both stages.
  const wd = JSON.parse(fs.readFileSync(path.join(out, 'runs', 'weight-decay', 'seed1', 'config.json'), 'utf8')) as { stage1: { weightDecay: number }; stage2: { weightDecay: number } };
  assert.deepEqual([wd.stage1.weightDecay, wd.stage2.weightDecay], [1e-5, 1e-5]);

  const md = fs.readFileSync(path.join(out, 'ablation.md'), 'utf8');
  const rows = md.split('\n').filter((l) => l.startsWith('|'));
  assert.equal(rows[0], '| variant | what changes | accuracy (mean ± sd) | Δ vs recipe [95% CI] | min per run | runs |');
  assert.deepEqual(rows.slice(2).map((l) => l.split('|')[1]!.trim()), ['recipe', 'double-skip', 'weight-decay', 'label-smoothing']);
  assert.match(rows[2]!, /^\| recipe \| .* \| \d+\.\d\d ± \d+\.\d\d% \| — \| \d+\.\d \| 2 \|$/);
  for (const row of rows.slice(3)) assert.match(row, /\| \d+\.\d\d ± \d+\.\d\d% \| [+-]\d+\.\d\d pp \[[+-]\d+\.\d\d, [+-]\d+\.\d\d\] \| \d+\.\d \| 2 \|$/);
  assert.ok(md.includes(`bnn ablate --out ${out} --seeds 0,1 --variants double-skip,weight-decay --add label-smoothing -- ${train.join(' ')}`), md);
  assert.doesNotMatch(md, /Partial/);
  const html = fs.readFileSync(path.join(out, 'ablation.html'), 'utf8');
  assert.match(html, /data-status="complete"/);
  assert.equal(html.match(/<tr data-variant="[^"]+" data-seed=/g)?.length, 8);
  assert.match(html, /<a href="runs\/weight-decay\/seed1\/report\.html">/);
  assert.doesNotMatch(html, /<script|https?:\/\//);
  assert.match(again.stdout, /^\| variant \|/, 'the table on stdout');

  // A run recorded by an older bnn-torch, before some flags existed, counts those as their
  // defaults and is reused.
  const recipeConfig = path.join(out, 'runs', 'recipe', 'seed0', 'config.json');
  const record = JSON.parse(fs.readFileSync(recipeConfig, 'utf8')) as { cli: Record<string, unknown> };
  assert.equal(record.cli.signGradient, 'ste');
  delete record.cli.signGradient;
  delete record.cli.learnableThresholds;
  fs.writeFileSync(recipeConfig, JSON.stringify(record, null, 2));
  // A third time there is nothing to run; other train flags in the same folder are refused.
  const all = snapshot(path.join(out, 'runs'));
  const third = bnn(args);
  assert.equal(third.status, 0, third.stderr);
  assert.match(third.stderr, /reusing 8 finished runs, 0 to run/);
  assert.ok(readResult(out).runs.every((x) => x.reused));
  assert.deepEqual(snapshot(path.join(out, 'runs')), all);
  const other = bnn(['ablate', '--out', out, '--seeds', '2', '--variants', 'double-skip', '--', ...train.map((a) => (a === '4' ? '8' : a))]);
  assert.equal(other.status, 2, other.stderr);
  assert.match(other.stderr, /holds runs of another ablation; use another --out, or remove those runs:\n\s+runs\/recipe\/seed0 was trained with other flags \(width: 4 there, 8 now\)/);
});

test('bnn ablate --jobs 2: two runs at once, the cores shared out, each line prefixed with its run', { timeout: 240_000 }, async () => {
  const data = fakeData();
  const out = path.join(tempDir('bnn-ablate-jobs'), 'abl');
  const train = ['--data', data, '--epochs1', '1', '--epochs2', '1', '--width', '4', '--batch-size', '32', '--no-tensorboard'];
  const r = await new Promise<{ code: number | null; stderr: string; stdout: string }>((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', BNN, 'ablate', '--out', out, '--seeds', '1', '--variants', 'double-skip', '--jobs', '2', '--threads', '2', '--', ...train], { cwd: packageRoot });
    let stderr = '';
    let stdout = '';
    child.stderr.on('data', (d: Buffer) => void (stderr += d.toString()));
    child.stdout.on('data', (d: Buffer) => void (stdout += d.toString()));
    child.on('close', (code) => resolve({ code, stderr, stdout }));
  });
  assert.equal(r.code, 0, r.stderr);
  // Both runs start before either finishes.
  const firstDone = r.stderr.search(/(recipe|double-skip), seed 0: \d+\.\d\d%/);
  assert.ok(firstDone > 0, r.stderr);
  assert.ok(r.stderr.indexOf('run 1/2: ') >= 0 && r.stderr.indexOf('run 2/2: ') >= 0 && r.stderr.indexOf('run 2/2: ') < firstDone, `runs overlap:\n${r.stderr}`);
  // Every line of a run is prefixed with its name; the two threads are split one each.
  for (const name of ['recipe', 'double-skip']) assert.match(r.stderr, new RegExp(`^\\[${name} seed 0\\] stage 2 epoch 1/1: `, 'm'));
  const result = readResult(out);
  assert.equal(result.complete, true);
  for (const run of result.runs) {
    assert.equal(run.status, 'finished');
    const lines = fs.readFileSync(path.join(out, run.dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string; threads?: number });
    assert.equal(lines.find((l) => l.type === 'final')!.threads, 1, `${run.dir} trained on one of the two threads`);
  }
});

test('bnn ablate: bad options exit 2 with a one-line reason before anything runs', () => {
  const out = path.join(tempDir('bnn-ablate-bad'), 'abl');
  const cases: [string[], RegExp][] = [
    [['ablate', '--', '--width', '4'], /Missing required argument: out/],
    [['ablate', '--out', out, '--seeds', 'x'], /--seeds must be a count \(3\) or a comma list/],
    [['ablate', '--out', out, '--variants', 'nope'], /unknown ablation variant 'nope'/],
    [['ablate', '--out', out, '--variants', 'label-smoothing'], /is an addition, not a trick of the recipe: give it with --add/],
    [['ablate', '--out', out, '--variants', 'double-skip', '--', '--seed', '3'], /--seed is set by the ablation/],
    [['ablate', '--out', out, '--variants', 'double-skip', '--', '--lr1', '-1'], /recipe: stage1: baseLr must be a positive number, got -1 \(--lr1\)/],
    [['ablate', '--out', out, '--variants', 'weight-decay', '--variant-flags', 'weight-decay=--bogus 1'], /refuses the flags of one variant.*\n\s*weight-decay \(.*--bogus 1\): Unknown argument: bogus/],
    [['ablate', '--out', out, '--variant-flags', 'nonsense'], /--variant-flags takes 'name=--flag value \.\.\.'/],
    [['ablate', '--out', out, '--jobs', '0', '--variants', 'double-skip'], /jobs must be a whole number >= 1/],
    [['ablate', '--out', out, 'width'], /bnn train flags go after --/],
  ];
  for (const [args, msg] of cases) {
    const r = bnn(args);
    assert.equal(r.status, 2, `${args.join(' ')}: exit ${r.status}, ${r.stderr}`);
    assert.match(r.stderr, msg, args.join(' '));
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
  assert.equal(fs.existsSync(out), false, 'nothing written');
  const list = bnn(['ablate', '--list']);
  assert.equal(list.status, 0, list.stderr);
  for (const v of ABLATION_VARIANTS) assert.match(list.stdout, new RegExp(`^${v.name} `, 'm'));
});
