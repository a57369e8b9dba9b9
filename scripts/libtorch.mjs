// LibTorch discovery, shared by the addon build (scripts/build-addon.mjs) and `bnn info`.
//
// Order (first that works wins), so a user can always override an automatic choice:
//   1. LIBTORCH (a LibTorch folder) or Torch_DIR (its share/cmake/Torch)
//   2. an installed Python PyTorch (torch.utils.cmake_prefix_path)
//   3. the package's own cache, .libtorch/
//   4. fetch the pinned CPU wheel with `pip download` and unpack it into .libtorch/
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const cacheDir = path.join(packageRoot, '.libtorch');

/** The pinned LibTorch version fetched when nothing else is found (package.json config.libtorchVersion). */
export function pinnedVersion() {
  const pkg = JSON.parse(fs.readFileSync(path.join(packageRoot, 'package.json'), 'utf8'));
  return process.env.BNN_LIBTORCH_VERSION || pkg.config?.libtorchVersion || '2.13.0';
}

const HOW_TO_PROVIDE = [
  'bnn-torch could not find LibTorch. Provide one of:',
  '  1. LIBTORCH=/path/to/libtorch (a folder with include/, lib/, share/cmake/Torch) or Torch_DIR=/path/to/share/cmake/Torch;',
  '  2. an installed PyTorch for python3 (pip install torch), or PYTHON=/path/to/python with one;',
  `  3. a LibTorch unpacked into ${cacheDir} (include/, lib/, share/), which the build fills itself with`,
  '     `pip download --no-deps torch==<version>` when pip can reach a package index.',
].join('\n');

export class LibTorchNotFoundError extends Error {
  constructor(details) {
    super(`${HOW_TO_PROVIDE}\nTried:\n${details.map((d) => `  - ${d}`).join('\n')}`);
    this.name = 'LibTorchNotFoundError';
  }
}

/** Describe a LibTorch root (the folder holding include/, lib/, share/), or return a reason it is not one. */
export function describeRoot(root, source) {
  const torchDir = path.join(root, 'share', 'cmake', 'Torch');
  for (const need of [path.join(root, 'include', 'torch'), path.join(root, 'lib'), path.join(torchDir, 'TorchConfig.cmake')]) {
    if (!fs.existsSync(need)) return { error: `${source}: ${root} has no ${path.relative(root, need)}` };
  }
  const libDir = path.join(root, 'lib');
  const libs = fs.readdirSync(libDir);
  if (!libs.some((f) => /^libtorch_cpu\.(so|dylib)|^torch_cpu\.dll$/.test(f))) {
    return { error: `${source}: ${libDir} holds no torch_cpu library` };
  }
  return {
    source,
    root,
    torchDir,
    libDir,
    version: readVersion(root),
    cuda: libs.some((f) => /^libtorch_cuda\.(so|dylib)|^torch_cuda\.dll$/.test(f)),
  };
}

function readVersion(root) {
  const header = path.join(root, 'include', 'torch', 'csrc', 'api', 'include', 'torch', 'version.h');
  try {
    const m = /#define\s+TORCH_VERSION\s+"([^"]+)"/.exec(fs.readFileSync(header, 'utf8'));
    if (m) return m[1];
  } catch {}
  try {
    const cfg = fs.readFileSync(path.join(root, 'share', 'cmake', 'Torch', 'TorchConfigVersion.cmake'), 'utf8');
    const m = /PACKAGE_VERSION\s+"([^"]+)"/.exec(cfg);
    if (m) return m[1];
  } catch {}
  return 'unknown';
}

function pythonCandidates() {
  return [process.env.PYTHON, 'python3', 'python'].filter(Boolean);
}

function fromEnv(tried) {
  if (process.env.LIBTORCH) {
    const d = describeRoot(path.resolve(process.env.LIBTORCH), 'LIBTORCH');
    if (!d.error) return d;
    throw new LibTorchNotFoundError([d.error]); // an explicit choice that is wrong must not be silently replaced
  }
  if (process.env.Torch_DIR) {
    const root = path.resolve(process.env.Torch_DIR, '..', '..', '..');
    const d = describeRoot(root, 'Torch_DIR');
    if (!d.error) return d;
    throw new LibTorchNotFoundError([d.error]);
  }
  tried.push('LIBTORCH / Torch_DIR: not set');
  return null;
}

function fromPython(tried) {
  for (const py of pythonCandidates()) {
    const r = spawnSync(py, ['-c', 'import torch, torch.utils; print(torch.utils.cmake_prefix_path)'], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    if (r.error || r.status !== 0) {
      tried.push(`python PyTorch (${py}): ${r.error ? r.error.message : (r.stderr.trim().split('\n').pop() ?? 'failed')}`);
      continue;
    }
    const prefix = r.stdout.trim().split('\n').pop();
    const d = describeRoot(path.resolve(prefix, '..', '..'), `python PyTorch (${py})`);
    if (!d.error) return d;
    tried.push(d.error);
  }
  return null;
}

function fromCache(tried) {
  if (!fs.existsSync(cacheDir)) {
    tried.push(`cache: ${cacheDir} does not exist`);
    return null;
  }
  const d = describeRoot(cacheDir, 'cache');
  if (!d.error) return d;
  tried.push(d.error);
  return null;
}

function fetchWheel(tried, log) {
  const version = pinnedVersion();
  for (const py of pythonCandidates()) {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bnn-libtorch-'));
    try {
      log(`bnn-torch: fetching LibTorch ${version} (CPU wheel) with ${py} -m pip download ...`);
      const r = spawnSync(py, ['-m', 'pip', 'download', '--no-deps', '--only-binary=:all:', '-d', tmp, `torch==${version}`], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
        timeout: 30 * 60_000,
      });
      if (r.error || r.status !== 0) {
        tried.push(`pip download torch==${version} (${py}): ${r.error ? r.error.message : r.stderr.trim().split('\n').pop()}`);
        continue;
      }
      const wheel = fs.readdirSync(tmp).find((f) => f.endsWith('.whl'));
      if (!wheel) {
        tried.push(`pip download torch==${version} (${py}): no wheel was saved`);
        continue;
      }
      // Unpack into a sibling temp folder and rename, so an interrupted fetch never leaves a half cache.
      const staging = `${cacheDir}.partial-${process.pid}`;
      fs.rmSync(staging, { recursive: true, force: true });
      const unpack = [
        'import sys, zipfile, os',
        'whl, dest = sys.argv[1], sys.argv[2]',
        'with zipfile.ZipFile(whl) as z:',
        '    for info in z.infolist():',
        '        n = info.filename',
        "        if not n.startswith(('torch/include/', 'torch/lib/', 'torch/share/')) or n.endswith('/'): continue",
        "        out = os.path.join(dest, n[len('torch/'):])",
        '        os.makedirs(os.path.dirname(out), exist_ok=True)',
        "        with z.open(info) as src, open(out, 'wb') as dst:",
        '            while True:',
        '                b = src.read(1 << 20)',
        '                if not b: break',
        '                dst.write(b)',
        '        mode = (info.external_attr >> 16) & 0o777',
        '        if mode: os.chmod(out, mode)',
      ].join('\n');
      const u = spawnSync(py, ['-c', unpack, path.join(tmp, wheel), staging], { encoding: 'utf8', timeout: 30 * 60_000 });
      if (u.status !== 0) {
        tried.push(`unpacking ${wheel}: ${u.stderr.trim().split('\n').pop()}`);
        fs.rmSync(staging, { recursive: true, force: true });
        continue;
      }
      fs.rmSync(cacheDir, { recursive: true, force: true });
      fs.renameSync(staging, cacheDir);
      const d = describeRoot(cacheDir, `fetched wheel ${wheel}`);
      if (!d.error) return d;
      tried.push(d.error);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  }
  return null;
}

/**
 * Find a LibTorch, in the documented order. Returns
 * { source, root, torchDir, libDir, version, cuda }; throws LibTorchNotFoundError naming the ways to provide one.
 */
export function findLibTorch({ fetch = true, log = (m) => console.error(m) } = {}) {
  const tried = [];
  // BNN_LIBTORCH_FROM narrows or reorders the ways tried, e.g. "cache,fetch" to ignore an installed
  // PyTorch (CI uses it to prove the fetch path).
  const ways = { env: fromEnv, python: fromPython, cache: fromCache, fetch: (t) => (fetch ? fetchWheel(t, log) : null) };
  const order = (process.env.BNN_LIBTORCH_FROM || 'env,python,cache,fetch').split(',').map((w) => w.trim());
  for (const way of order) {
    if (!(way in ways)) throw new Error(`BNN_LIBTORCH_FROM: unknown way '${way}' (use env, python, cache, fetch)`);
  }
  let found = null;
  for (const way of order) {
    found = ways[way](tried);
    if (found) break;
  }
  if (!found) {
    if (!fetch) tried.push('fetching was not allowed');
    throw new LibTorchNotFoundError(tried);
  }
  return found;
}

export function describe(found) {
  return `LibTorch ${found.version} (${found.cuda ? 'CUDA' : 'CPU'}) from ${found.source}: ${found.root}`;
}

// `node scripts/libtorch.mjs` prints what would be used, as JSON.
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  try {
    const found = findLibTorch({ fetch: !process.argv.includes('--no-fetch') });
    console.error(describe(found));
    console.log(JSON.stringify(found, null, 2));
  } catch (e) {
    console.error(e.message);
    process.exit(1);
  }
}
