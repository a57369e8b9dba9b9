// The run directory `bnn train` leaves behind: config.json, metrics.jsonl, summary.txt,
// checkpoint.safetensors, stage1.safetensors, final.safetensors and report.html. Every file is
// written atomically (temp file + rename), so an interrupted run never leaves a torn file.
import fs from 'node:fs';
import path from 'node:path';

import { writeFileAtomicSync } from '../io/atomic-file.js';
import type { DiagnosticsRecord } from '../report/run-record.js';
import type { EpochLog } from '../train/types.js';

export interface FinalMetrics {
  type: 'final';
  testAccuracy: number;
  testLoss: number;
  classNames: readonly string[];
  classAccuracy: number[];
  totalSeconds: number;
  stageSeconds: Record<string, number>;
  device: string;
  threads: number;
  cpu: string;
  cpuKernels: string;
  libtorch: string;
  bnnTorchVersion: string;
}

export class RunDirectory {
  readonly dir: string;
  #epochs: EpochLog[] = [];
  #final: FinalMetrics | undefined;
  #diagnostics: DiagnosticsRecord[] = [];

  constructor(dir: string) {
    this.dir = path.resolve(dir);
    fs.mkdirSync(this.dir, { recursive: true });
  }

  file(name: string): string {
    return path.join(this.dir, name);
  }

  writeJson(name: string, value: unknown): void {
    writeFileAtomicSync(this.file(name), `${JSON.stringify(value, null, 2)}\n`);
  }

  writeText(name: string, text: string): void {
    writeFileAtomicSync(this.file(name), text.endsWith('\n') ? text : `${text}\n`);
  }

  /** Replaces the epoch records (on resume, the checkpoint's history). */
  setEpochs(epochs: EpochLog[]): void {
    this.#epochs = [...epochs];
    this.#flush();
  }

  addEpoch(log: EpochLog): void {
    this.#epochs = this.#epochs.filter((e) => !(e.stage === log.stage && e.epoch === log.epoch));
    this.#epochs.push(log);
    this.#flush();
  }

  /** Replaces the diagnostics records (on resume, those of the run so far). */
  setDiagnostics(records: readonly DiagnosticsRecord[]): void {
    this.#diagnostics = [...records];
    this.#flush();
  }

  /** Adds the per-layer weight diagnostics of one epoch (replacing an earlier record of that epoch). */
  addDiagnostics(record: DiagnosticsRecord): void {
    this.#diagnostics = this.#diagnostics.filter((d) => !(d.stage === record.stage && d.epoch === record.epoch));
    this.#diagnostics.push(record);
    this.#flush();
  }

  setFinal(final: FinalMetrics): void {
    this.#final = final;
    this.#flush();
  }

  // The whole file is rewritten each time (it is small), so it is always complete.
  #flush(): void {
    const lines = this.#epochs.map((e) => JSON.stringify({ type: 'epoch', ...e }));
    // Readers from before these records ignore lines of an unknown type.
    for (const d of this.#diagnostics) lines.push(JSON.stringify({ type: 'diagnostics', stage: d.stage, epoch: d.epoch, layers: d.layers }));
    if (this.#final) lines.push(JSON.stringify(this.#final));
    writeFileAtomicSync(this.file('metrics.jsonl'), lines.length ? `${lines.join('\n')}\n` : '');
  }
}

/** A fresh run folder name: runs/<dataset>-<yyyymmdd-hhmmss>. */
export function defaultRunDir(dataset: string): string {
  const d = new Date();
  const two = (n: number) => String(n).padStart(2, '0');
  const stamp = `${d.getFullYear()}${two(d.getMonth() + 1)}${two(d.getDate())}-${two(d.getHours())}${two(d.getMinutes())}${two(d.getSeconds())}`;
  return path.join('runs', `${dataset}-${stamp}`);
}
