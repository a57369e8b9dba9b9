// Guards the house (../shared/design/architecture.md, README "Where things are"): one concept, one
// name, three places; imports in src/ point one way with no cycle; only the binding and the concept
// facades call the raw addon; the public surface does not change by accident.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { packageRoot } from '../src/binding/native.js';

const src = path.join(packageRoot, 'src');

function tsFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) return tsFiles(full);
    return e.name.endsWith('.ts') ? [full] : [];
  });
}

/** Relative imports of a file, resolved to .ts paths under src/. */
function importsOf(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/(?:from\s+|import\s*\(\s*|import\s+)['"](\.{1,2}\/[^'"]+)['"]/g)) {
    out.push(path.resolve(path.dirname(file), m[1]!).replace(/\.js$/, '.ts'));
  }
  return out;
}

const rel = (f: string): string => path.relative(src, f).split(path.sep).join('/');

// Layers, lowest first; a file may import its own layer or a lower one. data and io are peers.
const LAYER: Record<string, number> = {
  'errors.ts': 0,
  binding: 0,
  core: 1,
  data: 2,
  io: 2,
  image: 2,
  infer: 2,
  nn: 3,
  distributed: 4,
  train: 5,
  report: 6,
  cli: 7,
  // Drives bnn train processes and checks their flags with the command's own parser.
  ablate: 7,
  'index.ts': 8,
};

function layerOf(file: string): number {
  const top = rel(file).split('/')[0]!;
  const layer = LAYER[top];
  assert.notEqual(layer, undefined, `src/${rel(file)} is in no known concept folder: add it to the house (README, this test)`);
  return layer!;
}

test('src/ imports point one way (binding → core → data/io → nn → distributed → train → cli) with no cycle', () => {
  const files = tsFiles(src);
  const graph = new Map(files.map((f) => [f, importsOf(f)]));
  const wrongWay: string[] = [];
  for (const [file, deps] of graph) {
    for (const dep of deps) {
      assert.ok(fs.existsSync(dep), `src/${rel(file)} imports a missing file ${rel(dep)}`);
      if (layerOf(dep) > layerOf(file)) wrongWay.push(`src/${rel(file)} → src/${rel(dep)}`);
    }
  }
  assert.deepEqual(wrongWay, [], 'imports from a higher layer');
  // Depth-first search for a back edge.
  const state = new Map<string, 'open' | 'done'>();
  const cycles: string[] = [];
  const visit = (f: string, trail: string[]): void => {
    if (state.get(f) === 'done') return;
    if (state.get(f) === 'open') {
      cycles.push([...trail.slice(trail.indexOf(f)), f].map(rel).join(' → '));
      return;
    }
    state.set(f, 'open');
    for (const d of graph.get(f) ?? []) visit(d, [...trail, f]);
    state.set(f, 'done');
  };
  for (const f of files) visit(f, []);
  assert.deepEqual(cycles, [], 'import cycles');
});

test('only the binding and the concept facades call native()', () => {
  // Each facade adapts one native/addon/<c>.cpp; anything else goes through a facade.
  const facades = [
    'binding/native.ts',
    'core/tensor.ts', // addon/tensor.cpp
    'core/runtime.ts', // addon/runtime.cpp
    'nn/binarize.ts', // addon/binarize.cpp
    'nn/model.ts', // addon/model.cpp
    'train/loss.ts', // addon/loss.cpp
    'train/mixup.ts', // addon/mixup.cpp
    'train/optim.ts', // addon/train.cpp
    'train/step.ts', // addon/train.cpp
    'data/datasets.ts', // addon/data.cpp
    'data/loader.ts', // addon/data.cpp
    'image/decode.ts', // addon/image.cpp
    'image/store.ts', // addon/image.cpp
    'distributed/process-group.ts', // addon/distributed.cpp
    'distributed/data-parallel.ts', // addon/distributed.cpp
  ];
  const callers = tsFiles(src)
    .filter((f) => /\bnative\(\)/.test(fs.readFileSync(f, 'utf8')))
    .map(rel)
    .sort();
  const outside = callers.filter((f) => !facades.includes(f));
  assert.deepEqual(outside, [], 'files outside the binding and the facades that call native()');
});

test('every binding file has its typed interface in src/binding/ and its core folder in native/', () => {
  const adapters = new Set(['module', 'convert', 'errors', 'async_task']); // the binding's own plumbing
  const bindings = fs
    .readdirSync(path.join(packageRoot, 'native', 'addon'))
    .filter((f) => f.endsWith('.cpp'))
    .map((f) => f.slice(0, -4))
    .filter((c) => !adapters.has(c));
  const missingTypes = bindings.filter((c) => !fs.existsSync(path.join(src, 'binding', `${c}.ts`)));
  assert.deepEqual(missingTypes, [], 'native/addon/<c>.cpp without src/binding/<c>.ts');
  // Concepts named by a native folder have a TypeScript folder of the same name, except binarize,
  // whose two functions are part of the nn facade (src/nn/binarize.ts).
  const nativeConcepts = fs
    .readdirSync(path.join(packageRoot, 'native'), { withFileTypes: true })
    .filter((e) => e.isDirectory() && e.name !== 'addon')
    .map((e) => e.name);
  const without = nativeConcepts.filter((c) => c !== 'binarize' && !fs.existsSync(path.join(src, c)));
  assert.deepEqual(without, [], 'native/<c>/ without src/<c>/');
  assert.ok(fs.existsSync(path.join(src, 'nn', 'binarize.ts')));
});

test('the public API is the recorded one (test/fixtures/public-api.txt)', async () => {
  // @ts-expect-error: a plain .mjs script without types
  const { listPublicApi } = (await import('../scripts/public-api.mjs')) as { listPublicApi(): string[] };
  const expected = fs.readFileSync(path.join(packageRoot, 'test', 'fixtures', 'public-api.txt'), 'utf8').trimEnd().split('\n');
  const actual = listPublicApi();
  const added = actual.filter((l) => !expected.includes(l));
  const removed = expected.filter((l) => !actual.includes(l));
  assert.deepEqual(
    { added, removed },
    { added: [], removed: [] },
    'the public surface changed: if that is intended, run `node scripts/public-api.mjs --write` and say so in the change',
  );
});
