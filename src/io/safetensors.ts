/**
 * Reader and writer for the Hugging Face safetensors format, with no
 * dependencies beyond Node's standard library.
 *
 * Layout: an 8-byte little-endian unsigned header size `N`, then `N` bytes of
 * UTF-8 JSON (possibly padded with trailing spaces), then the data buffer. The
 * JSON maps each tensor name to `{"dtype", "shape", "data_offsets": [begin, end]}`
 * with offsets relative to the start of the data buffer, plus an optional
 * `"__metadata__"` object of string values.
 *
 * Decoding treats the file as hostile: every size and offset is checked before
 * it is used, and any problem surfaces as a {@link SafetensorsError} whose
 * message names the file and the tensor involved.
 *
 * @module
 */

import { constants as bufferConstants } from 'node:buffer';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { writeFileAtomic, writeFileAtomicSync } from './atomic-file.js';

/** Element types this module reads and writes (a subset of what safetensors defines). */
export type SafetensorsDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

/** One tensor as stored in a safetensors file. */
export interface SafetensorsTensor {
  /** Element type. */
  dtype: SafetensorsDType;
  /** Dimensions; `[]` is a scalar (one element), any 0 makes the tensor empty. */
  shape: number[];
  /** Raw little-endian bytes, length = product(shape) * itemsize. */
  data: Uint8Array;
}

/** The decoded contents of a safetensors file. */
export interface SafetensorsFile {
  /** Tensors in the order their bytes appear in the file's data buffer. */
  tensors: Map<string, SafetensorsTensor>;
  /** The `__metadata__` entries; empty when the file has none. */
  metadata: Record<string, string>;
}

/** Tensors to encode, keyed by name. Input order does not matter: output is sorted by name. */
export type SafetensorsInput =
  | ReadonlyMap<string, SafetensorsTensor>
  | Readonly<Record<string, SafetensorsTensor>>;

/** Typed-array views of tensor data, see {@link toTypedArray}. */
export type SafetensorsTypedArray =
  | Float32Array
  | Float64Array
  | BigInt64Array
  | Int32Array
  | Uint8Array
  | Int16Array
  | Int8Array
  | Uint16Array;

/**
 * Error for malformed safetensors data, invalid tensors handed to the encoder,
 * and failures reading or writing safetensors files.
 */
export class SafetensorsError extends Error {
  /** Stable code shared by this package's I/O errors. */
  readonly code = 'BNN_IO' as const;
  /** The file involved, when there is one. */
  readonly file: string | undefined;

  /**
   * @param message - Complete message; by convention it starts with the file name.
   * @param file - The file involved, if any.
   * @param options - Standard error options (e.g. the underlying `cause`).
   */
  constructor(message: string, file?: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'SafetensorsError';
    this.file = file;
  }
}

const ITEM_SIZES: Readonly<Record<SafetensorsDType, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

const DTYPE_LIST = Object.keys(ITEM_SIZES).join(', ');

// Same cap as the reference implementation: a larger header is a corrupt or
// hostile file, and refusing early avoids decoding megabytes of garbage.
const MAX_HEADER_SIZE = 100_000_000;

// Node caps a single read() near 2 GiB; read big files in pieces below that.
const MAX_READ_CHUNK = 1 << 30;

const METADATA_KEY = '__metadata__';

// Typed-array views use host byte order, while safetensors data is
// little-endian; every platform Node ships on is little-endian, but a silent
// byte-swap bug would be far worse than an explicit refusal.
const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function isDType(value: unknown): value is SafetensorsDType {
  return typeof value === 'string' && Object.hasOwn(ITEM_SIZES, value);
}

/**
 * Size in bytes of one element of `dtype`.
 *
 * @throws {@link SafetensorsError} for a dtype this module does not know.
 */
export function dtypeItemSize(dtype: SafetensorsDType): number {
  if (!isDType(dtype)) {
    throw new SafetensorsError(`safetensors: unknown dtype ${describe(dtype)} (supported: ${DTYPE_LIST})`);
  }
  return ITEM_SIZES[dtype];
}

/** Label used at the start of messages when no file name was given. */
function labelOf(source: string | undefined): string {
  return source ?? 'safetensors';
}

/** Quotes a tensor name for a message, shortened so a huge name cannot flood it. */
function quote(name: string): string {
  const q = JSON.stringify(name);
  return q.length > 120 ? `${q.slice(0, 100)}…" (${name.length} chars)` : q;
}

/**
 * Renders an untrusted JSON value for an error message. Deliberately not
 * JSON.stringify on the whole value: a deeply nested value would overflow the
 * stack, and a huge one would produce an unreadable message.
 */
function describe(value: unknown): string {
  if (typeof value === 'string') return quote(value);
  if (value === null || typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) {
    const simple = value.every((v) => v === null || ['number', 'string', 'boolean'].includes(typeof v));
    if (simple && value.length <= 8) return `[${value.map(describe).join(',')}]`;
    return `an array of length ${value.length}`;
  }
  if (typeof value === 'object') return 'an object';
  return typeof value;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isNonNegativeInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/**
 * Number of elements for a validated shape, or undefined when it is not a
 * safe integer. Zero dims are checked first because a huge product times zero
 * can come out as NaN in floating point.
 */
function elementCount(shape: readonly number[]): number | undefined {
  if (shape.includes(0)) return 0;
  let n = 1;
  for (const d of shape) {
    n *= d;
    if (n > Number.MAX_SAFE_INTEGER) return undefined;
  }
  return n;
}

/** Byte length for `shape` of `dtype`, or undefined when it exceeds safe integers. */
function byteLength(shape: readonly number[], dtype: SafetensorsDType): number | undefined {
  const count = elementCount(shape);
  if (count === undefined) return undefined;
  const bytes = count * ITEM_SIZES[dtype];
  return bytes > Number.MAX_SAFE_INTEGER ? undefined : bytes;
}

/** A fresh, zero-offset copy; unlike Buffer#slice it never returns a view. */
function copyBytes(source: Uint8Array, begin: number, end: number): Uint8Array {
  const out = new Uint8Array(end - begin);
  out.set(source.subarray(begin, end));
  return out;
}

function shapeText(shape: readonly number[]): string {
  return shape.length <= 16 ? `[${shape.join(',')}]` : `[${shape.slice(0, 16).join(',')},…] (${shape.length} dims)`;
}

// ---------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------

interface EncodePlan {
  /** 8-byte size prefix plus the padded JSON header. */
  header: Uint8Array;
  /** Tensor data in file order. */
  chunks: Uint8Array[];
  /** Total file size in bytes. */
  size: number;
}

function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Validates a caller-supplied tensor. `subject` names it in messages (e.g.
 * `tensor "fc.weight"`), `source` is the file to attach to the error.
 */
function checkTensor(where: string, source: string | undefined, subject: string, tensor: unknown): SafetensorsTensor {
  const fail = (message: string): never => {
    throw new SafetensorsError(`${where}: ${subject} ${message}`, source);
  };
  if (!isPlainObject(tensor)) return fail(`must be an object with dtype, shape and data, got ${describe(tensor)}`);
  const { dtype, shape, data } = tensor;
  if (!isDType(dtype)) return fail(`has unknown dtype ${describe(dtype)} (supported: ${DTYPE_LIST})`);
  if (!Array.isArray(shape) || !shape.every(isNonNegativeInteger)) {
    return fail(`has an invalid shape ${describe(shape)}: it must be an array of non-negative integers`);
  }
  if (!(data instanceof Uint8Array)) {
    const hint = ArrayBuffer.isView(data) ? ' (use fromTypedArray() to wrap a typed array)' : '';
    return fail(`data must be a Uint8Array, got ${describe(data)}${hint}`);
  }
  const expected = byteLength(shape, dtype);
  if (expected === undefined) return fail(`shape ${shapeText(shape)} is too large`);
  if (data.byteLength !== expected) {
    return fail(`needs ${expected} bytes (shape ${shapeText(shape)}, ${dtype}) but data has ${data.byteLength}`);
  }
  return { dtype, shape: shape.map((d: number) => d + 0), data };
}

function planEncoding(
  tensors: SafetensorsInput,
  metadata: Readonly<Record<string, string>> | undefined,
  source: string | undefined,
): EncodePlan {
  const where = labelOf(source);
  if (typeof tensors !== 'object' || tensors === null) {
    throw new SafetensorsError(`${where}: tensors must be a Map or an object keyed by name, got ${describe(tensors)}`, source);
  }
  const entries: [string, unknown][] =
    tensors instanceof Map
      ? [...(tensors as ReadonlyMap<string, SafetensorsTensor>).entries()]
      : Object.entries(tensors as Readonly<Record<string, SafetensorsTensor>>);
  // Sorted so the same tensors always produce the same bytes, whatever order
  // the caller built them in.
  entries.sort(([a], [b]) => compareNames(a, b));

  const fields: string[] = [];
  if (metadata !== undefined) {
    if (!isPlainObject(metadata)) {
      throw new SafetensorsError(`${where}: metadata must be an object of strings, got ${describe(metadata)}`, source);
    }
    const metaEntries = Object.entries(metadata).sort(([a], [b]) => compareNames(a, b));
    for (const [key, value] of metaEntries) {
      if (typeof value !== 'string') {
        throw new SafetensorsError(`${where}: metadata ${quote(key)} must be a string, got ${describe(value)}`, source);
      }
    }
    if (metaEntries.length > 0) {
      const body = metaEntries.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',');
      fields.push(`"${METADATA_KEY}":{${body}}`);
    }
  }

  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const [name, raw] of entries) {
    if (typeof name !== 'string' || name === '') {
      throw new SafetensorsError(`${where}: tensor names must be non-empty strings, got ${describe(name)}`, source);
    }
    if (name === METADATA_KEY) {
      throw new SafetensorsError(`${where}: "${METADATA_KEY}" is reserved and cannot be a tensor name`, source);
    }
    const tensor = checkTensor(where, source, `tensor ${quote(name)}`, raw);
    const end = offset + tensor.data.byteLength;
    // Key order matches the reference writer (dtype, shape, data_offsets) and
    // the string is built by hand because JSON.stringify on an object would
    // move integer-like names ("0", "1") to the front.
    fields.push(
      `${JSON.stringify(name)}:{"dtype":"${tensor.dtype}","shape":[${tensor.shape.join(',')}],"data_offsets":[${offset},${end}]}`,
    );
    chunks.push(tensor.data);
    offset = end;
  }

  const json = new TextEncoder().encode(`{${fields.join(',')}}`);
  // Padding the header to a multiple of 8 puts the data buffer at an 8-byte
  // boundary of the file, so memory-mapping readers can view it in place.
  const headerSize = Math.ceil(json.byteLength / 8) * 8;
  if (headerSize > MAX_HEADER_SIZE) {
    throw new SafetensorsError(
      `${where}: header would be ${headerSize} bytes, over the ${MAX_HEADER_SIZE}-byte limit readers enforce (too many tensors or too much metadata)`,
      source,
    );
  }
  const header = new Uint8Array(8 + headerSize);
  new DataView(header.buffer).setBigUint64(0, BigInt(headerSize), true);
  header.set(json, 8);
  header.fill(0x20, 8 + json.byteLength);
  return { header, chunks, size: header.byteLength + offset };
}

/**
 * Serializes tensors to safetensors bytes.
 *
 * Tensors are laid out in name order and the header is space-padded so the
 * data buffer starts on an 8-byte boundary, so equal inputs always give
 * identical bytes.
 *
 * @param tensors - Tensors keyed by name (a Map or a plain object).
 * @param metadata - Optional string metadata, stored as `__metadata__`.
 * @throws {@link SafetensorsError} for an invalid tensor (bad dtype or shape,
 *   data length not product(shape) * itemsize, empty or reserved name) or metadata.
 */
export function encodeSafetensors(tensors: SafetensorsInput, metadata?: Readonly<Record<string, string>>): Uint8Array {
  const plan = planEncoding(tensors, metadata, undefined);
  const out = new Uint8Array(plan.size);
  out.set(plan.header, 0);
  let offset = plan.header.byteLength;
  for (const chunk of plan.chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------

interface PendingTensor {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  begin: number;
  end: number;
}

/**
 * Parses safetensors bytes, validating everything.
 *
 * Checks the header size against the 100 MB cap and the bytes present, that
 * the header is a UTF-8 JSON object, that every tensor has a supported dtype,
 * a shape of non-negative integers and in-range `data_offsets` spanning exactly
 * product(shape) * itemsize bytes, that the tensors tile the data buffer with
 * no overlap, gap or trailing bytes, and that metadata values are strings.
 *
 * @param bytes - The whole file.
 * @param source - File name used in error messages.
 * @returns Tensors (each `data` a fresh, zero-offset copy, so typed-array
 *   views on it are always aligned) and metadata.
 * @throws {@link SafetensorsError} describing the first problem found.
 */
export function decodeSafetensors(bytes: Uint8Array, source?: string): SafetensorsFile {
  const where = labelOf(source);
  const fail: (message: string) => never = (message) => {
    throw new SafetensorsError(`${where}: ${message}`, source);
  };

  if (!(bytes instanceof Uint8Array)) fail(`expected a Uint8Array of file contents, got ${describe(bytes)}`);
  if (bytes.byteLength === 0) fail('file is empty (a safetensors file starts with an 8-byte header size)');
  if (bytes.byteLength < 8) {
    fail(`file is truncated: ${bytes.byteLength} bytes is too short for the 8-byte header size`);
  }

  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const declared = view.getBigUint64(0, true);
  if (declared > BigInt(MAX_HEADER_SIZE)) {
    fail(`header size ${declared} is over the ${MAX_HEADER_SIZE}-byte limit (corrupt file, or not a safetensors file)`);
  }
  const headerSize = Number(declared);
  const afterPrefix = bytes.byteLength - 8;
  if (headerSize > afterPrefix) {
    fail(`file is truncated: header says ${headerSize} bytes of header but only ${afterPrefix} bytes follow`);
  }
  if (headerSize === 0) fail('header is empty (header size is 0)');
  // The reference implementation requires this too; it also rejects most
  // non-safetensors files with a clearer message than a JSON error would give.
  if (bytes[8] !== 0x7b) fail('header does not start with "{" (corrupt file, or not a safetensors file)');

  let text = '';
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes.subarray(8, 8 + headerSize));
  } catch {
    fail('header is not valid UTF-8');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    fail(`header is not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (!isPlainObject(parsed)) fail(`header must be a JSON object, got ${describe(parsed)}`);
  const header = parsed as Record<string, unknown>;

  const dataStart = 8 + headerSize;
  const dataLength = bytes.byteLength - dataStart;
  let metadata: Record<string, string> = {};
  const pending: PendingTensor[] = [];

  for (const [name, entry] of Object.entries(header)) {
    if (name === METADATA_KEY) {
      metadata = decodeMetadata(entry, fail);
      continue;
    }
    const t = `tensor ${quote(name)}`;
    if (!isPlainObject(entry)) fail(`${t}: expected an object with dtype, shape and data_offsets, got ${describe(entry)}`);
    const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
    if (dtype === undefined) fail(`${t} has no "dtype"`);
    if (!isDType(dtype)) fail(`${t} has unknown dtype ${describe(dtype)} (supported: ${DTYPE_LIST})`);
    const dt = dtype;
    if (shape === undefined) fail(`${t} has no "shape"`);
    if (!Array.isArray(shape)) fail(`${t} has an invalid shape ${describe(shape)}: expected an array of non-negative integers`);
    const dims = shape as unknown[];
    const badDim = dims.findIndex((d) => !isNonNegativeInteger(d));
    if (badDim >= 0) {
      fail(`${t} has an invalid shape ${describe(dims)}: dimension ${badDim} is ${describe(dims[badDim])}, expected a non-negative integer`);
    }
    // `+ 0` turns a JSON "-0" into 0 so shapes compare equal to what was written.
    const goodShape = (dims as number[]).map((d) => d + 0);
    if (offsets === undefined) fail(`${t} has no "data_offsets"`);
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !isNonNegativeInteger(offsets[0]) ||
      !isNonNegativeInteger(offsets[1])
    ) {
      fail(`${t} has invalid data_offsets ${describe(offsets)}: expected [begin, end] as two non-negative integers`);
    }
    const [begin, end] = (offsets as number[]).map((o) => o + 0) as [number, number];
    if (begin > end) fail(`${t} has data_offsets [${begin},${end}] with begin after end`);
    if (end > dataLength) {
      fail(`${t} has data_offsets [${begin},${end}] out of range: the data buffer is only ${dataLength} bytes`);
    }
    const needed = byteLength(goodShape, dt);
    if (needed === undefined) fail(`${t} shape ${shapeText(goodShape)} is too large`);
    if (needed !== end - begin) {
      fail(`${t} needs ${needed} bytes (shape ${shapeText(goodShape)}, ${dt}) but data_offsets give ${end - begin}`);
    }
    pending.push({ name, dtype: dt, shape: goodShape, begin, end });
  }

  // Tensors must tile the data buffer exactly, as the reference
  // implementation demands: an overlap means two tensors alias the same
  // bytes, and a gap or tail means bytes nobody accounts for.
  pending.sort((a, b) => a.begin - b.begin || a.end - b.end || compareNames(a.name, b.name));
  let cursor = 0;
  let previous: PendingTensor | undefined;
  for (const p of pending) {
    if (p.begin < cursor && previous !== undefined) {
      fail(
        `tensors ${quote(previous.name)} and ${quote(p.name)} overlap: ${quote(p.name)} starts at byte ${p.begin} but ${quote(previous.name)} ends at byte ${cursor}`,
      );
    }
    if (p.begin > cursor) {
      fail(`data buffer has a hole: bytes ${cursor}..${p.begin} before tensor ${quote(p.name)} belong to no tensor`);
    }
    cursor = p.end;
    previous = p;
  }
  if (cursor !== dataLength) {
    fail(`data buffer has ${dataLength - cursor} trailing bytes after the last tensor (offsets cover ${cursor} of ${dataLength})`);
  }

  const tensors = new Map<string, SafetensorsTensor>();
  for (const p of pending) {
    tensors.set(p.name, {
      dtype: p.dtype,
      shape: p.shape,
      data: copyBytes(bytes, dataStart + p.begin, dataStart + p.end),
    });
  }
  return { tensors, metadata };
}

function decodeMetadata(entry: unknown, fail: (message: string) => never): Record<string, string> {
  // null is what the reference writer's Option<HashMap> round-trips as "no metadata".
  if (entry === null) return {};
  if (!isPlainObject(entry)) fail(`"${METADATA_KEY}" must be an object of strings, got ${describe(entry)}`);
  const pairs = Object.entries(entry as Record<string, unknown>);
  for (const [key, value] of pairs) {
    if (typeof value !== 'string') fail(`"${METADATA_KEY}" entry ${quote(key)} must be a string, got ${describe(value)}`);
  }
  // fromEntries defines own properties, so a "__proto__" key stays plain data.
  return Object.fromEntries(pairs) as Record<string, string>;
}

// ---------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------

function ioError(path: string, action: string, err: unknown): SafetensorsError {
  const detail = err instanceof Error ? err.message : String(err);
  return new SafetensorsError(`${path}: cannot ${action}: ${detail}`, path, { cause: err });
}

function tooLarge(path: string, size: number): SafetensorsError {
  return new SafetensorsError(
    `${path}: file is ${size} bytes, more than this Node.js can hold in one buffer (${bufferConstants.MAX_LENGTH})`,
    path,
  );
}

async function readWholeFile(path: string): Promise<Uint8Array> {
  let handle: fsp.FileHandle;
  try {
    handle = await fsp.open(path, 'r');
  } catch (err) {
    throw ioError(path, 'read file', err);
  }
  try {
    const { size } = await handle.stat();
    if (size > bufferConstants.MAX_LENGTH) throw tooLarge(path, size);
    const buffer = new Uint8Array(size);
    let filled = 0;
    while (filled < size) {
      const { bytesRead } = await handle.read(buffer, filled, Math.min(MAX_READ_CHUNK, size - filled), filled);
      if (bytesRead === 0) break; // shrank while reading; the decoder reports the truncation
      filled += bytesRead;
    }
    return filled === size ? buffer : buffer.subarray(0, filled);
  } catch (err) {
    throw err instanceof SafetensorsError ? err : ioError(path, 'read file', err);
  } finally {
    await handle.close().catch(() => undefined);
  }
}

function readWholeFileSync(path: string): Uint8Array {
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch (err) {
    throw ioError(path, 'read file', err);
  }
  try {
    const { size } = fs.fstatSync(fd);
    if (size > bufferConstants.MAX_LENGTH) throw tooLarge(path, size);
    const buffer = new Uint8Array(size);
    let filled = 0;
    while (filled < size) {
      const bytesRead = fs.readSync(fd, buffer, filled, Math.min(MAX_READ_CHUNK, size - filled), filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    return filled === size ? buffer : buffer.subarray(0, filled);
  } catch (err) {
    throw err instanceof SafetensorsError ? err : ioError(path, 'read file', err);
  } finally {
    try {
      fs.closeSync(fd);
    } catch {
      // nothing useful to add to a read that already finished or failed
    }
  }
}

/**
 * Reads and validates a safetensors file. See {@link decodeSafetensors}.
 *
 * @throws {@link SafetensorsError} naming `path` when the file cannot be read or is malformed.
 */
export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  return decodeSafetensors(await readWholeFile(path), path);
}

/**
 * Synchronous twin of {@link readSafetensors}.
 *
 * @throws {@link SafetensorsError} naming `path` when the file cannot be read or is malformed.
 */
export function readSafetensorsSync(path: string): SafetensorsFile {
  return decodeSafetensors(readWholeFileSync(path), path);
}

/**
 * Writes tensors to `path` as safetensors, atomically: readers see either the
 * old file or the complete new one, never a partial write. Missing parent
 * directories are created. Output is byte-identical to {@link encodeSafetensors}.
 *
 * @throws {@link SafetensorsError} naming `path` for invalid tensors or an I/O failure.
 */
export async function writeSafetensors(
  path: string,
  tensors: SafetensorsInput,
  metadata?: Readonly<Record<string, string>>,
): Promise<void> {
  const plan = planEncoding(tensors, metadata, path);
  try {
    // Written as chunks so the tensors are never concatenated into one more
    // copy of the whole model in memory.
    await writeFileAtomic(path, [plan.header, ...plan.chunks]);
  } catch (err) {
    throw ioError(path, 'write file', err);
  }
}

/**
 * Synchronous twin of {@link writeSafetensors}.
 *
 * @throws {@link SafetensorsError} naming `path` for invalid tensors or an I/O failure.
 */
export function writeSafetensorsSync(
  path: string,
  tensors: SafetensorsInput,
  metadata?: Readonly<Record<string, string>>,
): void {
  const plan = planEncoding(tensors, metadata, path);
  try {
    writeFileAtomicSync(path, [plan.header, ...plan.chunks]);
  } catch (err) {
    throw ioError(path, 'write file', err);
  }
}

// ---------------------------------------------------------------------------
// Typed-array helpers
// ---------------------------------------------------------------------------

function requireLittleEndianHost(what: string): void {
  if (!HOST_IS_LITTLE_ENDIAN) {
    throw new SafetensorsError(`safetensors: ${what} needs a little-endian host; this one is big-endian`);
  }
}

/**
 * Typed-array view of a tensor's elements: F32 → Float32Array, F64 →
 * Float64Array, I64 → BigInt64Array, I32 → Int32Array, I16 → Int16Array,
 * I8 → Int8Array, U8 and BOOL → Uint8Array, and F16/BF16 → Uint16Array of
 * raw bit patterns (JavaScript has no portable half-float array).
 *
 * The result shares memory with `t.data` whenever the data is aligned for the
 * element type (always true for tensors from {@link decodeSafetensors});
 * misaligned data is copied instead.
 *
 * @throws {@link SafetensorsError} for an unknown dtype or a data length that
 *   does not match the shape.
 */
export function toTypedArray(t: SafetensorsTensor): SafetensorsTypedArray {
  const checked = checkTensor('toTypedArray', undefined, 'tensor', t);
  const size = ITEM_SIZES[checked.dtype];
  if (size > 1) requireLittleEndianHost('toTypedArray');
  let data = checked.data;
  if (data.byteOffset % size !== 0) data = copyBytes(data, 0, data.byteLength);
  const { buffer, byteOffset } = data;
  const length = data.byteLength / size;
  switch (checked.dtype) {
    case 'F64':
      return new Float64Array(buffer, byteOffset, length);
    case 'F32':
      return new Float32Array(buffer, byteOffset, length);
    case 'F16':
    case 'BF16':
      return new Uint16Array(buffer, byteOffset, length);
    case 'I64':
      return new BigInt64Array(buffer, byteOffset, length);
    case 'I32':
      return new Int32Array(buffer, byteOffset, length);
    case 'I16':
      return new Int16Array(buffer, byteOffset, length);
    case 'I8':
      return new Int8Array(buffer, byteOffset, length);
    case 'U8':
    case 'BOOL':
      return new Uint8Array(buffer, byteOffset, length);
  }
}

/** dtypes each array kind may be stored as; the first is the default. */
function dtypesFor(array: SafetensorsTypedArray): readonly SafetensorsDType[] {
  if (array instanceof Float32Array) return ['F32'];
  if (array instanceof Float64Array) return ['F64'];
  if (array instanceof BigInt64Array) return ['I64'];
  if (array instanceof Int32Array) return ['I32'];
  if (array instanceof Int16Array) return ['I16'];
  if (array instanceof Int8Array) return ['I8'];
  if (array instanceof Uint8Array) return ['U8', 'BOOL'];
  if (array instanceof Uint16Array) return ['F16', 'BF16'];
  return [];
}

/**
 * Builds a tensor from a typed array. The dtype defaults from the array type
 * (Float32Array → F32, Float64Array → F64, BigInt64Array → I64, Int32Array →
 * I32, Int16Array → I16, Int8Array → I8, Uint8Array → U8); pass 'BOOL' for a
 * Uint8Array of 0/1, and 'F16' or 'BF16' (required) for a Uint16Array of raw bits.
 *
 * The tensor's `data` is a view sharing memory with `array`, not a copy:
 * changes to `array` before encoding show up in the file.
 *
 * @param array - Elements in row-major order.
 * @param shape - Dimensions; their product must equal `array.length`.
 * @param dtype - Storage type, when the default is not wanted or not defined.
 * @throws {@link SafetensorsError} for a bad shape, a length mismatch or a dtype the array cannot hold.
 */
export function fromTypedArray(
  array: SafetensorsTypedArray,
  shape: readonly number[],
  dtype?: SafetensorsDType,
): SafetensorsTensor {
  const allowed = dtypesFor(array);
  if (allowed.length === 0) {
    throw new SafetensorsError(`fromTypedArray: unsupported array ${describe(array)}`);
  }
  const kind = array.constructor.name;
  let chosen: SafetensorsDType;
  if (dtype === undefined) {
    if (array instanceof Uint16Array) {
      throw new SafetensorsError(`fromTypedArray: a Uint16Array needs an explicit dtype ('F16' or 'BF16')`);
    }
    chosen = allowed[0] as SafetensorsDType;
  } else {
    if (!allowed.includes(dtype)) {
      throw new SafetensorsError(
        `fromTypedArray: a ${kind} cannot be stored as ${describe(dtype)} (allowed: ${allowed.join(', ')})`,
      );
    }
    chosen = dtype;
  }
  if (ITEM_SIZES[chosen] > 1) requireLittleEndianHost('fromTypedArray');
  if (!Array.isArray(shape) || !shape.every(isNonNegativeInteger)) {
    throw new SafetensorsError(`fromTypedArray: invalid shape ${describe(shape)}: it must be an array of non-negative integers`);
  }
  const count = elementCount(shape);
  if (count !== array.length) {
    throw new SafetensorsError(
      `fromTypedArray: shape ${shapeText(shape)} has ${count ?? 'too many'} elements but the ${kind} has ${array.length}`,
    );
  }
  return {
    dtype: chosen,
    shape: shape.map((d) => d + 0),
    data: new Uint8Array(array.buffer, array.byteOffset, array.byteLength),
  };
}
