// TensorBoard event files without TensorFlow: TFRecord framing around `Event` protobuf messages,
// the format tf.summary and torch.utils.tensorboard write. No npm package writes it without
// TensorFlow, so the framing and CRC-32C are here; the messages are encoded by protobufjs from a
// schema copied (field numbers and types only) from tensorflow/core/util/event.proto,
// tensorflow/core/framework/summary.proto, tensor.proto and tensor_shape.proto.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import protobuf from 'protobufjs';

import { checkInteger, checkNumber } from '../core/check.js';
import { bnnError, rangeError, typeError } from '../errors.js';

// ---------------------------------------------------------------------------------------------
// CRC-32C (Castagnoli), as TFRecord frames use it.

const CRC32C_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32C (Castagnoli polynomial, reflected, as iSCSI and TFRecord use it) of `bytes`, unsigned. */
export function crc32c(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) crc = CRC32C_TABLE[(crc ^ bytes[i]!) & 0xff]! ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** TFRecord's masked CRC: the CRC rotated right by 15 bits plus 0xa282ead8 (mod 2^32). */
export function maskedCrc32c(bytes: Uint8Array): number {
  const crc = crc32c(bytes);
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

/**
 * One TFRecord: the payload's length (uint64, little-endian), the masked CRC-32C of those 8 bytes,
 * the payload, the masked CRC-32C of the payload.
 */
export function tfRecord(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + payload.length + 4);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(payload.length), true);
  view.setUint32(8, maskedCrc32c(out.subarray(0, 8)), true);
  out.set(payload, 12);
  view.setUint32(12 + payload.length, maskedCrc32c(payload), true);
  return out;
}

// ---------------------------------------------------------------------------------------------
// The messages: the fields this writer uses, with TensorFlow's names and numbers.

const SCHEMA = `
syntax = "proto3";
package tensorflow;
message Event {
  double wall_time = 1;
  int64 step = 2;
  oneof what {
    string file_version = 3;
    Summary summary = 5;
  }
}
message Summary {
  message Value {
    string node_name = 7;
    string tag = 1;
    SummaryMetadata metadata = 9;
    oneof value {
      float simple_value = 2;
      HistogramProto histo = 5;
      TensorProto tensor = 8;
    }
  }
  repeated Value value = 1;
}
message SummaryMetadata {
  message PluginData {
    string plugin_name = 1;
    bytes content = 2;
  }
  PluginData plugin_data = 1;
  string display_name = 2;
  string summary_description = 3;
  int32 data_class = 4;
}
message HistogramProto {
  double min = 1;
  double max = 2;
  double num = 3;
  double sum = 4;
  double sum_squares = 5;
  repeated double bucket_limit = 6 [packed = true];
  repeated double bucket = 7 [packed = true];
}
message TensorShapeProto {
  message Dim {
    int64 size = 1;
    string name = 2;
  }
  repeated Dim dim = 2;
  bool unknown_rank = 3;
}
message TensorProto {
  int32 dtype = 1;
  TensorShapeProto tensor_shape = 2;
  repeated bytes string_val = 8;
}
`;

const EVENT = protobuf.parse(SCHEMA, { keepCase: true }).root.lookupType('tensorflow.Event');

/** tensorflow.DataType.DT_STRING. */
const DT_STRING = 7;
/** tensorboard's DataClass.DATA_CLASS_TENSOR: the text plugin's summaries are string tensors. */
const DATA_CLASS_TENSOR = 2;

// ---------------------------------------------------------------------------------------------
// Histograms: TensorFlow's default bucket edges (tensorflow/core/lib/histogram/histogram.cc).

let defaultLimits: Float64Array | undefined;

/**
 * The bucket limits TensorFlow's `Histogram` uses by default: ±1e-12 growing by 10% up to 1e20,
 * then ±DBL_MAX, and 0 in the middle (1,551 edges; PyTorch's SummaryWriter uses the same
 * edges without ±DBL_MAX). Bucket i counts values in [limit[i-1], limit[i]).
 */
export function defaultHistogramLimits(): Float64Array {
  if (!defaultLimits) {
    const pos: number[] = [];
    for (let v = 1e-12; v < 1e20; v *= 1.1) pos.push(v);
    pos.push(Number.MAX_VALUE);
    defaultLimits = Float64Array.from([...pos.map((v) => -v).reverse(), 0, ...pos]);
  }
  return defaultLimits;
}

/** The fields of a `HistogramProto`, as TensorBoard reads them. */
export interface HistogramData {
  min: number;
  max: number;
  num: number;
  sum: number;
  sumSquares: number;
  /** Upper edges of the buckets, increasing. */
  bucketLimit: number[];
  /** Count of each bucket. */
  bucket: number[];
}

/**
 * Summarises `values` as TensorFlow's `Histogram::EncodeToProto` does with its default buckets:
 * runs of empty buckets are merged into one, so only a few dozen edges are stored. Non-finite
 * values are a RangeError (TensorBoard cannot show them).
 */
export function histogramOf(values: ArrayLike<number>): HistogramData {
  const limits = defaultHistogramLimits();
  const counts = new Float64Array(limits.length);
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  let sumSquares = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isFinite(v)) throw rangeError(`a histogram cannot hold the non-finite value ${v} (at index ${i})`);
    if (v < min) min = v;
    if (v > max) max = v;
    sum += v;
    sumSquares += v * v;
    // upper_bound: the first limit strictly greater than v.
    let lo = 0;
    let hi = limits.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (limits[mid]! > v) hi = mid;
      else lo = mid + 1;
    }
    counts[lo]!++;
  }
  const bucketLimit: number[] = [];
  const bucket: number[] = [];
  for (let i = 0; i < counts.length; ) {
    let end = limits[i]!;
    let count = counts[i]!;
    i++;
    if (count <= 0) {
      while (i < counts.length && counts[i]! <= 0) {
        end = limits[i]!;
        count = counts[i]!;
        i++;
      }
    }
    bucketLimit.push(end);
    bucket.push(count);
  }
  if (values.length === 0) {
    min = 0;
    max = 0;
  }
  return { min, max, num: values.length, sum, sumSquares, bucketLimit, bucket };
}

// ---------------------------------------------------------------------------------------------
// The writer.

/** Options of {@link TensorBoardWriter}. */
export interface TensorBoardWriterOptions {
  /** Folder of the run's event file (TensorBoard's `--logdir` or a folder under it); created if missing. */
  logDir: string;
  /** Appended to the file name, as TensorFlow's `filename_suffix`. Default none. */
  filenameSuffix?: string;
  /**
   * Records are buffered in memory and written by {@link TensorBoardWriter.flush}, by
   * {@link TensorBoardWriter.close}, and whenever this many seconds passed since the last write
   * (TensorFlow's `flush_millis` is 120 s). Default 120.
   */
  flushSeconds?: number;
  /** Buffered bytes that trigger a write. Default 1 MiB. */
  maxBufferBytes?: number;
}

let filesMade = 0;

/**
 * Writes TensorBoard event files (scalars, histograms, text) directly, without TensorFlow. The file
 * is append-only: each flush appends whole TFRecords, so a crash or a full disk can cut only the
 * last record, and readers (TensorBoard's included) read every record before it.
 *
 * Steps must not go back within a tag: TensorBoard discards earlier events at or after a step
 * that reappears (its crash-recovery rule).
 *
 * @example
 * using tb = new TensorBoardWriter({ logDir: 'runs/a/tensorboard' });
 * tb.addScalar('train/loss', 0.42, 100);
 * tb.flush();
 */
export class TensorBoardWriter implements Disposable {
  /** Absolute path of the event file. */
  readonly path: string;
  #fd: number | undefined;
  #buffer: Uint8Array[] = [];
  #buffered = 0;
  #lastWrite = performance.now();
  readonly #flushMs: number;
  readonly #maxBuffer: number;

  constructor(options: TensorBoardWriterOptions) {
    if (typeof options !== 'object' || options === null) throw typeError('TensorBoardWriter takes an options object { logDir }');
    if (typeof options.logDir !== 'string' || options.logDir === '') throw typeError('logDir must be a non-empty string');
    const suffix = options.filenameSuffix ?? '';
    if (typeof suffix !== 'string' || /[\\/]/.test(suffix)) throw rangeError(`filenameSuffix must be a string without path separators, got ${JSON.stringify(suffix)}`);
    this.#flushMs = 1000 * checkNumber(options.flushSeconds ?? 120, 'flushSeconds', { min: 0 });
    this.#maxBuffer = checkInteger(options.maxBufferBytes ?? 1 << 20, 'maxBufferBytes', 0);
    const dir = path.resolve(options.logDir);
    // TensorFlow's name: events.out.tfevents.<seconds>.<host>.<pid>.<n>; n keeps two writers of one
    // process in the same second apart.
    const name = `events.out.tfevents.${Math.floor(Date.now() / 1000)}.${os.hostname()}.${process.pid}.${filesMade++}${suffix}`;
    this.path = path.join(dir, name);
    try {
      fs.mkdirSync(dir, { recursive: true });
      this.#fd = fs.openSync(this.path, 'ax');
    } catch (e) {
      throw bnnError(`cannot create the TensorBoard event file ${this.path}: ${(e as Error).message}`, 'BNN_IO');
    }
    // The first record says which format follows (brain.Event:2: summaries, not graphs only).
    this.#add({ wall_time: Date.now() / 1000, step: 0, file_version: 'brain.Event:2' });
    this.flush();
  }

  /** True after {@link close}. */
  get closed(): boolean {
    return this.#fd === undefined;
  }

  /** A scalar (`simple_value`, float32 as TensorBoard stores it) at `step`. */
  addScalar(tag: string, value: number, step: number, wallTime?: number): void {
    checkTag(tag);
    if (typeof value !== 'number') throw typeError(`the value of '${tag}' must be a number, got ${typeof value}`);
    this.#summary(step, wallTime, { tag, simple_value: value });
  }

  /** A histogram of `values` at `step`, bucketed as TensorFlow's `tf.summary.histogram` v1 ({@link histogramOf}). */
  addHistogram(tag: string, values: ArrayLike<number> | HistogramData, step: number, wallTime?: number): void {
    checkTag(tag);
    const h = 'bucketLimit' in values ? values : histogramOf(values);
    this.#summary(step, wallTime, {
      tag,
      histo: { min: h.min, max: h.max, num: h.num, sum: h.sum, sum_squares: h.sumSquares, bucket_limit: h.bucketLimit, bucket: h.bucket },
    });
  }

  /**
   * Text at `step`, shown in TensorBoard's Text tab (markdown: indent lines by four spaces to show
   * them as code). Written as tf.summary.text writes it: a string tensor with the `text` plugin's
   * metadata.
   */
  addText(tag: string, text: string, step: number, wallTime?: number): void {
    checkTag(tag);
    if (typeof text !== 'string') throw typeError(`the text of '${tag}' must be a string`);
    this.#summary(step, wallTime, {
      tag,
      metadata: { plugin_data: { plugin_name: 'text', content: new Uint8Array(0) }, data_class: DATA_CLASS_TENSOR },
      tensor: { dtype: DT_STRING, tensor_shape: {}, string_val: [Buffer.from(text, 'utf8')] },
    });
  }

  /** Appends the buffered records to the file. */
  flush(): void {
    const fd = this.#open();
    if (this.#buffered === 0) return;
    const data = Buffer.concat(this.#buffer, this.#buffered);
    this.#buffer = [];
    this.#buffered = 0;
    try {
      for (let at = 0; at < data.length; ) at += fs.writeSync(fd, data, at, data.length - at);
    } catch (e) {
      throw bnnError(`cannot write the TensorBoard event file ${this.path}: ${(e as Error).message}`, 'BNN_IO');
    }
    this.#lastWrite = performance.now();
  }

  /** Flushes and closes the file. Calling it again does nothing. */
  close(): void {
    if (this.#fd === undefined) return;
    try {
      this.flush();
    } finally {
      fs.closeSync(this.#fd);
      this.#fd = undefined;
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }

  #open(): number {
    if (this.#fd === undefined) throw bnnError(`the TensorBoard writer of ${this.path} is closed`, 'BNN_DISPOSED');
    return this.#fd;
  }

  #summary(step: number, wallTime: number | undefined, value: Record<string, unknown>): void {
    this.#open();
    checkInteger(step, 'step', 0);
    const wall = wallTime === undefined ? Date.now() / 1000 : checkNumber(wallTime, 'wallTime', { min: 0 });
    this.#add({ wall_time: wall, step, summary: { value: [value] } });
    if (this.#buffered >= this.#maxBuffer || performance.now() - this.#lastWrite >= this.#flushMs) this.flush();
  }

  #add(event: Record<string, unknown>): void {
    const err = EVENT.verify(event);
    if (err) throw bnnError(`internal: an invalid TensorBoard event (${err})`, 'BNN_INTERNAL_ERROR');
    const record = tfRecord(EVENT.encode(EVENT.fromObject(event)).finish());
    this.#buffer.push(record);
    this.#buffered += record.length;
  }
}

function checkTag(tag: unknown): void {
  if (typeof tag !== 'string') throw typeError(`a TensorBoard tag must be a string, got ${typeof tag}`);
  if (tag === '') throw rangeError('a TensorBoard tag must not be empty');
}
