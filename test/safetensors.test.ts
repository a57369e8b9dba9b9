import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { writeFileAtomic, writeFileAtomicSync } from '../src/io/atomic-file.js';
import {
  SafetensorsError,
  decodeSafetensors,
  dtypeItemSize,
  encodeSafetensors,
  fromTypedArray,
  readSafetensors,
  readSafetensorsSync,
  toTypedArray,
  writeSafetensors,
  writeSafetensorsSync,
  type SafetensorsDType,
  type SafetensorsTensor,
} from '../src/io/safetensors.js';
import { mulberry32 } from '../src/data/batches.js'; // deterministic, so fuzz failures reproduce from the seed

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

const FILE = 'bad.safetensors';

let dir = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bnn-safetensors-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});


/** Assembles a file from raw header text and data, exactly as the spec lays it out. */
function rawFile(headerText: string, data: Uint8Array = new Uint8Array(0), pad = true): Uint8Array {
  let json = Buffer.from(headerText, 'utf8');
  if (pad && json.length % 8 !== 0) json = Buffer.concat([json, Buffer.alloc(8 - (json.length % 8), 0x20)]);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));
  return new Uint8Array(Buffer.concat([prefix, json, data]));
}

function headerFile(header: unknown, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  return rawFile(JSON.stringify(header), data);
}

function bytes(...values: number[]): Uint8Array {
  return new Uint8Array(values);
}

function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Asserts a SafetensorsError naming FILE whose message matches `pattern`. */
function assertBad(input: Uint8Array, pattern: RegExp): void {
  assert.throws(
    () => decodeSafetensors(input, FILE),
    (err: unknown) => {
      assert.ok(err instanceof SafetensorsError, `expected SafetensorsError, got ${String(err)}`);
      assert.equal(err.code, 'BNN_IO');
      assert.equal(err.file, FILE);
      assert.ok(err.message.startsWith(`${FILE}: `), err.message);
      assert.match(err.message, pattern);
      return true;
    },
  );
}

function sampleTensors(): Map<string, SafetensorsTensor> {
  const m = new Map<string, SafetensorsTensor>();
  m.set('fc.weight', fromTypedArray(new Float32Array([1.5, -2, 3.25, 0, -0.5, 1e-3]), [2, 3]));
  m.set('fc.bias', fromTypedArray(new Float64Array([Math.PI, -Math.E]), [2]));
  m.set('step', fromTypedArray(new BigInt64Array([123456789012345n]), []));
  m.set('counts', fromTypedArray(new Int32Array([-1, 0, 2147483647, -2147483648]), [2, 2]));
  m.set('i16', fromTypedArray(new Int16Array([-32768, 7, 32767]), [3]));
  m.set('i8', fromTypedArray(new Int8Array([-128, 0, 127]), [3, 1]));
  m.set('u8', fromTypedArray(new Uint8Array([0, 255]), [2]));
  m.set('mask', fromTypedArray(new Uint8Array([1, 0, 1]), [3], 'BOOL'));
  m.set('half', fromTypedArray(new Uint16Array([0x3c00, 0xc100]), [2], 'F16'));
  m.set('brain', fromTypedArray(new Uint16Array([0x3f80, 0xc020, 0x3e20]), [1, 3], 'BF16'));
  m.set('empty', fromTypedArray(new Float32Array(0), [0, 3]));
  return m;
}

function assertSameTensors(actual: Map<string, SafetensorsTensor>, expected: Map<string, SafetensorsTensor>): void {
  assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort());
  for (const [name, e] of expected) {
    const a = actual.get(name);
    assert.ok(a, name);
    assert.equal(a.dtype, e.dtype, name);
    assert.deepEqual(a.shape, e.shape, name);
    assert.deepEqual(Buffer.from(a.data), Buffer.from(e.data), name);
  }
}

// ---------------------------------------------------------------------------
// round trips and layout
// ---------------------------------------------------------------------------

describe('safetensors round trip', () => {
  test('dtypeItemSize', () => {
    const sizes: Record<SafetensorsDType, number> = {
      F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
    };
    for (const [d, n] of Object.entries(sizes)) assert.equal(dtypeItemSize(d as SafetensorsDType), n);
    assert.throws(() => dtypeItemSize('F8' as SafetensorsDType), SafetensorsError);
  });

  test('all dtypes, scalar and zero-size shapes, metadata', () => {
    const tensors = sampleTensors();
    const metadata = { format: 'pt', note: 'héllo "quoted" \n', __proto__x: 'y' };
    const decoded = decodeSafetensors(encodeSafetensors(tensors, metadata), 'rt.safetensors');
    assertSameTensors(decoded.tensors, tensors);
    assert.deepEqual(decoded.metadata, metadata);
    assert.deepEqual(decoded.tensors.get('step')?.shape, []);
    assert.equal(decoded.tensors.get('empty')?.data.byteLength, 0);
    // Data is a fresh zero-offset copy, so typed views are always aligned.
    for (const t of decoded.tensors.values()) assert.equal(t.data.byteOffset, 0);
    assert.deepEqual(
      [...(toTypedArray(decoded.tensors.get('fc.weight')!) as Float32Array)],
      [1.5, -2, 3.25, 0, -0.5, Math.fround(1e-3)],
    );
  });

  test('no metadata decodes as {} and omits __metadata__', () => {
    const out = encodeSafetensors({ x: fromTypedArray(new Float32Array([1]), [1]) });
    assert.ok(!Buffer.from(out).toString('latin1').includes('__metadata__'));
    assert.deepEqual(decodeSafetensors(out).metadata, {});
    assert.deepEqual(decodeSafetensors(encodeSafetensors({}, {})).tensors.size, 0);
  });

  test('deterministic bytes regardless of insertion order or container', () => {
    const tensors = sampleTensors();
    const reversed = new Map([...tensors].reverse());
    const record = Object.fromEntries(tensors);
    const a = encodeSafetensors(tensors, { b: '2', a: '1' });
    assert.deepEqual(encodeSafetensors(reversed, { a: '1', b: '2' }), a);
    assert.deepEqual(encodeSafetensors(record, { a: '1', b: '2' }), a);
    assert.deepEqual(encodeSafetensors(tensors, { b: '2', a: '1' }), a);
  });

  test('integer-like names keep sorted order in the header', () => {
    const out = encodeSafetensors({
      '10': fromTypedArray(new Uint8Array([1]), [1]),
      '2': fromTypedArray(new Uint8Array([2]), [1]),
    });
    const n = Number(Buffer.from(out).readBigUInt64LE(0));
    const text = Buffer.from(out.subarray(8, 8 + n)).toString('utf8');
    assert.ok(text.indexOf('"10"') < text.indexOf('"2"'), text);
    // "10" sorts first, so its byte comes first in the data buffer.
    assert.deepEqual([...out.subarray(8 + n)], [1, 2]);
  });
});

describe('safetensors byte-exact layout', () => {
  // Built by hand from the spec: u64 LE header size, JSON, space padding to a
  // multiple of 8, then the data buffer.
  const json =
    '{"__metadata__":{"format":"pt"},' +
    '"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' +
    '"b":{"dtype":"I8","shape":[3],"data_offsets":[8,11]}}';
  const padded = json + ' '.repeat((8 - (json.length % 8)) % 8);
  const data = bytes(0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0, 0x01, 0xff, 0x7f); // 1.0, -2.0 | 1, -1, 127
  const size = padded.length;
  const expected = new Uint8Array([
    size & 0xff, (size >> 8) & 0xff, 0, 0, 0, 0, 0, 0,
    ...Buffer.from(padded, 'latin1'),
    ...data,
  ]);

  test('hand-built file decodes', () => {
    const f = decodeSafetensors(expected, 'hand.safetensors');
    assert.deepEqual(f.metadata, { format: 'pt' });
    assert.deepEqual([...f.tensors.keys()], ['a', 'b']);
    const a = f.tensors.get('a')!;
    assert.equal(a.dtype, 'F32');
    assert.deepEqual(a.shape, [2]);
    assert.deepEqual([...(toTypedArray(a) as Float32Array)], [1, -2]);
    assert.deepEqual([...(toTypedArray(f.tensors.get('b')!) as Int8Array)], [1, -1, 127]);
  });

  test('encoder produces exactly the hand-built bytes', () => {
    const out = encodeSafetensors(
      {
        b: fromTypedArray(new Int8Array([1, -1, 127]), [3]),
        a: fromTypedArray(new Float32Array([1, -2]), [2]),
      },
      { format: 'pt' },
    );
    assert.deepEqual(out, expected);
  });

  test('encoded layout: LE size, space-padded JSON, 8-aligned data start', () => {
    const out = encodeSafetensors(sampleTensors(), { k: 'v' });
    const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
    const n = Number(view.getBigUint64(0, true));
    assert.equal((8 + n) % 8, 0);
    const header = Buffer.from(out.subarray(8, 8 + n)).toString('utf8');
    assert.match(header, /^\{.*\} *$/s);
    const parsed = JSON.parse(header) as Record<string, { data_offsets: [number, number] }>;
    assert.deepEqual(Object.keys(parsed).filter((k) => k !== '__metadata__'), [...sampleTensors().keys()].sort());
    let end = 0;
    for (const [k, v] of Object.entries(parsed)) if (k !== '__metadata__') end = Math.max(end, v.data_offsets[1]);
    assert.equal(out.byteLength, 8 + n + end);
  });

  test('accepts other writers: unpadded header, extra fields, header order != data order, null metadata', () => {
    const f = decodeSafetensors(
      rawFile(
        '{"z":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"extra":true},' +
          '"a":{"dtype":"U8","shape":[2],"data_offsets":[1,3]},"__metadata__":null}',
        bytes(9, 8, 7),
        false,
      ),
      'other.safetensors',
    );
    assert.deepEqual([...f.tensors.keys()], ['z', 'a']); // file order
    assert.deepEqual([...f.tensors.get('a')!.data], [8, 7]);
    assert.deepEqual(f.metadata, {});
  });

  test('decoding a Buffer slice with a non-zero byteOffset works and copies', () => {
    const good = encodeSafetensors(sampleTensors());
    const pool = Buffer.alloc(good.length + 3);
    pool.set(good, 3);
    const f = decodeSafetensors(pool.subarray(3));
    assertSameTensors(f.tensors, sampleTensors());
    // Writing into decoded data must not touch the source bytes.
    f.tensors.get('fc.weight')!.data.fill(0xaa);
    assert.deepEqual(new Uint8Array(pool.subarray(3)), good);
  });
});

// ---------------------------------------------------------------------------
// corrupt input
// ---------------------------------------------------------------------------

describe('safetensors rejects corrupt files', () => {
  const f32 = (begin: number, end: number, shape: unknown = [2]) => ({ dtype: 'F32', shape, data_offsets: [begin, end] });
  const eight = new Uint8Array(8);

  test('empty file', () => assertBad(new Uint8Array(0), /file is empty/));
  test('shorter than 8 bytes', () => assertBad(bytes(1, 2, 3), /truncated: 3 bytes is too short/));

  test('header size larger than the file', () => {
    const f = rawFile('{}');
    const buf = Buffer.from(f);
    buf.writeBigUInt64LE(1234n);
    assertBad(buf, /file is truncated: header says 1234 bytes of header but only 8 bytes follow/);
  });

  test('header size over the 100 MB cap, including u64 values past 2^53', () => {
    for (const n of [100_000_001n, 2n ** 63n + 5n, 2n ** 64n - 1n]) {
      const buf = Buffer.alloc(16);
      buf.writeBigUInt64LE(n);
      assertBad(buf, new RegExp(`header size ${n} is over the 100000000-byte limit`));
    }
  });

  test('zero header size', () => assertBad(new Uint8Array(8), /header is empty/));
  test('header not starting with {', () => assertBad(rawFile(' {}'), /does not start with "\{"/));
  test('invalid UTF-8', () => {
    const f = rawFile('{"\u00e9":1}');
    f[10] = 0xff; // break the 2-byte sequence
    assertBad(f, /not valid UTF-8/);
  });
  test('invalid JSON', () => assertBad(rawFile('{"a":'), /not valid JSON/));
  test('non-object JSON', () => {
    assertBad(rawFile('{} {}'), /not valid JSON/);
    assertBad(rawFile('[1]'), /does not start with/);
  });
  test('entry is not an object', () => {
    assertBad(headerFile({ w: 5 }), /tensor "w": expected an object/);
    assertBad(headerFile({ w: [1, 2] }), /tensor "w": expected an object/);
    assertBad(headerFile({ w: null }), /tensor "w": expected an object/);
  });
  test('unknown or missing dtype', () => {
    assertBad(headerFile({ w: { dtype: 'F8_E4M3', shape: [1], data_offsets: [0, 1] } }, bytes(0)), /tensor "w" has unknown dtype "F8_E4M3" \(supported: F64/);
    assertBad(headerFile({ w: { shape: [1], data_offsets: [0, 1] } }, bytes(0)), /tensor "w" has no "dtype"/);
    assertBad(headerFile({ w: { dtype: 'U8', data_offsets: [0, 1] } }, bytes(0)), /tensor "w" has no "shape"/);
    assertBad(headerFile({ w: { dtype: 'U8', shape: [1] } }, bytes(0)), /tensor "w" has no "data_offsets"/);
    assertBad(headerFile({ w: { dtype: 'constructor', shape: [1], data_offsets: [0, 1] } }, bytes(0)), /unknown dtype "constructor"/);
  });
  test('bad shape', () => {
    for (const shape of [[-1], [1.5], ['2'], [null], 2, null, [2 ** 53], [[2]]]) {
      assertBad(headerFile({ w: f32(0, 8, shape) }, eight), /tensor "w" has an invalid shape/);
    }
    assertBad(headerFile({ w: f32(0, 8, [2 ** 40, 2 ** 40]) }, eight), /tensor "w" shape \[1099511627776,1099511627776\] is too large/);
  });
  test('bad data_offsets', () => {
    for (const offsets of [[0], [0, 8, 9], [-1, 8], [0, 8.5], ['0', '8'], null, { begin: 0 }]) {
      assertBad(headerFile({ w: { dtype: 'F32', shape: [2], data_offsets: offsets } }, eight), /tensor "w" has invalid data_offsets/);
    }
  });
  test('offsets out of range', () => {
    assertBad(headerFile({ w: f32(0, 16, [4]) }, eight), /tensor "w" has data_offsets \[0,16\] out of range: the data buffer is only 8 bytes/);
    assertBad(headerFile({ w: f32(8, 0) }, eight), /begin after end/);
  });
  test('size mismatch', () => {
    assertBad(
      headerFile({ 'fc.weight': { dtype: 'F32', shape: [10, 10], data_offsets: [0, 396] } }, new Uint8Array(396)),
      /tensor "fc.weight" needs 400 bytes \(shape \[10,10\], F32\) but data_offsets give 396/,
    );
  });
  test('overlap', () => {
    assertBad(headerFile({ a: f32(0, 8), b: f32(4, 12) }, new Uint8Array(12)), /tensors "a" and "b" overlap: "b" starts at byte 4 but "a" ends at byte 8/);
    assertBad(headerFile({ a: f32(0, 8), b: f32(0, 8) }, eight), /overlap/);
    assertBad(headerFile({ a: f32(0, 8), z: f32(4, 4, [0]) }, eight), /overlap/);
  });
  test('holes and trailing bytes', () => {
    assertBad(headerFile({ a: f32(0, 8), b: f32(12, 20) }, new Uint8Array(20)), /hole: bytes 8\.\.12 before tensor "b"/);
    assertBad(headerFile({ a: f32(0, 8) }, new Uint8Array(10)), /2 trailing bytes/);
    assertBad(headerFile({}, bytes(1)), /1 trailing bytes/);
  });
  test('bad metadata', () => {
    assertBad(headerFile({ __metadata__: { a: 1 } }), /"__metadata__" entry "a" must be a string, got 1/);
    assertBad(headerFile({ __metadata__: ['x'] }), /"__metadata__" must be an object of strings/);
    assertBad(headerFile({ __metadata__: 'x' }), /"__metadata__" must be an object of strings/);
  });
  test('messages without a source still say what is wrong', () => {
    assert.throws(() => decodeSafetensors(bytes(1)), (e: unknown) => e instanceof SafetensorsError && e.file === undefined && /^safetensors: /.test(e.message));
  });
  test('huge tensor names are shortened in messages', () => {
    const name = 'n'.repeat(100_000);
    assert.throws(
      () => decodeSafetensors(headerFile({ [name]: f32(0, 4) }, eight), FILE),
      (e: unknown) => e instanceof SafetensorsError && e.message.length < 500,
    );
  });
});

// ---------------------------------------------------------------------------
// encoder validation and typed-array helpers
// ---------------------------------------------------------------------------

describe('safetensors encoder validation', () => {
  const ok = fromTypedArray(new Float32Array([1, 2]), [2]);
  const cases: [string, () => unknown, RegExp][] = [
    ['length mismatch', () => encodeSafetensors({ w: { dtype: 'F32', shape: [3], data: new Uint8Array(8) } }), /tensor "w" needs 12 bytes \(shape \[3\], F32\) but data has 8/],
    ['empty name', () => encodeSafetensors({ '': ok }), /names must be non-empty/],
    ['reserved name', () => encodeSafetensors({ __metadata__: ok }), /"__metadata__" is reserved/],
    ['negative dim', () => encodeSafetensors({ w: { ...ok, shape: [-2] } }), /invalid shape \[-2\]/],
    ['fractional dim', () => encodeSafetensors({ w: { ...ok, shape: [0.5] } }), /invalid shape/],
    ['unknown dtype', () => encodeSafetensors({ w: { ...ok, dtype: 'U16' as SafetensorsDType } }), /unknown dtype "U16"/],
    ['typed array as data', () => encodeSafetensors({ w: { ...ok, data: new Float32Array(2) as unknown as Uint8Array } }), /fromTypedArray/],
    ['non-string metadata', () => encodeSafetensors({ w: ok }, { a: 1 as unknown as string }), /metadata "a" must be a string/],
  ];
  for (const [name, fn, pattern] of cases) {
    test(name, () => assert.throws(fn, (e: unknown) => e instanceof SafetensorsError && pattern.test(e.message)));
  }

  test('writeSafetensors errors name the target file', async () => {
    const target = join(dir, 'invalid.safetensors');
    await assert.rejects(
      writeSafetensors(target, { w: { dtype: 'F32', shape: [3], data: new Uint8Array(8) } }),
      (e: unknown) => e instanceof SafetensorsError && e.file === target && e.message.startsWith(`${target}: tensor "w"`),
    );
    assert.equal(fs.existsSync(target), false);
  });
});

describe('typed-array helpers', () => {
  test('fromTypedArray defaults and toTypedArray round trip', () => {
    const cases: [ArrayLike<number | bigint> & { constructor: { name: string } }, SafetensorsDType][] = [
      [new Float32Array([1, 2]), 'F32'],
      [new Float64Array([1, 2]), 'F64'],
      [new BigInt64Array([1n, -2n]), 'I64'],
      [new Int32Array([1, -2]), 'I32'],
      [new Int16Array([1, -2]), 'I16'],
      [new Int8Array([1, -2]), 'I8'],
      [new Uint8Array([1, 2]), 'U8'],
    ];
    for (const [arr, dtype] of cases) {
      const t = fromTypedArray(arr as Float32Array, [2]);
      assert.equal(t.dtype, dtype);
      const back = toTypedArray(t);
      assert.equal(back.constructor.name, arr.constructor.name);
      assert.deepEqual([...back], [...(arr as Float32Array)]);
    }
    assert.ok(toTypedArray(fromTypedArray(new Uint8Array([1]), [1], 'BOOL')) instanceof Uint8Array);
    assert.ok(toTypedArray(fromTypedArray(new Uint16Array([1]), [1], 'BF16')) instanceof Uint16Array);
  });

  test('fromTypedArray rejects mismatches', () => {
    assert.throws(() => fromTypedArray(new Uint16Array(2), [2]), /needs an explicit dtype/);
    assert.throws(() => fromTypedArray(new Float32Array(2), [2], 'F64'), /Float32Array cannot be stored as "F64"/);
    assert.throws(() => fromTypedArray(new Float32Array(6), [2, 2]), /shape \[2,2\] has 4 elements but the Float32Array has 6/);
    assert.throws(() => fromTypedArray(new Float32Array(1), [-1]), SafetensorsError);
  });

  test('toTypedArray copies misaligned data instead of throwing', () => {
    const backing = new Uint8Array(9);
    new DataView(backing.buffer).setFloat32(1, 2.5, true);
    new DataView(backing.buffer).setFloat32(5, -1, true);
    const arr = toTypedArray({ dtype: 'F32', shape: [2], data: backing.subarray(1) });
    assert.deepEqual([...arr], [2.5, -1]);
  });

  test('toTypedArray shares memory with aligned data', () => {
    const t = fromTypedArray(new Float32Array([1, 2]), [2]);
    (toTypedArray(t) as Float32Array)[0] = 7;
    assert.equal(new DataView(t.data.buffer, t.data.byteOffset).getFloat32(0, true), 7);
  });
});

// ---------------------------------------------------------------------------
// fuzz
// ---------------------------------------------------------------------------

test('fuzz: mutated files decode validly or throw SafetensorsError', { timeout: 30_000 }, () => {
  const seeds = [
    encodeSafetensors(sampleTensors(), { format: 'pt', epoch: '3' }),
    encodeSafetensors({ a: fromTypedArray(new Float32Array([1, 2, 3]), [3]), b: fromTypedArray(new Uint8Array(0), [0]) }),
    encodeSafetensors({ s: fromTypedArray(new Int8Array([5]), []) }, { k: 'v' }),
  ];
  type Entry = { dtype: unknown; shape: unknown; data_offsets: unknown };
  const parsedSeeds = seeds.map((b) => {
    const end = 8 + Number(Buffer.from(b).readBigUInt64LE(0));
    const header = JSON.parse(Buffer.from(b.subarray(8, end)).toString('utf8')) as Record<string, Entry>;
    return { header, data: b.subarray(end) };
  });
  const weird: unknown[] = [0, 1, 2, 3, 4, 8, 12, 24, 48, -1, 1.5, 2 ** 53, 1e308, '4', null, [], [1], [2, 2], [0, 3], [3, 0], [4, 12], [-4, 0], {}, true];
  const rand = mulberry32(0x5afe7e45);
  const int = (n: number) => Math.floor(rand() * n);
  const jsonish = Buffer.from('{}[]",:-0123456789 eE.nul\\');
  const iterations = 3000;
  let decoded = 0;
  const start = performance.now();

  for (let i = 0; i < iterations; i++) {
    const base = seeds[i % seeds.length]!;
    let f: Uint8Array = Uint8Array.from(base);
    const headerEnd = 8 + Number(Buffer.from(base).readBigUInt64LE(0));
    const rounds = 1 + int(3);
    for (let r = 0; r < rounds; r++) {
      switch (int(9)) {
        case 7: {
          // Structured: rewrite one header field with a plausible-but-wrong
          // value, so validation beyond JSON parsing is exercised too.
          const { header, data } = parsedSeeds[i % seeds.length]!;
          const h = structuredClone(header);
          const names = Object.keys(h).filter((k) => k !== '__metadata__');
          const name = names[int(names.length)]!;
          const entry = h[name]!;
          const pick = <T,>(xs: readonly T[]): T => xs[int(xs.length)]!;
          switch (int(6)) {
            case 0: entry.dtype = pick(['F32', 'F64', 'I8', 'BOOL', 'BF16', 'U16', '', 5]); break;
            case 1: entry.shape = pick(weird); break;
            case 2: entry.data_offsets = pick(weird); break;
            case 3: {
              const arr = int(2) === 0 ? entry.shape : entry.data_offsets;
              if (Array.isArray(arr) && arr.length > 0) arr[int(arr.length)] = rand() < 0.7 ? int(40) : pick(weird);
              break;
            }
            case 4: {
              // swap offsets with another tensor
              const other = h[pick(names)]!;
              [entry.data_offsets, other.data_offsets] = [other.data_offsets, entry.data_offsets];
              break;
            }
            default:
              if (rand() < 0.5) delete h[name];
              else (h as Record<string, unknown>).__metadata__ = pick(weird);
          }
          f = rawFile(JSON.stringify(h), data, rand() < 0.8);
          break;
        }
        case 8: // flip bytes in the data buffer only: the file must stay valid
          if (f.length > headerEnd) f[headerEnd + int(f.length - headerEnd)]! ^= 0xff;
          break;
        case 0: // bit flips anywhere
          for (let k = 1 + int(4); k > 0 && f.length > 0; k--) f[int(f.length)]! ^= 1 << int(8);
          break;
        case 1: // truncate
          f = f.slice(0, int(f.length + 1));
          break;
        case 2: {
          // random header size: small, near the real one, or anywhere in u64
          if (f.length < 8) break;
          const view = new DataView(f.buffer);
          const choice = int(3);
          const value =
            choice === 0 ? BigInt(int(64)) : choice === 1 ? BigInt(Math.max(0, headerEnd - 8 + int(33) - 16)) : BigInt(int(2 ** 32)) * BigInt(int(2 ** 32));
          view.setBigUint64(0, value, true);
          break;
        }
        case 3: {
          // append garbage
          const extra = new Uint8Array(1 + int(32)).map(() => int(256));
          f = Uint8Array.from([...f, ...extra]);
          break;
        }
        case 4: // JSON-significant characters inside the header, to reach deep validation paths
          for (let k = 1 + int(3); k > 0 && headerEnd > 9 && f.length > 9; k--) {
            f[8 + int(Math.min(headerEnd, f.length) - 8)] = jsonish[int(jsonish.length)]!;
          }
          break;
        case 5: {
          // delete or duplicate a slice
          const at = int(f.length + 1);
          const len = int(16);
          f = rand() < 0.5 ? Uint8Array.from([...f.subarray(0, at), ...f.subarray(at + len)]) : Uint8Array.from([...f.subarray(0, at + len), ...f.subarray(at)]);
          break;
        }
        default: // random byte overwrite
          if (f.length > 0) f[int(f.length)] = int(256);
      }
    }

    try {
      const out = decodeSafetensors(f, `fuzz-${i}.safetensors`);
      decoded++;
      let total = 0;
      for (const t of out.tensors.values()) {
        assert.equal(t.data.byteLength, numel(t.shape) * dtypeItemSize(t.dtype));
        total += t.data.byteLength;
      }
      assert.equal(total, f.length - 8 - Number(Buffer.from(f).readBigUInt64LE(0)));
    } catch (err) {
      if (!(err instanceof SafetensorsError)) {
        assert.fail(`iteration ${i}: non-SafetensorsError ${String(err)} for bytes ${Buffer.from(f).toString('hex')}`);
      }
      assert.ok(err.message.startsWith(`fuzz-${i}.safetensors: `), err.message);
    }
  }
  const ms = performance.now() - start;
  assert.ok(ms < 10_000, `fuzz took ${ms.toFixed(0)} ms`);
  // Some mutations (e.g. flipped data bytes) must leave the file valid, or
  // the fuzzer is not exercising the success path at all.
  assert.ok(decoded > 0, 'no mutated file decoded');
});

// ---------------------------------------------------------------------------
// files
// ---------------------------------------------------------------------------

describe('safetensors files', () => {
  test('writeSafetensors writes atomically and replaces the target', async () => {
    const sub = await mkdtemp(join(dir, 'atomic-'));
    const target = join(sub, 'model.safetensors');
    await writeSafetensors(target, sampleTensors(), { v: '1' });
    assert.deepEqual(await readdir(sub), ['model.safetensors']);
    const first = await readSafetensors(target);
    assertSameTensors(first.tensors, sampleTensors());
    assert.deepEqual(first.metadata, { v: '1' });
    assert.deepEqual(new Uint8Array(await readFile(target)), encodeSafetensors(sampleTensors(), { v: '1' }));

    const replacement = new Map([['only', fromTypedArray(new Int32Array([42]), [1])]]);
    await writeSafetensors(target, replacement, { v: '2' });
    assert.deepEqual(await readdir(sub), ['model.safetensors']);
    const second = readSafetensorsSync(target);
    assertSameTensors(second.tensors, replacement);
    assert.deepEqual(second.metadata, { v: '2' });

    writeSafetensorsSync(target, replacement, { v: '3' });
    assert.deepEqual(await readdir(sub), ['model.safetensors']);
    assert.deepEqual((await readSafetensors(target)).metadata, { v: '3' });
  });

  test('writeFileAtomic creates parent dirs, handles strings and chunks, keeps mode', async () => {
    const nested = join(dir, 'a', 'b', 'c.txt');
    await writeFileAtomic(nested, 'héllo');
    assert.equal(await readFile(nested, 'utf8'), 'héllo');
    await writeFileAtomic(nested, [bytes(1, 2), bytes(), bytes(3)]);
    assert.deepEqual([...(await readFile(nested))], [1, 2, 3]);
    writeFileAtomicSync(join(dir, 'x', 'y.bin'), bytes(9));
    assert.deepEqual([...(await readFile(join(dir, 'x', 'y.bin')))], [9]);
    if (process.platform !== 'win32') {
      fs.chmodSync(nested, 0o600);
      await writeFileAtomic(nested, 'again');
      assert.equal((await stat(nested)).mode & 0o777, 0o600);
      writeFileAtomicSync(nested, 'sync');
      assert.equal((await stat(nested)).mode & 0o777, 0o600);
    }
    assert.deepEqual((await readdir(join(dir, 'a', 'b'))).sort(), ['c.txt']);
  });

  test('failed atomic writes leave no temp file and keep the old target', async () => {
    const sub = await mkdtemp(join(dir, 'fail-'));
    const blocker = join(sub, 'is-a-dir');
    fs.mkdirSync(blocker);
    fs.writeFileSync(join(blocker, 'keep'), 'x');
    await assert.rejects(writeFileAtomic(blocker, 'data'));
    assert.throws(() => writeFileAtomicSync(blocker, 'data'));
    await assert.rejects(writeSafetensors(blocker, sampleTensors()), (e: unknown) => e instanceof SafetensorsError && e.file === blocker && e.message.includes('cannot write file'));
    assert.deepEqual(await readdir(sub), ['is-a-dir']);
    assert.deepEqual(await readdir(blocker), ['keep']);
  });

  test('read errors name the file', async () => {
    const missing = join(dir, 'missing.safetensors');
    await assert.rejects(readSafetensors(missing), (e: unknown) => e instanceof SafetensorsError && e.file === missing && e.message.startsWith(`${missing}: cannot read file`) && (e.cause as NodeJS.ErrnoException).code === 'ENOENT');
    assert.throws(() => readSafetensorsSync(missing), (e: unknown) => e instanceof SafetensorsError && e.file === missing);
    const corrupt = join(dir, 'corrupt.safetensors');
    const good = encodeSafetensors(sampleTensors());
    await writeFile(corrupt, good.subarray(0, good.length - 1));
    await assert.rejects(readSafetensors(corrupt), (e: unknown) => e instanceof SafetensorsError && e.message.startsWith(`${corrupt}: `) && /trailing|out of range/.test(e.message));
    assert.throws(() => readSafetensorsSync(corrupt), (e: unknown) => e instanceof SafetensorsError && e.file === corrupt);
  });
});

// ---------------------------------------------------------------------------
// interop with the reference implementation
// ---------------------------------------------------------------------------

function pythonSafetensorsAvailable(): boolean {
  const r = spawnSync('python3', ['-c', 'import safetensors, torch'], { stdio: 'ignore', timeout: 60_000 });
  return r.status === 0;
}

function runPython(script: string, ...args: string[]): string {
  const r = spawnSync('python3', ['-c', script, ...args], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, `python failed: ${r.stderr}`);
  return r.stdout;
}

test('interop with Python safetensors', { timeout: 300_000 }, (t) => {
  if (!pythonSafetensorsAvailable()) {
    t.skip('python safetensors not available');
    return;
  }

  // One Python process (importing torch is the slow part) loads our file and
  // writes one of its own. The reference writer orders data by alignment, not
  // by name, so reading it back also covers header order != data order.
  const ours = join(dir, 'from-ts.safetensors');
  const theirs = join(dir, 'from-py.safetensors');
  writeSafetensorsSync(ours, sampleTensors(), { format: 'pt', source: 'bnn-torch' });
  const loaded = JSON.parse(
    runPython(
      `
import json, sys, torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
ts = load_file(sys.argv[1])
with safe_open(sys.argv[1], framework="pt") as f:
    meta = f.metadata()
def vals(t):
    if t.dtype == torch.int64:
        return [str(v) for v in t.flatten().tolist()]
    if t.dtype == torch.bool:
        return [bool(v) for v in t.flatten().tolist()]
    return t.flatten().double().tolist()
print(json.dumps({"meta": meta, "tensors": {k: {"dtype": str(v.dtype), "shape": list(v.shape), "values": vals(v)} for k, v in ts.items()}}))
save_file({
    "w": torch.tensor([[1.0, -2.0], [0.5, 4.0]], dtype=torch.float32),
    "d": torch.tensor([0.25], dtype=torch.float64),
    "n": torch.tensor(7, dtype=torch.int64),
    "b": torch.tensor([True, False]),
    "h": torch.tensor([1.0, -2.5], dtype=torch.float16),
    "bf": torch.tensor([1.0, -2.5, 0.15625], dtype=torch.bfloat16),
    "i8": torch.tensor([-3, 3], dtype=torch.int8),
    "z": torch.zeros((0, 4), dtype=torch.float32),
}, sys.argv[2], metadata={"format": "pt", "who": "python"})
`,
      ours,
      theirs,
    ),
  ) as { meta: Record<string, string>; tensors: Record<string, { dtype: string; shape: number[]; values: unknown[] }> };

  // Ours -> Python.
  assert.deepEqual(loaded.meta, { format: 'pt', source: 'bnn-torch' });
  const expect: Record<string, [string, number[], unknown[]]> = {
    'fc.weight': ['torch.float32', [2, 3], [1.5, -2, 3.25, 0, -0.5, Math.fround(1e-3)]],
    'fc.bias': ['torch.float64', [2], [Math.PI, -Math.E]],
    step: ['torch.int64', [], ['123456789012345']],
    counts: ['torch.int32', [2, 2], [-1, 0, 2147483647, -2147483648]],
    i16: ['torch.int16', [3], [-32768, 7, 32767]],
    i8: ['torch.int8', [3, 1], [-128, 0, 127]],
    u8: ['torch.uint8', [2], [0, 255]],
    mask: ['torch.bool', [3], [true, false, true]],
    half: ['torch.float16', [2], [1, -2.5]],
    brain: ['torch.bfloat16', [1, 3], [1, -2.5, 0.15625]],
    empty: ['torch.float32', [0, 3], []],
  };
  assert.deepEqual(Object.keys(loaded.tensors).sort(), Object.keys(expect).sort());
  for (const [name, [dtype, shape, values]] of Object.entries(expect)) {
    const got = loaded.tensors[name]!;
    assert.equal(got.dtype, dtype, name);
    assert.deepEqual(got.shape, shape, name);
    assert.deepEqual(got.values, values, name);
  }

  // Python -> ours.
  const f = readSafetensorsSync(theirs);
  assert.deepEqual(f.metadata, { format: 'pt', who: 'python' });
  const get = (name: string) => {
    const t = f.tensors.get(name);
    assert.ok(t, name);
    return t;
  };
  assert.deepEqual(get('w').shape, [2, 2]);
  assert.deepEqual([...(toTypedArray(get('w')) as Float32Array)], [1, -2, 0.5, 4]);
  assert.deepEqual([...(toTypedArray(get('d')) as Float64Array)], [0.25]);
  assert.deepEqual(get('n').shape, []);
  assert.deepEqual([...(toTypedArray(get('n')) as BigInt64Array)], [7n]);
  assert.equal(get('b').dtype, 'BOOL');
  assert.deepEqual([...get('b').data], [1, 0]);
  assert.deepEqual([...(toTypedArray(get('h')) as Uint16Array)], [0x3c00, 0xc100]);
  assert.deepEqual([...(toTypedArray(get('bf')) as Uint16Array)], [0x3f80, 0xc020, 0x3e20]);
  assert.deepEqual([...(toTypedArray(get('i8')) as Int8Array)], [-3, 3]);
  assert.deepEqual(get('z').shape, [0, 4]);
  assert.equal(get('z').data.byteLength, 0);
});
