// `bnn ablate`: the recipe and the recipe without each trick, over seeds, as a table.
import type { Argv, ArgumentsCamelCase } from 'yargs';

import { isBnnError } from '../../errors.js';
import { ABLATION_VARIANTS, renderAblationMarkdown, runAblation } from '../../ablate/index.js';
import { UsageError } from '../common.js';

interface AblateArgs {
  out?: string;
  seeds: string;
  variants?: string;
  add?: string;
  variantFlags?: string[];
  jobs: number;
  threads?: number;
  list: boolean;
  train?: string[];
}

export const command = 'ablate [train..]';
export const describe = 'Measure each trick: the recipe, and the recipe with each trick turned off, over seeds (ablation.md, .json, .html)';

const tricks = ABLATION_VARIANTS.filter((v) => !v.addition && v.name !== 'recipe').map((v) => v.name);
const additions = ABLATION_VARIANTS.filter((v) => v.addition).map((v) => v.name);

export function builder(y: Argv): Argv<AblateArgs> {
  return y
    .usage('bnn ablate --out <dir> [--seeds N] [--variants a,b] [--add x] -- <bnn train flags>')
    .positional('train', { type: 'string', array: true, describe: 'bnn train flags every run gets, after --: --data, --width, --epochs-scale, ...' })
    .option('out', { type: 'string', describe: 'the ablation folder: runs/<variant>/seed<k>, ablation.json, ablation.md, ablation.html' })
    .option('seeds', { type: 'string', default: '3', describe: 'N (seeds 0..N-1) or a comma list (e.g. 0,1,2; one seed: 7,)' })
    .option('variants', { type: 'string', describe: `tricks to turn off, comma-separated, or 'none' (the recipe always runs; default all: ${tricks.join(', ')})` })
    .option('add', { type: 'string', describe: `additions to try on top of the recipe, comma-separated: ${additions.join(', ')}` })
    .option('variant-flags', {
      type: 'array',
      string: true,
      describe: "replace or add flags of one variant: 'name=--flag value ...' (e.g. 'sgd=--lr1 0.05 --lr2 0.005'); repeatable",
    })
    .option('jobs', { type: 'number', default: 1, describe: 'runs at a time, each with its share of the CPU threads' })
    .option('threads', { type: 'number', describe: 'CPU threads shared among the jobs (default: all cores)' })
    .option('list', { type: 'boolean', default: false, describe: 'list the variants and their flags, then exit' })
    .example('bnn ablate --out runs/abl --seeds 3 -- --width 16 --epochs-scale 0.5', 'every trick, 3 seeds each, on Fashion-MNIST')
    .example('bnn ablate --out runs/abl --variants double-skip --add label-smoothing -- --epochs1 2 --epochs2 2', 'two rows and the recipe') as unknown as Argv<AblateArgs>;
}

// 'none' is what ablationCommand writes for an empty --variants (the recipe alone), so the command
// it prints runs again as printed.
const names = (value: string | undefined): string[] | undefined =>
  value === undefined
    ? undefined
    : value.trim() === 'none'
      ? []
      : value
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean);

/** `--seeds 3` is seeds 0, 1, 2; `--seeds 3,5` (or `7,` for one) lists them. */
function parseSeeds(text: string): number[] {
  const t = String(text).trim();
  const bad = (): never => {
    throw new UsageError(`--seeds must be a count (3) or a comma list of seeds (0,1,2), got '${text}'`, 2);
  };
  if (!t.includes(',')) {
    const n = Number(t);
    if (!(Number.isInteger(n) && n >= 1 && n <= 1000) || !/^\d+$/.test(t)) bad();
    return Array.from({ length: n }, (_, i) => i);
  }
  const parts = t.split(',').map((s) => s.trim()).filter(Boolean);
  if (parts.length === 0 || parts.some((p) => !/^\d+$/.test(p))) bad();
  return parts.map(Number);
}

function parseVariantFlags(values: string[] | undefined): Record<string, string[]> | undefined {
  if (values === undefined) return undefined;
  const out: Record<string, string[]> = {};
  for (const v of values) {
    const m = /^\s*([a-z0-9-]+)\s*=(.*)$/.exec(v);
    if (!m) throw new UsageError(`--variant-flags takes 'name=--flag value ...', got '${v}'`, 2);
    out[m[1]!] = [...(out[m[1]!] ?? []), ...m[2]!.trim().split(/\s+/).filter(Boolean)];
  }
  return out;
}

export async function handler(a: ArgumentsCamelCase<AblateArgs>): Promise<void> {
  if (a.list) {
    for (const v of ABLATION_VARIANTS) process.stdout.write(`${v.name.padEnd(20)} ${(v.flags.join(' ') || '(none)').padEnd(58)} ${v.addition ? '[--add] ' : ''}${v.change}\n`);
    return;
  }
  if (a.out === undefined) throw new UsageError('Missing required argument: out (the ablation folder)', 2);
  if (a.train !== undefined && a.train.length > 0) throw new UsageError(`bnn train flags go after --: bnn ablate --out ${a.out} -- ${a.train.join(' ')}`, 2);
  // Taken as typed: yargs would turn the values after -- into numbers.
  const dashes = process.argv.indexOf('--');
  const trainArgs = dashes >= 0 ? process.argv.slice(dashes + 1) : [];
  const out = a.out;
  const gentle = new AbortController();
  const hard = new AbortController();
  let interrupts = 0;
  const onInterrupt = (): void => {
    if (++interrupts === 1) {
      process.stderr.write('bnn ablate: interrupt: the running training saves a checkpoint and stops (Ctrl-C again to quit at once)\n');
      gentle.abort();
    } else hard.abort();
  };
  process.on('SIGINT', onInterrupt);
  process.on('SIGTERM', onInterrupt);
  process.on('SIGHUP', onInterrupt);
  try {
    const outcome = await runAblation({
      out,
      seeds: parseSeeds(a.seeds),
      ...(a.variants !== undefined ? { variants: names(a.variants)! } : {}),
      ...(a.add !== undefined ? { additions: names(a.add)! } : {}),
      ...(a.variantFlags !== undefined ? { variantFlags: parseVariantFlags(a.variantFlags)! } : {}),
      trainArgs,
      jobs: a.jobs,
      ...(a.threads !== undefined ? { threads: a.threads } : {}),
      signal: gentle.signal,
      killSignal: hard.signal,
      onMessage: (text) => process.stderr.write(`bnn ablate: ${text}\n`),
    });
    const { result, files } = outcome;
    const finished = result.runs.filter((r) => r.status === 'finished').length;
    if (outcome.interrupted) {
      process.stderr.write(`bnn ablate: stopped with ${finished} of ${result.runs.length} runs finished (table so far: ${files.markdown}); run the same command again to continue:\n  ${result.command}\n`);
      process.exitCode = 130;
      return;
    }
    process.stdout.write(`${renderAblationMarkdown(result).split('\n\n')[0]}\n`); // the table
    process.stderr.write(`bnn ablate: ${files.markdown}\n  ${files.json}\n  ${files.html}\n`);
    if (outcome.failed.length > 0) {
      throw new UsageError(`${outcome.failed.length} run${outcome.failed.length === 1 ? '' : 's'} failed: ${outcome.failed.map((r) => `${r.dir} (${r.error})`).join(', ')}; run the same command again to retry them`);
    }
  } catch (e) {
    // The library's refusals are the user's flags: usage errors, exit 2.
    if (isBnnError(e) && e.code === 'BNN_INVALID_ARGUMENT') throw new UsageError(e.message, 2);
    throw e;
  } finally {
    process.off('SIGINT', onInterrupt);
    process.off('SIGTERM', onInterrupt);
    process.off('SIGHUP', onInterrupt);
  }
}
