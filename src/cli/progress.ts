// Progress output for `bnn train`: a live bar on a terminal, one plain line per epoch otherwise.
import type { BatchEndInfo, EpochLog } from '../train/types.js';

const pct = (v: number | undefined): string => (v === undefined || Number.isNaN(v) ? '  -  ' : `${(100 * v).toFixed(2)}%`);
const clock = (s: number): string => {
  if (!Number.isFinite(s)) return '--:--';
  const m = Math.floor(s / 60);
  return `${m}:${String(Math.floor(s % 60)).padStart(2, '0')}`;
};

export interface ProgressOptions {
  /** Draw a live bar (only makes sense on a TTY). */
  live: boolean;
  stream?: NodeJS.WriteStream;
  epochs: { 1: number; 2: number };
  /** A one-stage run (`--one-stage`): its epochs are said without a stage (it runs as stage 2). */
  oneStage?: boolean;
}

/** Renders training progress; all methods are cheap and safe to call per batch. */
export class Progress {
  readonly #live: boolean;
  readonly #out: NodeJS.WriteStream;
  #epochs: { 1: number; 2: number };
  readonly #oneStage: boolean;
  #lastDraw = 0;

  constructor(o: ProgressOptions) {
    this.#live = o.live;
    this.#out = o.stream ?? process.stderr;
    this.#epochs = o.epochs;
    this.#oneStage = o.oneStage === true;
  }

  #label(stage: 1 | 2, epoch: number): string {
    return `${this.#oneStage ? '' : `stage ${stage} `}epoch ${epoch + 1}/${this.#epochs[stage]}`;
  }
  /** The stages' epoch counts changed (a time budget sized them). */
  setEpochs(epochs: { 1: number; 2: number }): void {
    this.#epochs = { ...epochs };
  }


  batch(b: BatchEndInfo): void {
    if (!this.#live) return;
    const now = performance.now();
    if (now - this.#lastDraw < 100 && b.batch < b.batches) return; // ~10 redraws a second
    this.#lastDraw = now;
    const width = 24;
    const done = Math.round((width * b.batch) / b.batches);
    // Seconds so far in this epoch, from images/s and the batches done; the rest at the same pace.
    const fraction = b.batch / b.batches;
    const elapsed = b.imagesPerSecond > 0 ? (b.batch * b.batchSize) / b.imagesPerSecond : 0;
    const remaining = fraction > 0 ? (elapsed * (1 - fraction)) / fraction : Infinity;
    const line =
      `${this.#label(b.stage, b.epoch)} [${'#'.repeat(done)}${'.'.repeat(width - done)}] ` +
      `${b.batch}/${b.batches}  ${b.imagesPerSecond.toFixed(0)} img/s  loss ${Number.isNaN(b.loss) ? '   -  ' : b.loss.toFixed(4)}  acc ${pct(b.accuracy)}  ` +
      `lr ${b.lr.toExponential(1)}  ETA ${clock(remaining)}`;
    this.#out.write(`\r${line.slice(0, (this.#out.columns ?? 160) - 1)}\x1b[K`);
  }

  epoch(log: EpochLog): void {
    if (this.#live) this.#out.write('\r\x1b[K');
    this.#out.write(
      `${this.#label(log.stage, log.epoch)}: train loss ${log.trainLoss.toFixed(4)} acc ${pct(log.trainAccuracy)}` +
        `  test loss ${log.testLoss?.toFixed(4) ?? '-'} acc ${pct(log.testAccuracy)}  lr ${log.lr.toExponential(1)}` +
        `  ${log.trainImagesPerSecond.toFixed(0)} img/s  ${log.seconds.toFixed(1)} s\n`,
    );
  }

  message(text: string): void {
    if (this.#live) this.#out.write('\r\x1b[K');
    this.#out.write(`${text}\n`);
  }
}
