#!/usr/bin/env node
// Builds the native addon with cmake-js against the LibTorch that scripts/libtorch.mjs finds,
// and records that choice in build/Release/libtorch.json so the package can say what it runs on.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { describe, findLibTorch, packageRoot } from './libtorch.mjs';

const require = createRequire(import.meta.url);
const args = process.argv.slice(2);
const debug = args.includes('--debug');

let found;
try {
  found = findLibTorch();
} catch (e) {
  console.error(e.message);
  process.exit(1);
}
console.error(`bnn-torch: building against ${describe(found)}`);

const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
const jobs = Number(process.env.BNN_BUILD_JOBS) || Math.max(1, os.availableParallelism?.() ?? os.cpus().length);
const cmakeArgs = [
  cmakeJs,
  // 'build', not 'compile': compile retries a failed build from scratch, doubling a long failure.
  'build',
  '--directory', packageRoot,
  '--parallel', String(jobs),
  `--CDTorch_DIR=${found.torchDir}`,
  `--CDBNN_LIBTORCH_SOURCE=${found.source}`,
  ...(debug ? ['--debug'] : []),
  ...(process.env.BNN_CUDA === '0' ? ['--CDBNN_WITH_CUDA=OFF'] : []),
  // Extra CMake settings, e.g. --CDCMAKE_CUDA_ARCHITECTURES=90 to compile for one GPU only.
  ...args.filter((a) => a.startsWith('--CD')),
];
const r = spawnSync(process.execPath, cmakeArgs, { stdio: 'inherit', cwd: packageRoot });
if (r.status !== 0) {
  console.error(`bnn-torch: the native build failed (cmake-js exited with ${r.status ?? r.signal}).`);
  process.exit(r.status || 1);
}
const outDir = path.join(packageRoot, 'build', debug ? 'Debug' : 'Release');
const info = { ...found, builtAt: new Date().toISOString() };
const tmp = path.join(outDir, `libtorch.json.${process.pid}.tmp`);
fs.writeFileSync(tmp, JSON.stringify(info, null, 2) + '\n');
fs.renameSync(tmp, path.join(outDir, 'libtorch.json'));
console.error(`bnn-torch: addon built in ${path.relative(packageRoot, outDir)} (${describe(found)})`);
