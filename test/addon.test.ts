import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { getNumThreads, libtorchInfo, setNumThreads } from '../src/index.js';
import { packageRoot } from '../src/binding/native.js';

test('the addon loads and reports the LibTorch it was built against', () => {
  const info = libtorchInfo();
  const record = JSON.parse(fs.readFileSync(path.join(packageRoot, 'build/Release/libtorch.json'), 'utf8')) as {
    version: string;
    root: string;
    source: string;
  };
  assert.equal(info.version, record.version);
  assert.match(info.version, /^\d+\.\d+\.\d+/);
  assert.equal(info.root, record.root);
  assert.ok(fs.existsSync(path.join(info.root, 'lib')), `LibTorch root ${info.root} exists`);
  assert.ok(info.source.length > 0);
  assert.equal(typeof info.cudaAvailable, 'boolean');
  if (!info.cudaAvailable) assert.equal(info.cudaDeviceCount, 0);
});

test('the addon finds LibTorch by RPATH, not LD_LIBRARY_PATH', () => {
  assert.ok(!(process.env.LD_LIBRARY_PATH ?? '').includes(libtorchInfo().root), 'test runs without LD_LIBRARY_PATH to LibTorch');
});

test('thread count can be set and read back', () => {
  const before = getNumThreads();
  setNumThreads(1);
  assert.equal(getNumThreads(), 1);
  setNumThreads(before);
  assert.equal(getNumThreads(), before);
  assert.throws(() => setNumThreads(0), RangeError);
  assert.throws(() => setNumThreads(1.5), TypeError);
});
