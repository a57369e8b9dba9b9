// Loads the compiled addon (build/Release or prebuilds/<platform>-<arch>/) lazily, so that
// `bnn --help` and pure-TypeScript helpers work even before the addon is built.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import type { Addon } from './addon.js';
import { bnnError } from '../errors.js';

const require = createRequire(import.meta.url);

/** The package root: the folder holding package.json (two up from src/binding/ or dist/binding/). */
export const packageRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

let addon: Addon | undefined;

/** What scripts/build-addon.mjs recorded about the LibTorch the addon was built against. */
export interface BuildRecord {
  source: string;
  root: string;
  version: string;
  cuda: boolean;
  builtAt: string;
}

/** @internal */
export function readBuildRecord(): BuildRecord | undefined {
  for (const dir of ['Release', 'Debug']) {
    const file = path.join(packageRoot, 'build', dir, 'libtorch.json');
    try {
      return JSON.parse(fs.readFileSync(file, 'utf8')) as BuildRecord;
    } catch {
      // not built in this configuration
    }
  }
  return undefined;
}

/**
 * @internal Loads one of the package's compiled addons by name: build/Release, build/Debug, then
 * prebuilds/<platform>-<arch>/. By name, not node-gyp-build's "first .node in the folder": the
 * package builds two (bnn_torch.node over LibTorch, bnn_infer.node without it).
 */
export function loadAddonFile(name: string): unknown {
  const candidates = [
    path.join(packageRoot, 'build', 'Release', `${name}.node`),
    path.join(packageRoot, 'build', 'Debug', `${name}.node`),
    path.join(packageRoot, 'prebuilds', `${process.platform}-${process.arch}`, `${name}.node`),
  ];
  const found = candidates.find((f) => fs.existsSync(f));
  if (found === undefined) throw new Error(`No native build was found for ${name}.node (looked in ${candidates.map((c) => path.relative(packageRoot, c)).join(', ')})`);
  return require(found);
}

/** @internal The raw binding; throws a clear error when it cannot be loaded. */
export function native(): Addon {
  if (addon) return addon;
  try {
    addon = loadAddonFile('bnn_torch') as Addon;
    return addon;
  } catch (e) {
    const detail = e instanceof Error ? e.message.split('\n')[0] ?? '' : String(e);
    const record = readBuildRecord();
    const hint = /No native build was found/.test(detail)
      ? 'The native addon is not built: run `npm run build:native` in the package folder (it finds LibTorch itself; see the README).'
      : /lib(torch|c10)[^ ]*\.so/.test(detail)
        ? `The addon could not load its LibTorch libraries${record ? ` (it was built against ${record.root})` : ''}. ` +
          'If that LibTorch moved or was uninstalled, rebuild with `npm run build:native`.'
        : 'Rebuild the addon with `npm run build:native`.';
    throw bnnError(`bnn-torch could not load its native addon: ${detail}\n${hint}`, 'BNN_ADDON_NOT_LOADED');
  }
}
