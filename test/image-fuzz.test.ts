// Fuzzes the image decoders. Natively: native/image/tests/run-fuzz.sh builds the image core and
// its mutation fuzzer with AddressSanitizer + UBSan and runs thousands of damaged JPEGs, PNGs and
// prepared stores through probe, decode, the transforms and store preparation (a sanitizer report
// or any exception other than bnn::Error fails it). From JavaScript: a few hundred damaged files
// through imageInfo / decodeImage / renderImage and through a streamed DataLoader over a folder of
// them. Every case must succeed with sane output or fail cleanly with code BNN_IO: never a crash,
// a hang, or another kind of error.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { packageRoot } from '../src/binding/native.js';
import { DataLoader, Dataset, decodeImage, imageInfo, isBnnError, renderImage, type ImageTransformOptions } from '../src/index.js';
import { prng, tempDir } from './support/data-files.js';
import { fuzzSeeds, need, put, pythonProblem } from './support/images.js';

const SEED = Number(process.env.BNN_FUZZ_SEED ?? 20240917);
const FOLDER_FILES = 96;

/** Why the sanitizer build cannot run here: g++, the sanitizer runtimes or a library missing. */
function nativeFuzzProblem(): string | undefined {
  const dir = tempDir('fuzz-probe');
  const src = path.join(dir, 'probe.cpp');
  fs.writeFileSync(src, '#include <cstdio>\n#include <turbojpeg.h>\n#include <jpeglib.h>\n#include <spng.h>\n#include <zlib.h>\nint main() { return tjInitDecompress() == nullptr; }\n');
  const r = spawnSync('g++', ['-std=c++17', '-fsanitize=address,undefined', src, '-o', path.join(dir, 'probe'), '-lturbojpeg', '-ljpeg', '-lspng', '-lz'], { encoding: 'utf8' });
  if (r.error) return `g++ is not available (${r.error.message})`;
  if (r.status !== 0) {
    return `cannot build against libjpeg-turbo / libspng / zlib with the sanitizers (apt-get install g++ libturbojpeg0-dev libjpeg62-turbo-dev libspng-dev zlib1g-dev): ${r.stderr.split('\n').slice(0, 3).join(' ')}`;
  }
  return undefined;
}

test('the image core survives its mutation fuzzer under AddressSanitizer and UBSan', { timeout: 300_000 }, async (t) => {
  if (!need(t, nativeFuzzProblem())) return;
  // About 10 s to compile and 1.3 ms a case on a 2-core machine: 10000 cases take ~25 s.
  const cases = Number(process.env.BNN_IMAGE_FUZZ_CASES ?? 10000);
  // Pillow-written files (palette, grey + alpha, 16-bit PNGs; CMYK JPEG) join the driver's own
  // libjpeg-turbo / libspng seeds when Python is here; the driver requires each seed to decode.
  const seeds = pythonProblem(['PIL', 'numpy']) === undefined ? fuzzSeeds() : [];
  const build = tempDir('fuzz-build');
  const started = performance.now();
  const { code, signal, out } = await new Promise<{ code: number | null; signal: string | null; out: string }>((resolve, reject) => {
    const child = spawn('sh', [path.join(packageRoot, 'native/image/tests/run-fuzz.sh'), String(cases), ...seeds], {
      env: { ...process.env, TMPDIR: build },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let text = '';
    child.stdout.on('data', (d: Buffer) => (text += d.toString()));
    child.stderr.on('data', (d: Buffer) => (text += d.toString()));
    child.on('error', reject);
    child.on('close', (c, s) => resolve({ code: c, signal: s, out: text }));
  });
  const seconds = (performance.now() - started) / 1000;
  assert.equal(code, 0, `run-fuzz.sh exited with ${code ?? signal}:\n${out.slice(-6000)}`);
  const m = /fuzz_image: (\d+) image cases over (\d+) seeds: (\d+) calls succeeded, (\d+) rejected with bnn::Error; (\d+) store cases: (\d+) opened and read, (\d+) rejected/.exec(out);
  assert.ok(m, `the driver reports its counts:\n${out.slice(-3000)}`);
  const [imageCases, seedCount, ok, rejected, storeCases, storeOk, storeRejected] = m.slice(1).map(Number) as number[];
  assert.equal(imageCases, cases);
  assert.ok(seedCount! >= 16 + seeds.length, `seeds: ${seedCount}`);
  // Both outcomes occur, or the mutations are too timid (all decode) or the seeds broken (none do).
  assert.ok(ok! > 0 && rejected! > 0, `image calls: ${ok} succeeded, ${rejected} rejected`);
  assert.ok(storeCases! > 0 && storeOk! > 0 && storeRejected! > 0, `store cases: ${storeCases}: ${storeOk} read, ${storeRejected} rejected`);
  t.diagnostic(`${m[0]} (${seconds.toFixed(1)} s with the build)`);
});

/** A seeded mutation of a JPEG or PNG: byte damage, truncation, junk, and marker / chunk pokes. */
function mutate(bytes: Buffer, rand: () => number): Buffer {
  const int = (n: number) => Math.floor(rand() * n);
  const out = Buffer.from(bytes);
  const png = bytes[0] === 0x89;
  // Headers, markers and chunk fields sit near the start of these small files: aim there often.
  const at = () => (rand() < 0.5 ? int(Math.min(out.length, 200)) : int(out.length));
  switch (int(8)) {
    case 0: {
      for (let i = 0, n = 1 + int(6); i < n; i++) {
        const p = at();
        out[p] = out[p]! ^ (1 << int(8));
      }
      return out;
    }
    case 1: {
      for (let i = 0, n = 1 + int(3); i < n; i++) out[at()] = [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff][int(6)]!;
      return out;
    }
    case 2:
      return out.subarray(0, int(out.length));
    case 3: {
      const p = at();
      return Buffer.concat([out.subarray(0, p), Buffer.from(Array.from({ length: 1 + int(32) }, () => int(256))), out.subarray(p)]);
    }
    case 4: {
      const p = at();
      return Buffer.concat([out.subarray(0, p), out.subarray(p + 1 + int(64))]);
    }
    case 5: {
      // Duplicate a run (repeated markers or chunks).
      const p = at();
      const n = 1 + int(128);
      return Buffer.concat([out.subarray(0, p + n), out.subarray(p, p + n), out.subarray(p + n)]);
    }
    case 6: {
      // A 16- or 32-bit field right after a marker (JPEG: segment length, SOF sizes) or in a
      // chunk (PNG: length, IHDR width / height / depth / colour type) set to an edge value.
      const offsets: number[] = [];
      if (png) {
        for (let p = 8; p + 8 <= out.length; ) {
          offsets.push(p, p + 8, p + 12, p + 16);
          p += 12 + out.readUInt32BE(p);
          if (offsets.length > 40) break;
        }
      } else {
        for (let p = 0; p + 1 < out.length && offsets.length < 60; p++) if (out[p] === 0xff && out[p + 1]! >= 0xc0 && out[p + 1]! <= 0xfe) offsets.push(p + 2, p + 5, p + 7);
      }
      const p = offsets.length > 0 ? offsets[int(offsets.length)]! : at();
      const v = [0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0x7fffffff, 0xffffffff][int(11)]!;
      if (rand() < 0.5 && p + 2 <= out.length) out.writeUInt16BE(v & 0xffff, p);
      else if (p + 4 <= out.length) out.writeUInt32BE(v >>> 0, p);
      return out;
    }
    default: {
      // Overwrite a run with bytes from elsewhere in the file (a spliced segment).
      const from = int(out.length);
      const to = at();
      const n = Math.min(1 + int(64), out.length - from, out.length - to);
      out.copy(out, to, from, from + n);
      return out;
    }
  }
}

function assertIo(e: unknown, what: string): void {
  assert.ok(e instanceof Error && isBnnError(e), `${what}: not a bnn error: ${e instanceof Error ? e.stack : String(e)}`);
  assert.equal(e.code, 'BNN_IO', `${what}: ${e.message}`);
}

test('damaged JPEGs and PNGs decode or fail with BNN_IO, in decodeImage and in a streamed DataLoader', { timeout: 180_000 }, async (t) => {
  if (!need(t, pythonProblem(['PIL', 'numpy']))) return;
  const seeds = fuzzSeeds().map((f) => ({ name: path.basename(f), bytes: fs.readFileSync(f) }));
  assert.ok(seeds.length >= 10);
  const cases = Number(process.env.BNN_FUZZ_CASES ?? 2000);
  const rand = prng(SEED);
  const outcomes = { decoded: 0, rejected: 0 };
  const train: ImageTransformOptions = { mode: 'train', size: 16, rotation: 10, colorJitter: 0.3 };
  const started = performance.now();
  for (let i = 0; i < cases; i++) {
    const seed = seeds[i % seeds.length]!;
    const bytes = mutate(seed.bytes, rand);
    const what = `case ${i} (${seed.name}, ${bytes.length} bytes)`;
    let header: ReturnType<typeof imageInfo> | undefined;
    try {
      header = imageInfo(bytes);
    } catch (e) {
      assertIo(e, `${what}: imageInfo`);
    }
    const channels = i % 3 === 0 ? 1 : 3;
    try {
      const d = await decodeImage(bytes, { channels });
      assert.ok(header, `${what}: decoded although imageInfo rejected the header`);
      assert.deepEqual([d.width, d.height, d.channels, d.data.length], [header.width, header.height, channels, header.width * header.height * channels], what);
      outcomes.decoded++;
      // What decodes must also render, in both modes, at the requested size.
      for (const transform of [train, { mode: 'eval', size: 12, resize: 14 } as const]) {
        const r = await renderImage(bytes, transform, { channels, seed: i, sample: i });
        assert.equal(r.data.length, r.width * r.height * channels, what);
      }
    } catch (e) {
      if (e instanceof assert.AssertionError) throw e;
      assertIo(e, `${what}: decodeImage`);
      outcomes.rejected++;
    }
  }
  const decodeSeconds = (performance.now() - started) / 1000;
  assert.ok(outcomes.decoded > cases / 20 && outcomes.rejected > cases / 5, `decoded ${outcomes.decoded}, rejected ${outcomes.rejected}`);

  // A folder of damaged files, loaded with skipBad: bad headers are left out when the dataset is
  // built, and a sample whose body fails to decode is stood in for by the next sample that
  // decodes (its bytes rendered with its own index) and listed in `skipped`. So every sample of
  // the loader is exactly what renderImage gives for the first decodable file at or after it.
  const root = tempDir('fuzz-folder');
  const files: string[] = [];
  for (let i = 0; i < FOLDER_FILES; i++) {
    const seed = seeds[i % seeds.length]!;
    const ext = seed.name.endsWith('.png') ? 'png' : 'jpg';
    files.push(put(root, `c${i % 3}/${String(i).padStart(3, '0')}.${ext}`, mutate(seed.bytes, rand)));
  }
  files.sort(); // dataset order: by class folder, then by (zero-padded) name
  const transform: ImageTransformOptions = { mode: 'eval', size: 12, resize: 14 };
  let ds: Dataset;
  try {
    ds = await Dataset.fromImages(root, { transform, skipBad: true, workers: 2 });
  } catch (e) {
    assertIo(e, 'the folder'); // only when every file is bad, which so many mutations make unlikely
    assert.fail(`every one of ${FOLDER_FILES} damaged files was rejected: ${(e as Error).message}`);
  }
  using dataset = ds;
  const headerSkipped = dataset.skipped.length;
  const kept = files.filter((f) => !dataset.skipped.some((s) => s.file === f));
  assert.equal(dataset.size, kept.length);
  const expected: (Uint8Array | undefined)[] = [];
  for (let k = 0; k < kept.length; k++) {
    expected.push(
      await renderImage(fs.readFileSync(kept[k]!), transform, { sample: k }).then(
        (r) => r.data,
        (e: unknown) => {
          assertIo(e, `renderImage ${kept[k]}`);
          return undefined;
        },
      ),
    );
  }
  using loader = DataLoader.forEval(dataset, { batchSize: 1, normalize: false, workers: 2 });
  const loaderOutcomes = { ok: 0, stoodIn: 0 };
  let k = 0;
  for await (const batch of loader.epoch(0)) {
    const got = Uint8Array.from(batch.images.toFloat32Array(), (v) => Math.round(v * 255));
    batch.dispose();
    let j = k;
    while (expected[j % kept.length] === undefined) j++;
    const want = expected[j % kept.length]!;
    // renderImage is HWC, the loader CHW.
    const c = 3;
    const n = got.length / c;
    for (let p = 0; p < n; p++) for (let ch = 0; ch < c; ch++) assert.equal(got[ch * n + p], want[p * c + ch], `${kept[k]} (stood in for by ${kept[j % kept.length]}) pixel ${p}`);
    if (j === k) loaderOutcomes.ok++;
    else loaderOutcomes.stoodIn++;
    k++;
  }
  assert.equal(k, kept.length);
  const corrupt = kept.filter((_, i) => expected[i] === undefined).sort();
  assert.deepEqual(dataset.skipped.slice(headerSkipped).map((s) => s.file).sort(), corrupt, 'every body that failed to decode is listed in skipped');
  t.diagnostic(
    `seed ${SEED}: ${cases} damaged files in ${decodeSeconds.toFixed(1)} s: ${outcomes.decoded} decoded (and rendered), ${outcomes.rejected} rejected with BNN_IO; ` +
      `folder of ${FOLDER_FILES}: ${headerSkipped} skipped by header, ${loaderOutcomes.ok} loaded, ${loaderOutcomes.stoodIn} stood in for (corrupt body)`,
  );
});
