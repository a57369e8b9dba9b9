// The `bnn` command line end to end, on small IDX files the test writes itself.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

import { cudaAvailable, distributedBackends } from '../src/index.js';
import { packageRoot } from '../src/binding/native.js';
import { randomImageSet, tempDir, writeIdxSplit } from './support/data-files.js';

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
  for (const c of ['train', 'eval', 'summary', 'export', 'predict', 'bench-infer', 'info', 'ablate']) assert.match(r.stdout, new RegExp(`bnn ${c}`));
  for (const c of ['train', 'eval', 'summary', 'export', 'predict', 'bench-infer', 'info', 'ablate']) {
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

test('train checks every hyperparameter before it loads data, starts workers or writes a file', () => {
  const data = fakeFashionMnist(64, 16);
  const root = tempDir('bnn-cli-hyper');
  const cases: [string[], RegExp][] = [
    [['--lr1', '-1'], /stage1: baseLr must be .*-1.*\(--lr1\)/],
    [['--stage', '1', '--lr', '0'], /stage1: baseLr must be .*\(--lr1\)/],
    [['--weight-decay2', '-0.5'], /stage2\.weightDecay must be .*\(--weight-decay2\)/],
    [['--epochs1', '0'], /stage1\.epochs must be .*\(--epochs1 or --epochs\)/],
    [['--schedule1', '3', '2'], /milestones must be strictly increasing.*\(--schedule1\)/],
    [['--label-smoothing', '1.5'], /labelSmoothing must be .*\(--label-smoothing\)/],
    [['--mixup', '-0.5'], /stage1\.mixup must be a number >= 0, got -0\.5 \(--mixup\)/],
    [['--warmup-epochs', '1.5'], /stage1: warmupEpochs must be an integer, got 1\.5 \(--warmup-epochs1 or --warmup-epochs\)/],
    [['--warmup-epochs2', '3', '--epochs2', '2'], /stage2\.warmupEpochs must be at most the stage's epochs \(2\), got 3 \(--warmup-epochs2 or --warmup-epochs\)/],
    [['--epochs-scale', '0'], /--epochs-scale: the scale must be/],
    [['--batch-size', '0'], /--batch-size: the batch size must be/],
    [['--batch-size', '100', '--nproc', '3'], /the batch size 100 must divide evenly among 3 processes/],
    [['--width', '2.5'], /--width: the width must be an integer/],
    [['--crop-padding', '-1'], /--crop-padding/],
    [['--rotation', '200'], /--rotation/],
    [['--limit', '0'], /--limit/],
    [['--seed', '-3'], /--seed/],
    [['--threads', '0'], /--threads/],
    [['--dist-timeout', '0'], /--dist-timeout must be positive/],
    [['--block-order', 'bi-real'], /Argument: block-order, Given: "bi-real", Choices: "bn-sign-conv", "sign-conv-bn"/],
    [['--block-activation', 'gelu'], /Argument: block-activation, Given: "gelu", Choices: "prelu", "relu", "none"/],
    [['--downsample', 'maxpool'], /Argument: downsample, Given: "maxpool", Choices: "avgpool", "strided", "binary"/],
  ];
  for (const [i, [flags, msg]] of cases.entries()) {
    const out = path.join(root, flags.join('_'));
    // A few also with data that does not exist: the same refusal shows that nothing loaded first.
    for (const dataDir of i < 3 ? [data, '/nonexistent/fmnist'] : [data]) {
      const r = bnn(['train', '--data', dataDir, '--out', out, '--no-progress', ...flags]);
      const what = `${flags.join(' ')} (--data ${dataDir})`;
      assert.equal(r.status, 2, `${what}: exit ${r.status}, stderr ${r.stderr}`);
      assert.match(r.stderr, msg, what);
      assert.doesNotMatch(r.stderr, /\n\s+at |bnn-torch .* on cpu/, `${what}: no stack trace, no run started`);
      assert.equal(fs.existsSync(out), false, `${what}: the run folder must not be written`);
    }
  }
});

test('train --resume checks the structural switches saved in the run before it writes anything', () => {
  const out = path.join(tempDir('bnn-cli-resume-bad'), 'run');
  fs.mkdirSync(out);
  // A run folder whose saved flags were edited by hand (yargs checked them when the run started).
  for (const [field, flag] of [['blockOrder', '--block-order'], ['blockActivation', '--block-activation'], ['downsample', '--downsample']] as const) {
    fs.writeFileSync(path.join(out, 'config.json'), JSON.stringify({ cli: { [field]: 'bogus' } }));
    const r = bnn(['train', '--resume', '--out', out, '--data', '/nonexistent/fmnist']);
    assert.equal(r.status, 2, `${field}: exit ${r.status}, stderr ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`${flag}: unknown .* 'bogus': expected one of`));
    assert.deepEqual(fs.readdirSync(out), ['config.json'], 'nothing else written');
  }
});

test('train with the ablation switches (Bi-Real order, ReLU, strided shortcut): trains, evaluates, summarises; the packed export refuses it', () => {
  const data = fakeFashionMnist(256, 64);
  const out = path.join(tempDir('bnn-cli-variant'), 'run');
  const r = bnn(['train', '--data', data, '--out', out, '--block-order', 'sign-conv-bn', '--block-activation', 'relu', '--downsample', 'strided',
    '--limit', '200', '--epochs1', '1', '--epochs2', '1', '--width', '4', '--batch-size', '64', '--no-progress', '--seed', '1']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /final test accuracy \d+\.\d+%/);
  const config = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')) as { model: Record<string, unknown>; cli: Record<string, unknown> };
  assert.deepEqual([config.model.blockOrder, config.model.blockActivation, config.model.downsample], ['sign-conv-bn', 'relu', 'strided']);
  assert.equal(config.cli.blockOrder, 'sign-conv-bn', 'the flags are saved for --resume');
  assert.match(fs.readFileSync(path.join(out, 'summary.txt'), 'utf8'), /sign-conv-bn blocks, relu after the add, strided downsample/);
  assert.match(fs.readFileSync(path.join(out, 'report.html'), 'utf8'), /sign-conv-bn/);
  const e = bnn(['eval', '--checkpoint', path.join(out, 'final.safetensors'), '--data', data, '--json']);
  assert.equal(e.status, 0, e.stderr);
  assert.ok((JSON.parse(e.stdout) as { accuracy: number }).accuracy >= 0);
  const s = bnn(['summary', '--checkpoint', path.join(out, 'checkpoint.safetensors')]);
  assert.equal(s.status, 0, s.stderr);
  assert.match(s.stdout, /width 4, double skip, sign-conv-bn blocks, relu after the add, strided downsample, 1-bit activations, 1-bit weights/);
  assert.match(s.stdout, /layer2\.0\.downsample\.0 +Conv2d +32 +\[8, 14, 14\]/);
  assert.doesNotMatch(s.stdout, /prelu|AvgPool2d/);
  const p = bnn(['export', '--checkpoint', path.join(out, 'final.safetensors'), '--packed']);
  assert.equal(p.status, 1, p.stderr);
  assert.match(p.stderr, /the model has blockOrder 'sign-conv-bn'; the packed engine runs only the recipe's structure/);
  assert.doesNotMatch(p.stderr, /\n\s+at /, 'no stack trace');
  assert.equal(fs.existsSync(path.join(out, 'final.packed.safetensors')), false);
});

/** The diagnostics lines of a 1 + 1-epoch run: the 16 binary convolutions each epoch, a flip ratio from the second on. */
function assertDiagnostics(lines: ReadonlyArray<{ type: string; stage?: number }>): void {
  const records = lines.filter((l) => l.type === 'diagnostics') as unknown as Array<{ stage: number; epoch: number; layers: Array<{ layer: string; flipRatio?: number; outsideWindow: number }> }>;
  assert.deepEqual(records.map((d) => [d.stage, d.epoch]), [[1, 0], [2, 0]]);
  records.forEach((d, i) => {
    assert.equal(d.layers.length, 16, 'one entry per binary convolution');
    for (const l of d.layers) {
      assert.match(l.layer, /^layer\d+\.\d+\.conv$/);
      assert.ok(l.outsideWindow >= 0 && l.outsideWindow <= 1, `${l.layer} outsideWindow ${l.outsideWindow}`);
      if (i === 0) assert.equal(l.flipRatio, undefined, 'no flip ratio at the first measurement');
      else assert.ok(l.flipRatio! >= 0 && l.flipRatio! <= 1, `${l.layer} flipRatio ${l.flipRatio}`);
    }
  });
}

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
  assert.deepEqual(lines.map((l) => `${l.type}${l.stage ?? ''}`), ['epoch1', 'epoch2', 'diagnostics1', 'diagnostics2', 'final']);
  assertDiagnostics(lines);
  const report = fs.readFileSync(path.join(out, 'report.html'), 'utf8');
  assert.match(report, /final-test-accuracy/);
  assert.match(report, /<section id="diagnostics"/);
  // Without TensorBoard the run measures the diagnostics itself: the same records.
  const quiet = path.join(path.dirname(out), 'run-no-tb');
  const q = bnn(['train', '--data', data, '--out', quiet, ...QUICK, '--no-tensorboard']);
  assert.equal(q.status, 0, q.stderr);
  assert.ok(!fs.existsSync(path.join(quiet, 'tensorboard')));
  const quietLines = fs.readFileSync(path.join(quiet, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string; stage?: number });
  assert.deepEqual(quietLines.map((l) => `${l.type}${l.stage ?? ''}`), ['epoch1', 'epoch2', 'diagnostics1', 'diagnostics2', 'final']);
  assertDiagnostics(quietLines);
  assert.deepEqual(
    quietLines.filter((l) => l.type === 'diagnostics'),
    lines.filter((l) => l.type === 'diagnostics'),
    'same seed, same weights: the same diagnostics with or without TensorBoard',
  );
  assert.match(fs.readFileSync(path.join(quiet, 'report.html'), 'utf8'), /<section id="diagnostics"/);

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

  // The packed model: its input spec comes from the run's config.json; bnn predict runs it without
  // LibTorch and agrees with bnn eval's LibTorch accuracy.
  const p = bnn(['export', '--checkpoint', path.join(out, 'final.safetensors'), '--packed']);
  assert.equal(p.status, 0, p.stderr);
  assert.match(p.stdout, /packed: .*final\.packed\.safetensors\n\s+[\d.]+ MB against [\d.]+ MB of float32 weights \([\d.]+x smaller\)/);
  const packed = path.join(out, 'final.packed.safetensors');
  const json = path.join(out, 'predictions.json');
  const pr = bnn(['predict', '--model', packed, '--data', data, '--json', json, '--threads', '2']);
  assert.equal(pr.status, 0, pr.stderr);
  const line = /96 images in [\d.]+ s \(\d+ images\/s, (avx512|avx2|baseline|neon), 2 threads, LibTorch not loaded\); accuracy ([\d.]+)% \((\d+)\/96\)/.exec(pr.stdout);
  assert.ok(line, pr.stdout);
  const ev = bnn(['eval', '--checkpoint', path.join(out, 'final.safetensors'), '--data', data, '--json']);
  assert.equal(ev.status, 0, ev.stderr);
  const libtorch = (JSON.parse(ev.stdout) as { accuracy: number }).accuracy;
  assert.ok(Math.abs(Number(line[3]) - Math.round(libtorch * 96)) <= 1, `packed ${line[3]}/96, LibTorch ${libtorch * 96}/96`);
  const saved = JSON.parse(fs.readFileSync(json, 'utf8')) as { predictions: { index: number; label: number; class: number; top: { label?: string }[] }[] };
  assert.equal(saved.predictions.length, 96);
  assert.ok(saved.predictions[0]!.top[0]!.label, 'class names travel in the packed file');
  const refused = bnn(['predict', '--model', path.join(out, 'final.safetensors'), '--data', data]);
  assert.notEqual(refused.status, 0);
  assert.match(refused.stderr, /pack/i);
  assert.doesNotMatch(refused.stderr, /\n\s+at /, 'no stack trace');
});

test('Ctrl-C saves a checkpoint and exits 130; --resume finishes the run', async () => {
  // Long enough (2 x 2 epochs of 1500) that the interrupt lands mid-run on a fast machine too.
  const data = fakeFashionMnist(1500, 64);
  const out = path.join(tempDir('bnn-cli-int'), 'run');
  const args = ['train', '--data', data, '--out', out, '--epochs', '2', '--width', '4', '--batch-size', '16', '--no-progress', '--seed', '1'];
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

const glooSkip = distributedBackends().gloo ? false : 'this build has no Gloo backend';

function waitExit(child: ReturnType<typeof spawn>): Promise<{ code: number | null; seconds: number }> {
  const started = performance.now();
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, seconds: (performance.now() - started) / 1000 })));
}

/** The worker of `rank` among a launcher's children (Linux: read from /proc). */
function workerPid(launcher: number, rank: number): number | undefined {
  const r = spawnSync('pgrep', ['-P', String(launcher)], { encoding: 'utf8' });
  for (const pid of r.stdout.split('\n').filter(Boolean).map(Number)) {
    const env = fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
    if (env.includes(`BNN_LAUNCHED_RANK=${rank}`)) return pid;
  }
  return undefined;
}

test('train --nproc 2: two Gloo workers, rank 0 reports and writes; Ctrl-C stops both at one batch and --resume --nproc 2 finishes', { skip: glooSkip, timeout: 240_000 }, async () => {
  const data = fakeFashionMnist(2000, 64);
  const out = path.join(tempDir('bnn-cli-dist'), 'run');
  const args = ['train', '--nproc', '2', '--data', data, '--out', out, '--epochs', '2', '--width', '4', '--batch-size', '16', '--no-progress', '--seed', '1'];
  // Its own process group, so that SIGINT reaches the workers as a terminal's Ctrl-C would.
  const child = spawn(process.execPath, ['--import', 'tsx', BNN, ...args], { cwd: packageRoot, detached: true });
  let stderr = '';
  let signalled = false;
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
    if (/-> /.test(stderr) && !signalled) {
      signalled = true;
      setTimeout(() => process.kill(-child.pid!, 'SIGINT'), 1500);
    }
  });
  const { code } = await waitExit(child);
  assert.equal(code, 130, stderr);
  assert.match(stderr, /batch 16 \(2 processes x 8, gloo\)/);
  assert.match(stderr, /interrupted in stage \d, epoch \d, after batch \d+; checkpoint saved/);
  assert.doesNotMatch(stderr, /\[rank 1\]/, 'rank 1 stays quiet');
  const r = bnn(['train', '--resume', '--out', out, '--nproc', '2', '--no-progress']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /final test accuracy/);
  const epochs = fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string });
  assert.deepEqual(epochs.map((e) => e.type), ['epoch', 'epoch', 'epoch', 'epoch', 'diagnostics', 'diagnostics', 'diagnostics', 'diagnostics', 'final'], 'one record (and one diagnostics record) per epoch, written by rank 0 only');
});

test('train --nproc 2 --sync-bn: SyncBatchNorm across the workers, recorded in the run', { skip: glooSkip, timeout: 240_000 }, () => {
  const data = fakeFashionMnist(256, 64);
  const out = path.join(tempDir('bnn-cli-syncbn'), 'run');
  const r = bnn(['train', '--nproc', '2', '--sync-bn', '--stage', '1', '--data', data, '--out', out, '--epochs', '1', '--width', '4', '--batch-size', '32', '--no-progress']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /batch 32 \(2 processes x 16, gloo, SyncBatchNorm\)/);
  assert.match(r.stderr, /final test accuracy/);
  const config = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')) as { cli: { syncBn?: boolean } };
  assert.equal(config.cli.syncBn, true, '--resume reads it back from config.json');
});

test('train --nproc 2: a worker killed mid-run ends the run with a clear error, not a hang', { skip: glooSkip || (fs.existsSync('/proc/self/environ') ? false : 'needs /proc'), timeout: 240_000 }, async () => {
  const data = fakeFashionMnist(2000, 64);
  const out = path.join(tempDir('bnn-cli-kill'), 'run');
  const args = ['train', '--nproc', '2', '--data', data, '--out', out, '--epochs', '3', '--width', '4', '--batch-size', '16', '--no-progress', '--dist-timeout', '20'];
  const child = spawn(process.execPath, ['--import', 'tsx', BNN, ...args], { cwd: packageRoot });
  let stderr = '';
  let killedAt = 0;
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
    if (/-> /.test(stderr) && killedAt === 0) {
      killedAt = 1;
      setTimeout(() => {
        const pid = workerPid(child.pid!, 1);
        assert.ok(pid, 'rank 1 worker found');
        killedAt = performance.now();
        process.kill(pid, 'SIGKILL');
      }, 2000);
    }
  });
  const { code } = await waitExit(child);
  const after = (performance.now() - killedAt) / 1000;
  assert.notEqual(code, 0, stderr);
  assert.match(stderr, /rank 0 of 2 \(gloo, 127\.0\.0\.1:\d+\): .* failed/);
  assert.match(stderr, /worker rank 1 of 2 was killed by SIGKILL; the run stopped/);
  assert.ok(after < 20 + 15, `the run ended ${after.toFixed(1)} s after the kill`);
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

test('precision, sync interval and time budget are checked before any work', () => {
  const cases: [string[], RegExp][] = [
    [['train', '--time-budget', 'soon'], /--time-budget: a duration looks like 15m, 900s or 1\.5h, got "soon"/],
    [['train', '--sync-interval', '0'], /--sync-interval must be a whole number >= 1, got 0/],
    [['train', '--precision', 'int8'], /Invalid values:[\s\S]*precision/],
  ];
  if (!cudaAvailable()) cases.push([['train', '--precision', 'bfloat16'], /--precision bfloat16 needs a CUDA device \(--device cuda\)/]);
  cases.push([['train', '--cuda-graph'], /--cuda-graph needs a CUDA device \(--device cuda\)/]);
  for (const [args, msg] of cases) {
    const r = bnn([...args, '--data', '/nonexistent/fmnist']);
    assert.equal(r.status, 2, `${args.join(' ')}: exit ${r.status}, stderr ${r.stderr}`);
    assert.match(r.stderr, msg, args.join(' '));
    assert.doesNotMatch(r.stderr, /not found/, 'refused before the data is looked for');
  }
});

test('train: the ablation switches are checked up front, naming the flag', () => {
  const data = fakeFashionMnist(64, 16);
  const root = tempDir('bnn-cli-ablate');
  const help = bnn(['train', '--help']).stdout;
  for (const flag of ['--optimizer', '--momentum', '--nesterov', '--lr-schedule', '--one-stage', '--mixup', '--warmup-epochs', '--warmup-epochs1', '--warmup-epochs2']) {
    assert.ok(help.includes(flag), `--help lists ${flag}`);
  }
  const cases: [string[], RegExp][] = [
    [['--momentum', '0.9'], /stage1\.momentum and stage1\.nesterov are SGD's: set stage1\.optimizer to 'sgd' \(--momentum/],
    [['--optimizer', 'sgd', '--momentum', '1.5'], /stage1\.momentum must be a number in \[0, 1\), got 1\.5 \(--momentum/],
    [['--optimizer', 'rmsprop'], /Invalid values:[\s\S]*optimizer/],
    [['--lr-schedule', 'linear'], /Invalid values:[\s\S]*lr-schedule/],
    [['--one-stage', '--stage', '1'], /--one-stage trains both stages' epochs in one run: leave out --stage 1/],
    [['--weight-decay', '-1'], /stage1\.weightDecay must be a number >= 0, got -1/],
  ];
  for (const [flags, msg] of cases) {
    const out = path.join(root, flags.join('_'));
    const r = bnn(['train', '--data', data, '--out', out, '--no-progress', ...flags]);
    assert.equal(r.status, 2, `${flags.join(' ')}: exit ${r.status}, stderr ${r.stderr}`);
    assert.match(r.stderr, msg, flags.join(' '));
    assert.equal(fs.existsSync(out), false, `${flags.join(' ')}: the run folder must not be written`);
  }
});

test('train --mixup --warmup-epochs with a per-stage override: the stage options in config.json, the rates in metrics.jsonl', () => {
  const data = fakeFashionMnist();
  const out = path.join(tempDir('bnn-cli-tricks'), 'run');
  const r = bnn(['train', '--data', data, '--out', out, ...QUICK, '--no-tensorboard', '--mixup', '0.3', '--warmup-epochs', '1', '--warmup-epochs2', '0', '--lr1', '0.004']);
  assert.equal(r.status, 0, r.stderr);
  const config = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')) as Record<string, Record<string, unknown>>;
  assert.deepEqual([config.stage1!.mixup, config.stage1!.warmupEpochs, config.stage2!.mixup, config.stage2!.warmupEpochs], [0.3, 1, 0.3, 0]);
  const epochs = fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string; stage?: number; lr?: number }).filter((l) => l.type === 'epoch');
  // Stage 1's first epoch starts at 1/T of its rate (T = its batches); stage 2 has no warm-up.
  assert.ok(epochs[0]!.lr! < 0.004 / 2, `stage 1 warms up from ${epochs[0]!.lr}`);
  assert.equal(epochs.find((l) => l.stage === 2)!.lr, config.stage2!.lr);
});

test('train --one-stage --optimizer sgd --lr-schedule cosine: one stage of 1-bit weights, the options in config.json and the report', () => {
  const data = fakeFashionMnist();
  const out = path.join(tempDir('bnn-cli-one'), 'run');
  const flags = ['--one-stage', '--optimizer', 'sgd', '--momentum', '0.8', '--lr-schedule', 'cosine', '--label-smoothing', '0.1', '--weight-decay', '1e-4', '--lr1', '0.05'];
  const r = bnn(['train', '--data', data, '--out', out, ...QUICK, '--no-tensorboard', ...flags]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /one stage of 1-bit weights from scratch, 2 epochs/);
  // Its epochs are said without a stage (it runs as stage 2 inside), and its end as training's.
  assert.match(r.stderr, /^epoch 2\/2: train loss/m);
  assert.doesNotMatch(r.stderr, /stage \d epoch|stage \d done/);
  assert.match(r.stderr, /^training done: /m);
  const config = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')) as Record<string, Record<string, unknown>>;
  for (const s of ['stage1', 'stage2'] as const) {
    assert.deepEqual([config[s]!.optimizer, config[s]!.momentum, config[s]!.lrSchedule, config[s]!.labelSmoothing, config[s]!.weightDecay], ['sgd', 0.8, 'cosine', 0.1, 1e-4], s);
  }
  assert.deepEqual([config.oneStage!.epochs, config.oneStage!.lr, config.oneStage!.lrSchedule, config.oneStage!.optimizer], [2, 0.05, 'cosine', 'sgd']);
  const lines = fs.readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string; stage?: number });
  assert.deepEqual(lines.map((l) => `${l.type}${l.stage ?? ''}`), ['epoch2', 'epoch2', 'diagnostics2', 'diagnostics2', 'final']);
  assert.ok(!fs.existsSync(path.join(out, 'stage1.safetensors')));
  const report = fs.readFileSync(path.join(out, 'report.html'), 'utf8');
  assert.match(report, /data-key="oneStage"/);
  assert.doesNotMatch(report, /Stage 1/);
});
