// Running an ablation: every (variant, seed) as a child `bnn train` process, one after another (or
// a few at a time), with ablation.json/.md/.html rewritten after each run. The run folders are the
// ablation's memory: a run whose metrics.jsonl has its final record is reused, one with a
// config.json but no final record continues with `bnn train --resume`.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { rangeError } from '../errors.js';
import { writeFileAtomicSync } from '../io/atomic-file.js';
import { parseMetrics } from '../report/run-record.js';
import { REPORT_FILE_NAME, writeReport } from '../report/write.js';
import { renderAblationHtml, renderAblationMarkdown } from './render.js';
import { relativeRunPath, summarizeAblation, type AblationResult, type AblationRunResult } from './result.js';
import { planAblation, type AblationPlanOptions, type PlannedRun } from './variants.js';

/** Options of {@link runAblation}. */
export interface AblationOptions extends AblationPlanOptions {
  /** Runs at a time (default 1). With more, each run gets its share of `threads`. */
  jobs?: number;
  /** CPU threads shared among the jobs (default: the machine's cores); unused with one job. */
  threads?: number;
  /** Aborting it stops the ablation: the running children save a checkpoint and exit (Ctrl-C). */
  signal?: AbortSignal;
  /** Aborting it kills the running children at once (a second Ctrl-C). */
  killSignal?: AbortSignal;
  /**
   * Where the children's output goes: `inherit` (this process's terminal; default with one job),
   * `prefixed` (each line prefixed with its run; default with several) or `silent`.
   */
  childOutput?: 'inherit' | 'prefixed' | 'silent';
  /** Progress messages (a run starts, ends, is reused). */
  onMessage?: (text: string) => void;
  /**
   * The command that starts `bnn train` (the `train` word and flags are appended). Default: this
   * package's `bnn` entry on this Node, with this process's module loaders (tsx in development).
   */
  trainCommand?: readonly string[];
}

/** What {@link runAblation} resolves with: the table as written to ablation.json, and how it ended. */
export interface AblationOutcome {
  result: AblationResult;
  /** Stopped by `signal` before every run finished. */
  interrupted: boolean;
  /** The runs that failed (also in `result.runs` with status `failed`). */
  failed: AblationRunResult[];
  /** Paths of ablation.json, ablation.md and ablation.html. */
  files: { json: string; markdown: string; html: string };
}

/** What a run folder holds: a finished run (its final record), a started one (config.json), or nothing yet. */
type RunState = { kind: 'finished'; accuracy: number; loss: number | null; seconds: number | null } | { kind: 'started' } | { kind: 'new' };

function runState(dir: string): RunState {
  const metrics = path.join(dir, 'metrics.jsonl');
  if (fs.existsSync(metrics)) {
    // The final record is the last thing `bnn train` writes to metrics.jsonl (before the report),
    // and the file is replaced atomically: present means the run ended and was evaluated.
    const final = parseMetrics(fs.readFileSync(metrics, 'utf8')).final;
    if (final !== undefined && Number.isFinite(final.testAccuracy)) {
      return { kind: 'finished', accuracy: final.testAccuracy, loss: final.testLoss ?? null, seconds: final.totalSeconds ?? null };
    }
  }
  return fs.existsSync(path.join(dir, 'config.json')) ? { kind: 'started' } : { kind: 'new' };
}

/**
 * Differences between the flags a run folder was trained with and the ones planned for it. A flag
 * the folder's record lacks (written by an older bnn-torch, before the flag existed) counts as its
 * default, `defaults` being what `bnn train` records for no flags at all.
 */
function flagDifferences(dir: string, planned: Partial<Record<string, unknown>>, defaults: Partial<Record<string, unknown>>): string[] {
  let saved: Record<string, unknown> | undefined;
  try {
    saved = (JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as { cli?: Record<string, unknown> }).cli;
  } catch {
    return ['its config.json cannot be read'];
  }
  if (saved === undefined) return ['its config.json has no record of its flags'];
  const norm = (v: unknown): string => JSON.stringify(v ?? null);
  const was = (k: string): unknown => (Object.hasOwn(saved, k) ? saved[k] : defaults[k]);
  const keys = [...new Set([...Object.keys(saved), ...Object.keys(planned)])].sort();
  return keys.filter((k) => norm(was(k)) !== norm(planned[k])).map((k) => `${k}: ${norm(was(k))} there, ${norm(planned[k])} now`);
}

/** A token as a POSIX shell reads it back. */
function shellQuote(token: string): string {
  return /^[A-Za-z0-9_./:=,@+%-]+$/.test(token) ? token : `'${token.replace(/'/g, `'\\''`)}'`;
}

/** The `bnn ablate` command line equivalent to these options (what ablation.md shows). */
export function ablationCommand(o: AblationPlanOptions & { jobs?: number }): string {
  const parts = ['bnn', 'ablate', '--out', o.out, '--seeds', o.seeds.length === 1 ? `${o.seeds[0]},` : o.seeds.join(',')];
  if (o.variants !== undefined) parts.push('--variants', o.variants.join(',') || 'none');
  if (o.additions?.length) parts.push('--add', o.additions.join(','));
  for (const [name, flags] of Object.entries(o.variantFlags ?? {})) parts.push('--variant-flags', `${name}=${flags.join(' ')}`);
  if (o.jobs !== undefined && o.jobs !== 1) parts.push('--jobs', String(o.jobs));
  if (o.trainArgs?.length) parts.push('--', ...o.trainArgs);
  return parts.map(shellQuote).join(' ');
}

/** Node's flags that load modules (tsx in development), which the children need as well. */
function loaderArgs(execArgv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < execArgv.length; i++) {
    const a = execArgv[i]!;
    if (/^(--import|--require|-r|--loader|--experimental-loader)$/.test(a) && i + 1 < execArgv.length) out.push(a, execArgv[++i]!);
    else if (/^(--import|--require|--loader|--experimental-loader)=/.test(a)) out.push(a);
  }
  return out;
}

function defaultTrainCommand(): string[] {
  // This file is src/ablate/run.ts under tsx and dist/ablate/run.js when built: bnn is beside it.
  const self = fileURLToPath(import.meta.url);
  const entry = path.join(path.dirname(self), '..', 'cli', `bnn${path.extname(self)}`);
  return [process.execPath, ...loaderArgs(process.execArgv), entry];
}

/**
 * Runs an ablation: the recipe and each variant, once per seed, each as a child `bnn train`
 * process with `--out <out>/runs/<variant>/seed<k>`, and writes `ablation.json`, `ablation.md` and
 * `ablation.html` into `out` after every finished run (atomically, so a partial ablation is always
 * readable).
 *
 * Before the first run, every run's flags are parsed and checked as `bnn train` would check them,
 * and run folders left by an earlier invocation must have been trained with the same flags. Then a
 * finished run is reused as it is, a started one continues with `bnn train --resume`, the rest
 * start. Aborting `signal` stops the running children as Ctrl-C stops `bnn train` (a checkpoint is
 * saved), so calling it again with the same options continues where it stopped.
 *
 * @param options - Where, which variants and seeds, and the common `bnn train` flags.
 * @returns The table as written to ablation.json, whether it was interrupted, and failed runs.
 * @throws BnnError `BNN_INVALID_ARGUMENT` for a bad option, flags `bnn train` refuses (every
 *   refused variant listed) or a run folder trained with other flags; nothing runs then.
 */
export async function runAblation(options: AblationOptions): Promise<AblationOutcome> {
  const plan = planAblation(options);
  const jobs = options.jobs ?? 1;
  if (!(Number.isInteger(jobs) && jobs >= 1)) throw rangeError(`jobs must be a whole number >= 1, got ${jobs}`);
  const totalThreads = options.threads ?? os.availableParallelism();
  if (!(Number.isInteger(totalThreads) && totalThreads >= 1)) throw rangeError(`threads must be a whole number >= 1, got ${totalThreads}`);
  const out = path.resolve(options.out);
  const say = options.onMessage ?? (() => undefined);
  const command = ablationCommand(options);
  const trainArgs = [...(options.trainArgs ?? [])];

  // Every run's flags, checked as bnn train checks them, before anything starts. Loaded here so
  // that importing the package does not load the command line's parser.
  const { checkTrainFlags } = await import('../cli/commands/train.js');
  const refused = new Map<string, string>();
  const trained = new Map<PlannedRun, Partial<Record<string, unknown>>>();
  for (const run of plan.runs) {
    if (refused.has(run.variant)) continue;
    try {
      trained.set(run, (await checkTrainFlags(run.args)).trained as Partial<Record<string, unknown>>);
    } catch (e) {
      refused.set(run.variant, e instanceof Error ? e.message : String(e));
    }
  }
  if (refused.size > 0) {
    const lines = [...refused].map(([name, why]) => {
      const flags = plan.variants.find((v) => v.name === name)!.flags.join(' ');
      return `${name}${flags ? ` (${flags})` : ''}: ${why.split('\n').join(' ')}`;
    });
    throw rangeError(`bnn train refuses the flags of ${refused.size === 1 ? 'one variant' : `${refused.size} variants`}, so nothing ran:\n${lines.join('\n')}`);
  }

  // Run folders from an earlier invocation must be of this ablation.
  const defaults = (await checkTrainFlags([])).trained as Partial<Record<string, unknown>>;
  const states = new Map(plan.runs.map((r) => [r, runState(r.dir)] as const));
  const mismatched = plan.runs.flatMap((r) => {
    if (states.get(r)!.kind === 'new') return [];
    const diffs = flagDifferences(r.dir, trained.get(r)!, defaults);
    return diffs.length > 0 ? [`${relativeRunPath(out, r.dir)} was trained with other flags (${diffs.join('; ')})`] : [];
  });
  if (mismatched.length > 0) {
    throw rangeError(`${out} holds runs of another ablation; use another --out, or remove those runs:\n${mismatched.join('\n')}`);
  }

  const results = new Map<PlannedRun, AblationRunResult>();
  const reportOf = (dir: string): string | null => (fs.existsSync(path.join(dir, REPORT_FILE_NAME)) ? relativeRunPath(out, path.join(dir, REPORT_FILE_NAME)) : null);
  for (const r of plan.runs) {
    const s = states.get(r)!;
    results.set(r, {
      variant: r.variant,
      seed: r.seed,
      status: s.kind === 'finished' ? 'finished' : s.kind === 'started' ? 'interrupted' : 'pending',
      accuracy: s.kind === 'finished' ? s.accuracy : null,
      loss: s.kind === 'finished' ? s.loss : null,
      seconds: s.kind === 'finished' ? s.seconds : null,
      dir: relativeRunPath(out, r.dir),
      report: reportOf(r.dir),
      reused: s.kind === 'finished',
    });
  }
  for (const r of plan.runs) {
    // A run stopped between its final record and its report still gets its page.
    if (results.get(r)!.status === 'finished' && results.get(r)!.report === null) {
      await writeReport(r.dir);
      results.get(r)!.report = reportOf(r.dir);
    }
  }
  const files = { json: path.join(out, 'ablation.json'), markdown: path.join(out, 'ablation.md'), html: path.join(out, 'ablation.html') };
  const write = (): AblationResult => {
    const result = summarizeAblation(plan, plan.runs.map((r) => results.get(r)!), { command, trainArgs });
    fs.mkdirSync(out, { recursive: true });
    writeFileAtomicSync(files.json, `${JSON.stringify(result, null, 2)}\n`);
    writeFileAtomicSync(files.markdown, renderAblationMarkdown(result));
    writeFileAtomicSync(files.html, renderAblationHtml(result, path.basename(out)));
    return result;
  };
  write();

  const reused = plan.runs.filter((r) => results.get(r)!.reused).length;
  const todo = plan.runs.filter((r) => !results.get(r)!.reused);
  say(
    `ablation of ${plan.variants.length} variant${plan.variants.length === 1 ? '' : 's'} x ${plan.seeds.length} seed${plan.seeds.length === 1 ? '' : 's'} -> ${out}` +
      (reused > 0 ? `: reusing ${reused} finished run${reused === 1 ? '' : 's'}, ${todo.length} to run` : ''),
  );

  const userThreads = trainArgs.some((a) => a === '--threads' || a.startsWith('--threads='));
  const threadArgs = jobs > 1 && !userThreads ? ['--threads', String(Math.max(1, Math.floor(totalThreads / jobs)))] : [];
  const output = options.childOutput ?? (jobs > 1 ? 'prefixed' : 'inherit');
  const trainCommand = options.trainCommand ? [...options.trainCommand] : defaultTrainCommand();
  const running = new Set<ChildProcess>();
  let stopping = options.signal?.aborted === true;
  // Each child leads its own process group (with its workers under --nproc): signalled as a
  // terminal's Ctrl-C would signal it, once.
  const signalGroup = (c: ChildProcess, signal: NodeJS.Signals): void => {
    try {
      process.kill(-c.pid!, signal);
    } catch {
      c.kill(signal);
    }
  };
  const onAbort = (): void => {
    stopping = true;
    for (const c of running) signalGroup(c, 'SIGINT');
  };
  const onKill = (): void => {
    stopping = true;
    for (const c of running) signalGroup(c, 'SIGKILL');
  };
  // Should this process end abruptly, its children must not train on unseen.
  const onExit = (): void => {
    for (const c of running) signalGroup(c, 'SIGKILL');
  };
  options.signal?.addEventListener('abort', onAbort);
  options.killSignal?.addEventListener('abort', onKill);
  process.on('exit', onExit);

  let started = 0;
  const runOne = async (r: PlannedRun): Promise<void> => {
    const res = results.get(r)!;
    const resuming = res.status === 'interrupted';
    const n = ++started;
    say(`run ${n}/${todo.length}: ${r.variant}, seed ${r.seed}${resuming ? ' (continuing its checkpoint)' : ''} -> ${res.dir}`);
    // On --resume, bnn train takes what it trains from the run's config.json (checked above to be
    // these flags) and how it runs (threads, precision, ...) from the command line.
    const args = ['train', ...r.args, ...(resuming ? ['--resume'] : [])];
    args.push(...threadArgs);
    if (output !== 'inherit') args.push('--no-progress');
    const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>((resolve) => {
      const child = spawn(trainCommand[0]!, [...trainCommand.slice(1), ...args], {
        // Its own process group: a terminal's Ctrl-C reaches this process only, which passes one
        // interrupt on (two would make bnn train quit without saving its checkpoint).
        detached: true,
        stdio: ['ignore', output === 'inherit' ? 'inherit' : output === 'silent' ? 'ignore' : 'pipe', output === 'inherit' ? 'inherit' : output === 'silent' ? 'ignore' : 'pipe'],
      });
      running.add(child);
      const prefix = `[${r.variant} seed ${r.seed}] `;
      const relay = (target: NodeJS.WriteStream) => {
        let pending = '';
        return (d: Buffer): void => {
          const lines = (pending + d.toString()).split(/\r?\n/);
          pending = lines.pop()!;
          for (const line of lines) if (line.trim()) target.write(`${prefix}${line}\n`);
        };
      };
      child.stdout?.on('data', relay(process.stdout));
      child.stderr?.on('data', relay(process.stderr));
      child.once('error', (error) => {
        running.delete(child);
        resolve({ code: null, signal: null, error });
      });
      child.once('close', (code, signal) => {
        running.delete(child);
        resolve({ code, signal });
      });
    });
    const state = runState(r.dir);
    if (state.kind === 'finished') {
      Object.assign(res, { status: 'finished', accuracy: state.accuracy, loss: state.loss, seconds: state.seconds, report: reportOf(r.dir) });
      delete res.error;
      if (res.report === null) {
        await writeReport(r.dir);
        res.report = reportOf(r.dir);
      }
      say(`${r.variant}, seed ${r.seed}: ${(100 * state.accuracy).toFixed(2)}%${state.seconds !== null ? ` in ${(state.seconds / 60).toFixed(1)} min` : ''}`);
    } else if (stopping && (exit.code === 130 || exit.signal === 'SIGINT' || exit.code !== 0)) {
      Object.assign(res, { status: state.kind === 'started' ? 'interrupted' : 'pending', report: reportOf(r.dir) });
    } else {
      const why = exit.error ? `could not start: ${exit.error.message}` : exit.signal ? `was killed by ${exit.signal}` : exit.code === 0 ? 'ended without a final record' : `exited with code ${exit.code}`;
      Object.assign(res, { status: 'failed', error: `bnn train ${why}`, report: reportOf(r.dir) });
      say(`${r.variant}, seed ${r.seed}: bnn train ${why}`);
    }
    write();
  };

  try {
    const queue = [...todo];
    const worker = async (): Promise<void> => {
      for (let r = queue.shift(); r !== undefined && !stopping; r = queue.shift()) await runOne(r);
    };
    await Promise.all(Array.from({ length: Math.min(jobs, Math.max(1, todo.length)) }, worker));
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    options.killSignal?.removeEventListener('abort', onKill);
    process.off('exit', onExit);
  }
  const result = write();
  const failed = result.runs.filter((r) => r.status === 'failed');
  return { result, interrupted: stopping && !result.complete, failed, files };
}

