// The `bnn` command line end to end, on small IDX files the test writes itself.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { cudaAvailable } from '../src/index.js';
import { packageRoot } from '../src/native.js';
import { randomImageSet, tempDir, writeIdxSplit } from './data-files.js';

const BNN = path.join(packageRoot, 'src', 'cli', 'bnn.ts');

function bnn(args: string[], options: { cwd?: string } = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', BNN, ...args], { encoding: 'utf8', cwd: options.cwd ?? packageRoot, timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function fakeFashionMnist(train = 320, testN = 96): string {
  const dir = tempDir('bnn-cli-data');
  writeIdxSplit(dir, 'train', randomImageSet(train, 1, 28, 28, 10, 1), true);
  writeIdxSplit(dir, 'test', randomImageSet(testN, 1, 28, 28, 10, 2), true);
  return dir;
}

const QUICK = ['--epochs', '1', '--width', '4', '--batch-size', '64', '--no-progress', '--seed', '1'];

test('--help lists the commands; every command has --help', () => {
  const r = bnn(['--help']);
  assert.equal(r.status, 0, r.stderr);
  for (const c of ['train', 'eval', 'summary', 'export', 'info']) assert.match(r.stdout, new RegExp(`bnn ${c}`));
  for (const c of ['train', 'eval', 'summary', 'export', 'info']) {
    const h = bnn([c, '--help']);
    assert.equal(h.status, 0, `${c} --help: ${h.stderr}`);
  }
  assert.match(bnn(['train', '--help']).stdout, /--weight-decay1[\s\S]*--resume/);
});

test('bnn info says which LibTorch was found and where', () => {
  const r = bnn(['info']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /LibTorch\s+\d+\.\d+\.\d+ \((CPU|CUDA) build\)\n\s+found by .+\n\s+at\s+\//);
});

test('user errors exit non-zero with a one-line reason', () => {
  const cases: [string[], RegExp, number][] = [
    [['train', '--bogus'], /Unknown argument: bogus/, 2],
    [['train', '--device', 'cuda', '--data', '/nonexistent'], /CUDA is not available/, 1],
    [['train', '--data', '/nonexistent/fmnist'], /fashion-mnist not found: \/nonexistent\/fmnist does not exist; install Debian's dataset-fashion-mnist package .* or pass --data/, 1],
    [['train', '--lr', '0.1'], /--lr applies to one stage: use --lr1 \/ --lr2/, 2],
    [['train', '--stage', '2'], /--stage 2 needs --init/, 2],
    [['train', '--resume'], /--resume needs --out/, 2],
    [['eval'], /Missing required argument: checkpoint/, 2],
    [['frobnicate'], /Unknown argument: frobnicate|Did you mean/, 2],
  ];
  for (const [args, msg, code] of cases) {
    if (args.includes('cuda') && cudaAvailable()) continue; // only meaningful without CUDA
    const r = bnn(args);
    assert.equal(r.status, code, `${args.join(' ')}: exit ${r.status}, stderr ${r.stderr}`);
    assert.match(r.stderr, msg, args.join(' '));
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
});

test('train -> run directory with metrics, checkpoints and report; eval, export, summary read its weights', () => {
  const data = fakeFashionMnist();
  const out = path.join(tempDir('bnn-cli-run'), 'run');
  const r = bnn(['train', '--data', data, '--out', out, ...QUICK]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /stage 1 epoch 1\/1: train loss/);
  assert.match(r.stderr, /final test accuracy \d+\.\d+%/);
  for (const f of ['config.json', 'metrics.jsonl', 'summary.txt', 'checkpoint.safetensors', 'stage1.safetensors', 'final.safetensors', 'report.html']) {
    assert.ok(fs.existsSync(path.join(out, f)), `${f} exists`);
  }
  const lines = fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string; stage?: number });
  assert.deepEqual(lines.map((l) => `${l.type}${l.stage ?? ''}`), ['epoch1', 'epoch2', 'final']);
  const report = fs.readFileSync(path.join(out, 'report.html'), 'utf8');
  assert.match(report, /final-test-accuracy/);

  const e = bnn(['eval', '--checkpoint', path.join(out, 'final.safetensors'), '--data', data]);
  assert.equal(e.status, 0, e.stderr);
  assert.match(e.stdout, /accuracy \d+\.\d+%, loss \d/);
  assert.match(e.stdout, /Ankle boot/);

  const x = bnn(['export', '--checkpoint', path.join(out, 'checkpoint.safetensors'), '--out', path.join(out, 'export.safetensors')]);
  assert.equal(x.status, 0, x.stderr);
  assert.ok(fs.existsSync(path.join(out, 'export.config.json')));

  const s = bnn(['summary', '--checkpoint', path.join(out, 'final.safetensors')]);
  assert.equal(s.status, 0, s.stderr);
  assert.match(s.stdout, /width 4, double skip, 1-bit activations, 1-bit weights/);
});

test('Ctrl-C saves a checkpoint and exits 130; --resume finishes the run', async () => {
  const data = fakeFashionMnist(640, 64);
  const out = path.join(tempDir('bnn-cli-int'), 'run');
  const args = ['train', '--data', data, '--out', out, '--epochs', '1', '--width', '4', '--batch-size', '16', '--no-progress', '--seed', '1'];
  const child = spawn(process.execPath, ['--import', 'tsx', BNN, ...args], { cwd: packageRoot });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
    if (/-> /.test(stderr) && !child.killed) setTimeout(() => child.kill('SIGINT'), 1500);
  });
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  assert.equal(code, 130, stderr);
  assert.match(stderr, /interrupted in stage \d, epoch \d, after batch \d+; checkpoint saved/);
  assert.match(stderr, /resume with: bnn train --resume --out /);
  const r = bnn(['train', '--resume', '--out', out, '--no-progress']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /final test accuracy/);
});

test('examples/two-stage.ts runs against the public API with a tiny config', () => {
  const data = fakeFashionMnist(192, 64);
  const cwd = tempDir('bnn-example');
  // Resolved here: the example runs in a temp folder, where a bare 'tsx' would not be found.
  const tsx = import.meta.resolve('tsx');
  const r = spawnSync(process.execPath, ['--import', tsx, path.join(packageRoot, 'examples', 'two-stage.ts')], {
    cwd,
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, EXAMPLE_DATA: data, EXAMPLE_EPOCHS: '1', TSX_TSCONFIG_PATH: path.join(packageRoot, 'tsconfig.test.json') },
  });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /stage 1 epoch 1\/1/);
  assert.match(r.stdout, /final: \d+\.\d+% with 1-bit weights and activations/);
  assert.ok(fs.existsSync(path.join(cwd, 'final.safetensors')));
});
