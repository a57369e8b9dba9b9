// Reading a run directory (config.json, metrics.jsonl, summary.txt) into typed records.
// The files come from a CLI that may have been killed at any moment, so everything except an
// unreadable directory or a corrupt config degrades to "show what exists" rather than throwing.
import * as fs from 'node:fs';
import { join } from 'node:path';
import { bnnError } from '../errors.js';
import type { EpochLog } from '../train/types.js';

/**
 * One `{"type":"epoch",...}` line of `metrics.jsonl`: an {@link EpochLog} as read back, where the
 * stage is any number and a loss or accuracy the CLI wrote as `null` is NaN.
 */
export interface EpochRecord extends Omit<EpochLog, 'stage'> {
  stage: number;
}

/** The `{"type":"final",...}` line of `metrics.jsonl`, written once when a run completes. */
export interface FinalRecord {
  /** Test accuracy of the final model, in [0, 1]. */
  testAccuracy: number;
  /** Test loss of the final model. */
  testLoss?: number;
  /** Class names, index-aligned with {@link FinalRecord.classAccuracy}. */
  classNames?: string[];
  /** Test accuracy per true class, in [0, 1] (NaN for a class without test samples). */
  classAccuracy?: number[];
  /** Wall time of the whole run, in seconds. */
  totalSeconds?: number;
  /** Wall time per stage, keyed by stage number as a string (`"1"`, `"2"`). */
  stageSeconds?: Record<string, number>;
  /** Device the run trained on (`"cpu"`, `"cuda"`, `"cuda:1"`). */
  device?: string;
  /** Intra-op CPU threads LibTorch used. */
  threads?: number;
  /** The CPU's model name. */
  cpu?: string;
  /** The instruction set bnn-torch's CPU kernels used (`"avx512"`, `"avx2"`, `"baseline"`). */
  cpuKernels?: string;
  /** LibTorch version and flavour, e.g. `"2.13.0 (CPU)"`. */
  libtorch?: string;
  /** bnn-torch version that trained the run. */
  bnnTorchVersion?: string;
}

/** One binary convolution's figures in a `diagnostics` line (see `WeightDiagnostics` in train/diagnostics.ts). */
export interface LayerDiagnosticsRecord {
  /** Layer name, e.g. `layer2.1.conv`. */
  layer: string;
  /** Share of weights whose sign changed since the previous measurement; absent for the first one. NaN if written as null. */
  flipRatio?: number;
  /** Share of latent weights with |W| > 1 (outside the straight-through window). NaN if written as null. */
  outsideWindow: number;
  /** Share of the sign's inputs with |x| >= 1 on the fixed batch (no gradient passes); absent when not measured. */
  activationSaturated?: number;
  /** Share of the sign's outputs that are +1 on the fixed batch; absent when not measured. */
  activationPositive?: number;
  /** Share of the sign's input channels with one sign over the whole fixed batch; absent when not measured. */
  constantChannels?: number;
}

/** A `{"type":"diagnostics",...}` line of `metrics.jsonl`: the per-layer weight diagnostics measured after one epoch. */
export interface DiagnosticsRecord {
  stage: number;
  epoch: number;
  /** One entry per binary convolution, in the order measured. */
  layers: LayerDiagnosticsRecord[];
}

/** Everything a report is made from: the parsed contents of one run directory. */
export interface RunRecord {
  /** `config.json` as written by the CLI (`{}` when the file is absent). */
  config: Record<string, unknown>;
  /** Epoch lines, sorted by stage then epoch, one per (stage, epoch). */
  epochs: EpochRecord[];
  /** The final line; absent when the run was interrupted or is still going. */
  final?: FinalRecord;
  /**
   * Diagnostics lines, sorted by stage then epoch, one per (stage, epoch); absent or empty for runs
   * written before they were recorded.
   */
  diagnostics?: DiagnosticsRecord[];
  /** `summary.txt`, the model summary table, when present. */
  summaryText?: string;
  /** Lines of `metrics.jsonl` that could not be parsed or failed validation, and were skipped. */
  skippedLines: number;
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const isFiniteNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

// JSON cannot carry NaN/Infinity: JSON.stringify writes them as null. A diverged loss is still
// worth showing (as a gap), so null reads back as NaN where the writer may have produced it.
function numberOrNull(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  if (v === null) return Number.NaN;
  return undefined;
}

function optionalNumber(obj: Json, key: string): number | undefined | 'invalid' {
  if (!(key in obj) || obj[key] === undefined) return undefined;
  const n = numberOrNull(obj[key]);
  return n === undefined ? 'invalid' : n;
}

/** @internal Validates one parsed `epoch` line; undefined when it is malformed. */
export function parseEpochLine(obj: Json): EpochRecord | undefined {
  const { stage, epoch, lr, seconds, trainImagesPerSecond } = obj;
  if (!isFiniteNumber(stage) || !Number.isInteger(stage) || stage < 1) return undefined;
  if (!isFiniteNumber(epoch) || !Number.isInteger(epoch) || epoch < 0) return undefined;
  if (!isFiniteNumber(lr) || !isFiniteNumber(seconds) || !isFiniteNumber(trainImagesPerSecond)) return undefined;
  const trainLoss = numberOrNull(obj['trainLoss']);
  const trainAccuracy = numberOrNull(obj['trainAccuracy']);
  if (trainLoss === undefined || trainAccuracy === undefined) return undefined;
  const testLoss = optionalNumber(obj, 'testLoss');
  const testAccuracy = optionalNumber(obj, 'testAccuracy');
  if (testLoss === 'invalid' || testAccuracy === 'invalid') return undefined;
  const record: EpochRecord = { stage, epoch, lr, trainLoss, trainAccuracy, seconds, trainImagesPerSecond };
  if (testLoss !== undefined) record.testLoss = testLoss;
  if (testAccuracy !== undefined) record.testAccuracy = testAccuracy;
  const dataWait = optionalNumber(obj, 'dataWaitSeconds');
  if (dataWait !== undefined && dataWait !== 'invalid' && dataWait >= 0) record.dataWaitSeconds = dataWait;
  return record;
}

/** @internal Validates one parsed `final` line; undefined when it is malformed. */
export function parseFinalLine(obj: Json): FinalRecord | undefined {
  const testAccuracy = obj['testAccuracy'];
  if (!isFiniteNumber(testAccuracy)) return undefined;
  const final: FinalRecord = { testAccuracy };
  const testLoss = optionalNumber(obj, 'testLoss');
  const totalSeconds = optionalNumber(obj, 'totalSeconds');
  const threads = optionalNumber(obj, 'threads');
  if (testLoss === 'invalid' || totalSeconds === 'invalid' || threads === 'invalid') return undefined;
  if (testLoss !== undefined) final.testLoss = testLoss;
  if (totalSeconds !== undefined) final.totalSeconds = totalSeconds;
  if (threads !== undefined) final.threads = threads;

  const { classNames, classAccuracy, stageSeconds } = obj;
  if (classNames !== undefined) {
    if (!Array.isArray(classNames) || !classNames.every((n) => typeof n === 'string')) return undefined;
    final.classNames = classNames as string[];
  }
  if (classAccuracy !== undefined) {
    if (!Array.isArray(classAccuracy)) return undefined;
    const values = classAccuracy.map(numberOrNull);
    if (values.some((v) => v === undefined)) return undefined;
    final.classAccuracy = values as number[];
  }
  if (stageSeconds !== undefined) {
    if (!isObject(stageSeconds) || !Object.values(stageSeconds).every(isFiniteNumber)) return undefined;
    final.stageSeconds = { ...(stageSeconds as Record<string, number>) };
  }
  for (const key of ['device', 'cpu', 'cpuKernels', 'libtorch', 'bnnTorchVersion'] as const) {
    const v = obj[key];
    if (v === undefined) continue;
    if (typeof v !== 'string') return undefined;
    final[key] = v;
  }
  return final;
}

/** @internal Validates one parsed `diagnostics` line; undefined when it is malformed. */
export function parseDiagnosticsLine(obj: Json): DiagnosticsRecord | undefined {
  const { stage, epoch, layers } = obj;
  if (!isFiniteNumber(stage) || !Number.isInteger(stage) || stage < 1) return undefined;
  if (!isFiniteNumber(epoch) || !Number.isInteger(epoch) || epoch < 0) return undefined;
  if (!Array.isArray(layers)) return undefined;
  const out: LayerDiagnosticsRecord[] = [];
  for (const l of layers) {
    if (!isObject(l) || typeof l['layer'] !== 'string' || l['layer'] === '') return undefined;
    const outsideWindow = numberOrNull(l['outsideWindow']);
    const flipRatio = optionalNumber(l, 'flipRatio');
    if (outsideWindow === undefined || flipRatio === 'invalid') return undefined;
    const record: LayerDiagnosticsRecord = { layer: l['layer'], ...(flipRatio !== undefined ? { flipRatio } : {}), outsideWindow };
    for (const key of ['activationSaturated', 'activationPositive', 'constantChannels'] as const) {
      const v = optionalNumber(l, key);
      if (v === 'invalid') return undefined;
      if (v !== undefined) record[key] = v;
    }
    out.push(record);
  }
  return { stage, epoch, layers: out };
}

/**
 * Parses the text of a `metrics.jsonl`.
 *
 * Blank lines are ignored, as are well-formed objects of an unknown `type` (so newer CLIs can add
 * line kinds without breaking older reports). Anything else that fails to parse or validate is
 * counted in `skippedLines`. When an epoch (or an epoch's diagnostics) appears twice (a resumed run re-logs the epochs after
 * its checkpoint) the later line wins, and likewise for the final line.
 *
 * @param text - The file's contents.
 * @returns The epochs and diagnostics (sorted by stage, then epoch), the final record if any, and the skip count.
 */
export function parseMetrics(text: string): Pick<RunRecord, 'epochs' | 'final' | 'diagnostics' | 'skippedLines'> {
  const byKey = new Map<string, EpochRecord>();
  const diagnosticsByKey = new Map<string, DiagnosticsRecord>();
  let final: FinalRecord | undefined;
  let skippedLines = 0;
  for (const raw of text.replace(/^\uFEFF/, '').split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '') continue;
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch {
      skippedLines++;
      continue;
    }
    if (!isObject(obj)) {
      skippedLines++;
      continue;
    }
    if (obj['type'] === 'epoch') {
      const record = parseEpochLine(obj);
      if (record === undefined) skippedLines++;
      else byKey.set(`${record.stage}:${record.epoch}`, record);
    } else if (obj['type'] === 'diagnostics') {
      const record = parseDiagnosticsLine(obj);
      if (record === undefined) skippedLines++;
      else diagnosticsByKey.set(`${record.stage}:${record.epoch}`, record);
    } else if (obj['type'] === 'final') {
      const record = parseFinalLine(obj);
      if (record === undefined) skippedLines++;
      else final = record;
    } else if (typeof obj['type'] !== 'string') {
      skippedLines++;
    }
  }
  const order = (a: { stage: number; epoch: number }, b: { stage: number; epoch: number }): number => a.stage - b.stage || a.epoch - b.epoch;
  const epochs = [...byKey.values()].sort(order);
  const diagnostics = [...diagnosticsByKey.values()].sort(order);
  return { epochs, ...(final === undefined ? {} : { final }), ...(diagnostics.length > 0 ? { diagnostics } : {}), skippedLines };
}

function readOptional(path: string): string | undefined {
  try {
    return fs.readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw bnnError(`cannot read ${path}: ${(err as Error).message}`, 'BNN_IO');
  }
}

/**
 * Reads a run directory written by `bnn train`.
 *
 * Missing `metrics.jsonl` or `summary.txt` are not errors (an interrupted run may lack them);
 * a missing `config.json` reads as `{}`.
 *
 * @param dir - The run directory.
 * @returns The parsed run.
 * @throws BnnError `BNN_IO` if `dir` is not a readable directory or `config.json` is not a JSON object.
 */
export function readRunDirectory(dir: string): RunRecord {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(dir);
  } catch (err) {
    throw bnnError(`cannot read run directory ${dir}: ${(err as Error).message}`, 'BNN_IO');
  }
  if (!stat.isDirectory()) throw bnnError(`run directory ${dir} is not a directory`, 'BNN_IO');

  const configPath = join(dir, 'config.json');
  const configText = readOptional(configPath);
  let config: Record<string, unknown> = {};
  if (configText !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(configText.replace(/^\uFEFF/, ''));
    } catch (err) {
      throw bnnError(`${configPath} is not valid JSON: ${(err as Error).message}`, 'BNN_IO');
    }
    if (!isObject(parsed)) throw bnnError(`${configPath} must hold a JSON object`, 'BNN_IO');
    config = parsed;
  }

  const metricsText = readOptional(join(dir, 'metrics.jsonl')) ?? '';
  const run: RunRecord = { config, ...parseMetrics(metricsText) };
  const summaryText = readOptional(join(dir, 'summary.txt'));
  if (summaryText !== undefined) run.summaryText = summaryText;
  return run;
}
