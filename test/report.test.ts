// The run report: parsing a run directory, the rendered page, and (where Chromium is installed)
// the page as a browser actually draws it.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { inflateSync } from 'node:zlib';

import { linearTicks, logTicks } from '../src/report/chart.js';
import { parseMetrics, readRunDirectory, renderReport, writeReport, type RunRecord } from '../src/report/index.js';

// BNN_CHROMIUM points the browser test at another Chromium build.
const CHROMIUM = process.env['BNN_CHROMIUM'] ?? '/usr/bin/chromium';
const FIXTURE = fileURLToPath(new URL('./fixtures/run-sample/', import.meta.url));

const tempRoot = fs.mkdtempSync(join(tmpdir(), 'bnn-report-'));
after(() => fs.rmSync(tempRoot, { recursive: true, force: true }));
let dirCount = 0;
const freshDir = (name: string): string => fs.mkdtempSync(join(tempRoot, `${name}-${dirCount++}-`));

// Expected values, written out rather than derived from the code under test.
const EPOCHS = [
  { stage: 1, epoch: 0, lr: 0.002, trainLoss: 0.61, trainAccuracy: 0.78, testLoss: 0.45, testAccuracy: 0.84, seconds: 95.2, trainImagesPerSecond: 640.1 },
  { stage: 1, epoch: 1, lr: 0.002, trainLoss: 0.42, trainAccuracy: 0.85, testLoss: 0.39, testAccuracy: 0.8633, seconds: 94.8, trainImagesPerSecond: 642.7 },
  { stage: 1, epoch: 2, lr: 0.0002, trainLoss: 0.35, trainAccuracy: 0.88, testLoss: 0.33, testAccuracy: 0.8871, seconds: 93.9, trainImagesPerSecond: 650 },
  { stage: 2, epoch: 0, lr: 0.0005, trainLoss: 0.4, trainAccuracy: 0.86, testLoss: 0.36, testAccuracy: 0.8712, seconds: 99.5, trainImagesPerSecond: 610.3 },
  { stage: 2, epoch: 1, lr: 0.0005, trainLoss: 0.31, trainAccuracy: 0.89, testLoss: 0.3, testAccuracy: 0.8955, seconds: 98.1, trainImagesPerSecond: 615.9 },
  { stage: 2, epoch: 2, lr: 0.0001, trainLoss: 0.28, trainAccuracy: 0.9, testLoss: 0.27, testAccuracy: 0.905, seconds: 97.7, trainImagesPerSecond: 618.2 },
];
const CLASS_NAMES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];
const FINAL = {
  type: 'final',
  testAccuracy: 0.905,
  testLoss: 0.27,
  classNames: CLASS_NAMES,
  classAccuracy: [0.85, 0.98, 0.86, 0.91, 0.86, 0.97, 0.7, 0.96, 0.98, 0.98],
  totalSeconds: 812.4,
  stageSeconds: { '1': 400.1, '2': 399.9 },
  device: 'cpu',
  threads: 2,
  cpu: 'AMD EPYC 7B13',
  cpuKernels: 'avx2',
  libtorch: '2.13.0 (CPU)',
  bnnTorchVersion: '0.1.0',
};
const CONFIG = { preset: 'fashion-mnist-cpu', batchSize: 128, note: '<script>alert("x")</script>', stage1: { epochs: 3, lr: 0.002 } };
const SUMMARY = 'Layer  Type\nconv1  Conv2d <tricky & quoted "name">\n';

/** Writes a 2-stage x 3-epoch run, with one malformed line in the middle of metrics.jsonl. */
function writeRun(dir: string, { final = true }: { final?: boolean } = {}): void {
  const lines = EPOCHS.map((e) => JSON.stringify({ type: 'epoch', ...e }));
  lines.splice(3, 0, '{"type":"epoch","stage":2,"epo'); // a line cut short by a crash mid-write
  if (final) lines.push(JSON.stringify(FINAL));
  fs.writeFileSync(join(dir, 'metrics.jsonl'), lines.join('\n') + '\n');
  fs.writeFileSync(join(dir, 'config.json'), JSON.stringify(CONFIG, null, 2));
  fs.writeFileSync(join(dir, 'summary.txt'), SUMMARY);
}

const pct = (v: number): string => `${(v * 100).toFixed(2)}%`;

/** `data-*` attributes and test-accuracy cell text of each epoch row of the rendered table. */
function epochRows(html: string): Array<{ attrs: Record<string, string>; testAccuracyText: string | undefined }> {
  const rows: Array<{ attrs: Record<string, string>; testAccuracyText: string | undefined }> = [];
  for (const m of html.matchAll(/<tr\b([^>]*\bdata-stage="[^"]*"[^>]*)>([\s\S]*?)<\/tr>/g)) {
    const attrs: Record<string, string> = {};
    for (const a of m[1]!.matchAll(/data-([\w-]+)="([^"]*)"/g)) attrs[a[1]!] = a[2]!;
    rows.push({ attrs, testAccuracyText: /data-col="test-accuracy"[^>]*>([^<]*)</.exec(m[2]!)?.[1] });
  }
  return rows;
}

function valueOf(html: string, id: string): { value: string; text: string } | undefined {
  const m = new RegExp(`id="${id}"[^>]*data-value="([^"]*)"[^>]*>([^<]*)<`).exec(html);
  return m === null ? undefined : { value: m[1]!, text: m[2]! };
}

describe('readRunDirectory', () => {
  test('parses config, epochs, final and summary, and counts the malformed line', () => {
    const dir = freshDir('read');
    writeRun(dir);
    const run = readRunDirectory(dir);
    assert.deepEqual(run.config, CONFIG);
    assert.deepEqual(run.epochs, EPOCHS);
    const { type: _type, ...final } = FINAL;
    assert.deepEqual(run.final, final);
    assert.equal(run.summaryText, SUMMARY);
    assert.equal(run.skippedLines, 1);
  });

  test('an interrupted run has no final record; missing optional files are not errors', () => {
    const dir = freshDir('partial');
    writeRun(dir, { final: false });
    fs.rmSync(join(dir, 'summary.txt'));
    const run = readRunDirectory(dir);
    assert.equal(run.final, undefined);
    assert.equal(run.summaryText, undefined);
    assert.equal(run.epochs.length, 6);

    const empty = readRunDirectory(freshDir('empty'));
    assert.deepEqual(empty, { config: {}, epochs: [], skippedLines: 0 });
  });

  test('a missing directory or a corrupt config.json is a BNN_IO error', () => {
    assert.throws(() => readRunDirectory(join(tempRoot, 'does-not-exist')), { code: 'BNN_IO' });
    const dir = freshDir('bad-config');
    fs.writeFileSync(join(dir, 'config.json'), '[1, 2]');
    assert.throws(() => readRunDirectory(dir), { code: 'BNN_IO', message: /JSON object/ });
  });

  test('parseMetrics: invalid records are skipped, re-logged epochs keep the last line, unknown types are ignored', () => {
    const text = [
      '\uFEFF{"type":"epoch","stage":1,"epoch":1,"lr":0.1,"trainLoss":1,"trainAccuracy":0.5,"seconds":1,"trainImagesPerSecond":10}',
      '{"type":"epoch","stage":1,"epoch":0,"lr":0.1,"trainLoss":1,"trainAccuracy":0.4,"seconds":1,"trainImagesPerSecond":10}',
      '{"type":"epoch","stage":1,"epoch":1,"lr":0.1,"trainLoss":null,"trainAccuracy":0.6,"testAccuracy":0.7,"seconds":1,"trainImagesPerSecond":10}\r',
      '',
      '{"type":"epoch","stage":1,"epoch":2,"lr":"0.1","trainLoss":1,"trainAccuracy":0.4,"seconds":1,"trainImagesPerSecond":10}', // lr not a number
      '{"type":"epoch","stage":0,"epoch":2,"lr":0.1,"trainLoss":1,"trainAccuracy":0.4,"seconds":1,"trainImagesPerSecond":10}', // stage 0
      '{"type":"final","testAccuracy":"high"}',
      '[1,2,3]',
      '{"no":"type"}',
      '{"type":"batch","loss":0.3}',
    ].join('\n');
    const parsed = parseMetrics(text);
    assert.equal(parsed.skippedLines, 5);
    assert.equal(parsed.final, undefined);
    assert.deepEqual(
      parsed.epochs.map((e) => [e.stage, e.epoch, e.trainAccuracy]),
      [
        [1, 0, 0.4],
        [1, 1, 0.6],
      ],
    );
    assert.ok(Number.isNaN(parsed.epochs[1]!.trainLoss), 'null (a diverged loss) reads as NaN');
    assert.equal(parsed.epochs[1]!.testAccuracy, 0.7);
  });
});

describe('diagnostics records', () => {
  test('parseMetrics reads diagnostics lines: later line wins, flip ratio optional, null is NaN, malformed lines skipped', () => {
    const text = [
      '{"type":"epoch","stage":1,"epoch":0,"lr":0.1,"trainLoss":1,"trainAccuracy":0.5,"seconds":1,"trainImagesPerSecond":10}',
      '{"type":"diagnostics","stage":2,"epoch":0,"layers":[{"layer":"layer1.0.conv","flipRatio":0.03,"outsideWindow":0.002}]}',
      '{"type":"diagnostics","stage":1,"epoch":0,"layers":[{"layer":"layer1.0.conv","flipRatio":0.9,"outsideWindow":0.9}]}',
      '{"type":"diagnostics","stage":1,"epoch":0,"layers":[{"layer":"layer1.0.conv","outsideWindow":0.001},{"layer":"layer1.1.conv","flipRatio":null,"outsideWindow":null}]}',
      '{"type":"diagnostics","stage":1,"epoch":1,"layers":[{"layer":"layer1.0.conv","flipRatio":"0.1","outsideWindow":0}]}', // flip ratio a string
      '{"type":"diagnostics","stage":1,"epoch":2,"layers":[{"flipRatio":0.1,"outsideWindow":0}]}', // no layer name
      '{"type":"diagnostics","stage":1,"epoch":3,"layers":{}}', // layers not an array
      '{"type":"diagnostics","stage":0,"epoch":0,"layers":[]}', // stage 0
    ].join('\n');
    const parsed = parseMetrics(text);
    assert.equal(parsed.skippedLines, 4);
    assert.equal(parsed.epochs.length, 1);
    assert.equal(parsed.diagnostics?.length, 2);
    const [first, second] = parsed.diagnostics!;
    assert.deepEqual([first!.stage, first!.epoch, second!.stage, second!.epoch], [1, 0, 2, 0], 'sorted by stage, then epoch');
    assert.deepEqual(first!.layers[0], { layer: 'layer1.0.conv', outsideWindow: 0.001 }, 'the later line of an epoch wins; no flip ratio at the first measurement');
    assert.ok(Number.isNaN(first!.layers[1]!.flipRatio) && Number.isNaN(first!.layers[1]!.outsideWindow), 'null reads as NaN');
    assert.deepEqual(second!.layers, [{ layer: 'layer1.0.conv', flipRatio: 0.03, outsideWindow: 0.002 }]);
  });

  test('parseMetrics reads the activation figures when present and skips a line whose figure is not a number', () => {
    const parsed = parseMetrics(
      [
        '{"type":"diagnostics","stage":1,"epoch":0,"layers":[{"layer":"layer1.0.conv","outsideWindow":0,"activationSaturated":0.25,"activationPositive":0.5,"constantChannels":0}]}',
        '{"type":"diagnostics","stage":1,"epoch":1,"layers":[{"layer":"layer1.0.conv","outsideWindow":0,"activationSaturated":"0.25"}]}',
      ].join('\n'),
    );
    assert.equal(parsed.skippedLines, 1);
    assert.deepEqual(parsed.diagnostics![0]!.layers[0], { layer: 'layer1.0.conv', outsideWindow: 0, activationSaturated: 0.25, activationPositive: 0.5, constantChannels: 0 });
  });

  test('a metrics.jsonl without diagnostics lines reads as before: no diagnostics key', () => {
    const dir = freshDir('no-diagnostics');
    writeRun(dir);
    assert.equal('diagnostics' in readRunDirectory(dir), false);
  });
});

describe('chart axes', () => {
  test('linear ticks are round numbers inside the bounds; log ticks fall on powers of ten', () => {
    const acc = linearTicks(0.78, 0.905, 5, [0, 1]);
    assert.ok(acc.domain[0] <= 0.78 && acc.domain[1] >= 0.905 && acc.domain[1] <= 1);
    assert.deepEqual(
      acc.ticks.map((t) => Number(t.toFixed(6))),
      [0.76, 0.78, 0.8, 0.82, 0.84, 0.86, 0.88, 0.9, 0.92],
    );
    assert.ok(linearTicks(0.97, 0.999, 5, [0, 1]).ticks.every((t) => t <= 1));
    assert.ok(linearTicks(0.5, 0.5, 5).ticks.length >= 2, 'a constant series still gets an axis');
    const lr = logTicks(2e-5, 2e-3);
    assert.ok(lr.ticks.includes(1e-4) && lr.ticks.includes(1e-3));
    assert.ok(logTicks(1e-3, 1e-3).ticks.length >= 2, 'a constant lr still gets an axis');
  });
});

describe('renderReport', () => {
  const dir = freshDir('render');
  writeRun(dir);
  const run = readRunDirectory(dir);
  const html = renderReport(run, { title: 'run <one>' });

  test('shows the final accuracy, total time and every epoch with its numbers', () => {
    assert.deepEqual(valueOf(html, 'final-test-accuracy'), { value: '0.905', text: '90.50%' });
    assert.deepEqual(valueOf(html, 'final-test-loss'), { value: '0.27', text: '0.2700' });
    assert.deepEqual(valueOf(html, 'total-time'), { value: '812.4', text: '13 min 32 s' });
    assert.equal(valueOf(html, 'timing-stage-1')?.value, '400.1');
    assert.equal(valueOf(html, 'timing-stage-2')?.value, '399.9');
    assert.match(html, /id="run-status"[^>]*data-status="complete"/);
    assert.doesNotMatch(html, /id="incomplete-notice"/);
    assert.match(html, /id="skipped-lines"[^>]*data-value="1"/);

    const rows = epochRows(html);
    assert.equal(rows.length, EPOCHS.length);
    rows.forEach((row, i) => {
      const e = EPOCHS[i]!;
      assert.equal(row.attrs['stage'], String(e.stage));
      assert.equal(row.attrs['epoch'], String(e.epoch));
      assert.equal(row.attrs['global-epoch'], String(i + 1));
      assert.equal(row.attrs['lr'], String(e.lr));
      assert.equal(row.attrs['train-loss'], String(e.trainLoss));
      assert.equal(row.attrs['test-accuracy'], String(e.testAccuracy));
      assert.equal(row.testAccuracyText, pct(e.testAccuracy));
    });

    for (const [i, name] of CLASS_NAMES.entries()) {
      assert.match(html, new RegExp(`data-class-index="${i}" data-class-name="${name}" data-value="${FINAL.classAccuracy[i]}"`));
    }
    for (const id of ['chart-loss', 'chart-accuracy', 'chart-lr']) assert.match(html, new RegExp(`<svg id="${id}"`));
    // One stage boundary per chart, between global epochs 3 and 4.
    assert.equal([...html.matchAll(/class="stage-boundary" data-x="3.5"/g)].length, 4);
  });

  test('escapes text from the run directory', () => {
    assert.doesNotMatch(html, /<script/i);
    assert.match(html, /&lt;script&gt;alert\(&quot;x&quot;\)&lt;\/script&gt;/);
    assert.match(html, /&lt;tricky &amp; quoted &quot;name&quot;&gt;/);
    assert.match(html, /<h1>run &lt;one&gt;<\/h1>/);
    assert.match(html, /<td id="env-cpu">AMD EPYC 7B13<\/td>/);
    assert.match(html, /<td id="env-cpu-kernels">avx2<\/td>/);
  });

  test('is self-contained: nothing points off the page', () => {
    assert.doesNotMatch(html, /https?:\/\//i);
    assert.doesNotMatch(html, /\b(src|href|xlink:href|action|srcset)\s*=/i);
    assert.doesNotMatch(html, /url\(|@import|<link|<iframe|<object|<embed/i);
    assert.match(html, /Content-Security-Policy" content="default-src 'none'/);
  });

  test('an incomplete run renders with a notice and the latest accuracy', () => {
    const partial = freshDir('incomplete');
    writeRun(partial, { final: false });
    const page = renderReport(readRunDirectory(partial));
    assert.match(page, /id="incomplete-notice"[^>]*>.*Run incomplete/);
    assert.match(page, /data-status="incomplete"/);
    assert.equal(valueOf(page, 'final-test-accuracy'), undefined);
    assert.deepEqual(valueOf(page, 'latest-test-accuracy'), { value: '0.905', text: '90.50%' });
    // Without recorded totals the timings fall back to the sum of the epochs.
    const sum = EPOCHS.reduce((a, e) => a + e.seconds, 0);
    assert.ok(Math.abs(Number(valueOf(page, 'total-time')?.value) - sum) < 1e-9);
    assert.equal(epochRows(page).length, EPOCHS.length);
  });

  test('epochs without a test pass show a dash, and the test line bridges them', () => {
    const sparse: RunRecord = {
      config: {},
      epochs: EPOCHS.map((e, i) => {
        if (i % 2 === 0) return e;
        const { testLoss: _l, testAccuracy: _a, ...rest } = e;
        return rest;
      }),
      skippedLines: 0,
    };
    const page = renderReport(sparse);
    const rows = epochRows(page);
    assert.equal(rows[1]!.attrs['test-accuracy'], undefined);
    assert.equal(rows[1]!.testAccuracyText, '—');
    const testLine = /data-series="test-accuracy"><path d="([^"]*)"/.exec(page)?.[1] ?? '';
    assert.equal([...testLine.matchAll(/M/g)].length, 1, 'one unbroken line');
    assert.equal([...testLine.matchAll(/L/g)].length, 2, 'through the three evaluated epochs');
  });

  test('an empty run directory still renders', () => {
    const empty: RunRecord = { config: {}, epochs: [], skippedLines: 0 };
    const page = renderReport(empty);
    assert.match(page, /Run incomplete/);
    assert.match(page, /No data recorded/);
    assert.match(page, /No epochs recorded/);
  });
});

// Four layers over the fixture's 2 x 3 epochs, written in checkpoint (alphabetical) order, which is
// not network order for layer10.
const ACTIVATION_MAPS = ['heatmap-activation-saturated', 'heatmap-activation-positive', 'heatmap-constant-channels'];
const DIAG_LAYERS = ['layer1.0.conv', 'layer10.0.conv', 'layer2.0.conv', 'layer<2>.1 "conv" & more'];
const NETWORK_ORDER = ['layer1.0.conv', 'layer2.0.conv', 'layer10.0.conv', 'layer<2>.1 "conv" & more'];
function diagnosticsLines(epochs: ReadonlyArray<{ stage: number; epoch: number }>): string[] {
  return epochs.map((e, i) =>
    JSON.stringify({
      type: 'diagnostics',
      stage: e.stage,
      epoch: e.epoch,
      layers: DIAG_LAYERS.map((layer, k) => ({
        layer,
        // layer10.0.conv (k = 1) is stuck at 0; the others fall epoch by epoch; no value at the first measurement.
        ...(i === 0 ? {} : { flipRatio: k === 1 ? 0 : Number((0.2 / (i * (k + 1))).toFixed(6)) }),
        outsideWindow: Number((0.001 * (i + 1) * (k + 1)).toFixed(6)),
        // Activation statistics: layer10.0.conv has collapsed (every sign +1, every channel constant).
        activationSaturated: Number((0.05 * (k + 1) + 0.01 * i).toFixed(6)),
        activationPositive: k === 1 ? 1 : Number((0.4 + 0.02 * i).toFixed(6)),
        constantChannels: k === 1 ? 1 : Number((0.01 * i).toFixed(6)),
      })),
    }),
  );
}

/** The heat map cells of one table: data-* attributes and the title, in document order. */
function heatmapCells(html: string, id: string): Array<Record<string, string>> {
  const table = new RegExp(`<table id="${id}"[\\s\\S]*?</table>`).exec(html);
  assert.ok(table, `${id} present`);
  return [...table[0].matchAll(/<td\b([^>]*)>/g)].map((m) => {
    const attrs: Record<string, string> = {};
    for (const a of m[1]!.matchAll(/([\w-]+)="([^"]*)"/g)) attrs[a[1]!] = a[2]!;
    return attrs;
  });
}

const unescape = (s: string): string => s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, '&');

describe('renderReport: binary-network diagnostics', () => {
  const dir = freshDir('render-diag');
  writeRun(dir);
  fs.appendFileSync(join(dir, 'metrics.jsonl'), diagnosticsLines(EPOCHS).join('\n') + '\n');
  const run = readRunDirectory(dir);
  const html = renderReport(run);

  test('the panel has both heat maps, one row per layer in network order and one column per epoch', () => {
    assert.equal(run.diagnostics?.length, EPOCHS.length);
    assert.match(html, /<section id="diagnostics" class="card"><h2>Binary-network diagnostics<\/h2>/);
    assert.match(html, /should fall as the learning rate falls/);
    assert.match(html, /stuck at 0/);
    assert.match(html, /passes no gradient/);
    assert.match(html, /straight-through gradient is cut/);
    for (const id of ['heatmap-flip-ratio', 'heatmap-outside-window', ...ACTIVATION_MAPS]) {
      const cells = heatmapCells(html, id);
      assert.equal(cells.length, NETWORK_ORDER.length * EPOCHS.length, `${id}: layers x epochs cells`);
      const rowLayers = [...new Set(cells.map((c) => unescape(c['data-layer']!)))];
      assert.deepEqual(rowLayers, NETWORK_ORDER, `${id}: rows in network order`);
      // Stage 2 starts at the fourth column of every row: marked.
      cells.forEach((c, i) => assert.equal(/\bstage-start\b/.test(c['class']!), i % EPOCHS.length === 3, `${id} cell ${i} stage boundary`));
      const table = new RegExp(`<table id="${id}"[\\s\\S]*?</table>`).exec(html)![0];
      assert.match(table, /<th class="hm-stage" colspan="3">Stage 1<\/th><th class="hm-stage stage-start" colspan="3">Stage 2<\/th>/);
    }
  });

  test('each cell carries its exact value in data-value and the tooltip, coloured on the viridis scale', () => {
    const records = diagnosticsLines(EPOCHS).map(
      (l) =>
        JSON.parse(l) as {
          stage: number;
          epoch: number;
          layers: Array<{ layer: string; flipRatio?: number; outsideWindow: number; activationSaturated: number; activationPositive: number; constantChannels: number }>;
        },
    );
    for (const [id, key, measure] of [
      ['heatmap-flip-ratio', 'flipRatio', 'flip ratio'],
      ['heatmap-outside-window', 'outsideWindow', 'outside [-1, 1]'],
      ['heatmap-activation-saturated', 'activationSaturated', '|x| ≥ 1'],
      ['heatmap-activation-positive', 'activationPositive', 'share of +1'],
      ['heatmap-constant-channels', 'constantChannels', 'constant channels'],
    ] as const) {
      const cells = heatmapCells(html, id);
      let max = 0;
      for (const r of records) for (const l of r.layers) max = Math.max(max, l[key] ?? 0);
      // The sign balance has a fixed 0..100% scale; here its maximum is 1 (the collapsed layer).
      for (const c of cells) {
        const layer = unescape(c['data-layer']!);
        const r = records.find((x) => String(x.stage) === c['data-stage'] && String(x.epoch) === c['data-epoch'])!;
        const expected = r.layers.find((l) => l.layer === layer)![key];
        const title = unescape(c['title']!);
        assert.ok(title.startsWith(`${layer} · stage ${r.stage} · epoch ${r.epoch} — ${measure}: `), title);
        if (expected === undefined) {
          assert.equal(c['data-value'], 'NaN');
          assert.match(c['class']!, /hm-missing/);
          assert.match(title, /no earlier measurement/);
          assert.equal(c['style'], undefined);
        } else {
          assert.equal(c['data-value'], String(expected), `${id} ${layer} ${r.stage}/${r.epoch}`);
          assert.ok(title.endsWith(`(${expected})`), `exact value in the tooltip: ${title}`);
          if (expected === 0) assert.equal(c['style'], 'background:#440154', 'zero is the dark end');
          if (expected === max) assert.equal(c['style'], 'background:#fde725', 'the maximum is the bright end');
          assert.match(c['style']!, /^background:#[0-9a-f]{6}$/);
        }
      }
    }
    // The stuck layer reads 0 after the first epoch.
    const stuck = heatmapCells(html, 'heatmap-flip-ratio').filter((c) => c['data-layer'] === 'layer10.0.conv');
    assert.deepEqual(stuck.map((c) => c['data-value']), ['NaN', '0', '0', '0', '0', '0']);
    // One legend per heat map: the colour ramp and its top value.
    assert.equal([...html.matchAll(/class="hm-ramp" style="background:linear-gradient\(to right,#440154 0%,[^"]*#fde725 100%\)"/g)].length, 5);
    assert.match(html, /data-max="0.2">20.00%</);
  });

  test('layer names are escaped; the page stays self-contained', () => {
    assert.doesNotMatch(html, /layer<2>/);
    assert.match(html, /<th scope="row" class="hm-layer">layer&lt;2&gt;.1 &quot;conv&quot; &amp; more<\/th>/);
    assert.doesNotMatch(html, /https?:\/\//i);
    assert.doesNotMatch(html, /\b(src|href|xlink:href|action|srcset)\s*=/i);
    assert.doesNotMatch(html, /url\(|@import|<link|<iframe|<object|<embed|<script/i);
  });

  test('records without activation figures (runs before they were measured) show the weight maps only', () => {
    const weightsOnly = { config: {}, epochs: [], skippedLines: 0, diagnostics: [{ stage: 1, epoch: 0, layers: [{ layer: 'layer1.0.conv', outsideWindow: 0.1 }] }] };
    const page = renderReport(weightsOnly);
    assert.match(page, /id="heatmap-outside-window"/);
    assert.doesNotMatch(page, /heatmap-activation|heatmap-constant-channels|straight-through gradient is cut/);
  });

  test('a run without diagnostics (or with empty ones) has no panel', () => {
    const plain = readRunDirectory(freshDir('plain'));
    assert.doesNotMatch(renderReport(plain), /id="diagnostics"|Binary-network diagnostics|class="heatmap"/);
    const noDir = freshDir('no-diag');
    writeRun(noDir);
    assert.doesNotMatch(renderReport(readRunDirectory(noDir)), /id="diagnostics"|class="heatmap"/);
    assert.doesNotMatch(renderReport({ config: {}, epochs: [], skippedLines: 0, diagnostics: [{ stage: 1, epoch: 0, layers: [] }] }), /id="diagnostics"/);
  });
});

test('writeReport writes report.html atomically and returns its path', async () => {
  const dir = freshDir('write');
  writeRun(dir);
  fs.writeFileSync(join(dir, 'report.html'), 'old report');
  const path = await writeReport(dir);
  assert.equal(path, resolve(dir, 'report.html'));
  assert.equal(fs.readFileSync(path, 'utf8'), renderReport(readRunDirectory(dir), { title: basename(dir) }));
  assert.deepEqual(fs.readdirSync(dir).sort(), ['config.json', 'metrics.jsonl', 'report.html', 'summary.txt'], 'no temp file left behind');
});

// ---------------------------------------------------------------------------------------------
// In a real browser.

interface Image {
  width: number;
  height: number;
  /** RGBA, 4 bytes per pixel. */
  rgba: Uint8Array;
}

/** Minimal PNG decoder: 8-bit, non-interlaced gray/RGB/gray-alpha/RGBA, which is what Chromium writes. */
function decodePng(file: Buffer): Image {
  assert.ok(file.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])), 'PNG signature');
  let width = 0;
  let height = 0;
  let colorType = -1;
  const idat: Buffer[] = [];
  for (let pos = 8; pos < file.length; ) {
    const length = file.readUInt32BE(pos);
    const type = file.toString('latin1', pos + 4, pos + 8);
    const data = file.subarray(pos + 8, pos + 8 + length);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      colorType = data[9]!;
      assert.equal(data[8], 8, 'bit depth 8');
      assert.equal(data[12], 0, 'not interlaced');
    } else if (type === 'IDAT') {
      idat.push(data);
    } else if (type === 'IEND') {
      break;
    }
    pos += 12 + length;
  }
  const channels = ({ 0: 1, 2: 3, 4: 2, 6: 4 } as Record<number, number>)[colorType];
  assert.ok(channels !== undefined, `unsupported PNG color type ${colorType}`);
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  assert.equal(raw.length, height * (stride + 1), 'decompressed size');
  const pixels = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]!;
    const src = y * (stride + 1) + 1;
    const row = y * stride;
    const prev = row - stride;
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? pixels[row + x - channels]! : 0;
      const b = y > 0 ? pixels[prev + x]! : 0;
      const c = x >= channels && y > 0 ? pixels[prev + x - channels]! : 0;
      let predictor: number;
      switch (filter) {
        case 0:
          predictor = 0;
          break;
        case 1:
          predictor = a;
          break;
        case 2:
          predictor = b;
          break;
        case 3:
          predictor = (a + b) >> 1;
          break;
        case 4: {
          const p = a + b - c;
          const pa = Math.abs(p - a);
          const pb = Math.abs(p - b);
          const pc = Math.abs(p - c);
          predictor = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
          break;
        }
        default:
          throw new Error(`bad PNG filter ${filter} on row ${y}`);
      }
      pixels[row + x] = (raw[src + x]! + predictor) & 0xff;
    }
  }
  const rgba = new Uint8Array(width * height * 4);
  for (let i = 0; i < width * height; i++) {
    const p = i * channels;
    const gray = channels <= 2;
    rgba[i * 4] = pixels[p]!;
    rgba[i * 4 + 1] = gray ? pixels[p]! : pixels[p + 1]!;
    rgba[i * 4 + 2] = gray ? pixels[p]! : pixels[p + 2]!;
    rgba[i * 4 + 3] = channels === 4 ? pixels[p + 3]! : channels === 2 ? pixels[p + 1]! : 255;
  }
  return { width, height, rgba };
}

/** Runs Chromium in its own process group, killing that group if it outlives `timeoutMs`. */
function runChromium(args: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(CHROMIUM, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      // Chromium forks helpers (zygote, GPU, network); the group kill takes them too.
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
      reject(new Error(`chromium did not finish within ${timeoutMs} ms; stderr:\n${stderr.slice(-2000)}`));
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function chromiumArgs(profile: string): string[] {
  return [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--hide-scrollbars',
    `--user-data-dir=${profile}`,
    '--window-size=1280,2400',
  ];
}

test('in headless Chromium: the page draws charts and heat maps and shows the numbers of metrics.jsonl', async (t) => {
  if (!fs.existsSync(CHROMIUM)) {
    t.skip('chromium not installed');
    return;
  }
  const dir = freshDir('browser');
  for (const name of ['config.json', 'metrics.jsonl', 'summary.txt']) fs.copyFileSync(join(FIXTURE, name), join(dir, name));
  // The fixture predates diagnostics records: add one per epoch, as bnn train now writes them.
  const fixtureEpochs = fs
    .readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as { type: string; stage: number; epoch: number })
    .filter((r) => r.type === 'epoch');
  fs.appendFileSync(join(dir, 'metrics.jsonl'), diagnosticsLines(fixtureEpochs).join('\n') + '\n');
  const reportPath = await writeReport(dir);
  const url = `file://${reportPath}`;
  const png = join(dir, 'screenshot.png');

  const [shot, dump] = await Promise.all([
    runChromium([...chromiumArgs(freshDir('profile')), `--screenshot=${png}`, url], 60_000),
    runChromium([...chromiumArgs(freshDir('profile')), '--dump-dom', url], 60_000),
  ]);
  assert.equal(shot.code, 0, `screenshot failed:\n${shot.stderr.slice(-2000)}`);
  assert.equal(dump.code, 0, `dump-dom failed:\n${dump.stderr.slice(-2000)}`);
  if (process.env['BNN_REPORT_SCREENSHOT']) fs.copyFileSync(png, process.env['BNN_REPORT_SCREENSHOT']);

  // The numbers on the rendered page are those of metrics.jsonl, read here independently.
  const records = fs
    .readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as { type: string; stage?: number; epoch?: number; testAccuracy: number });
  const final = records.find((r) => r.type === 'final');
  const epochs = records.filter((r) => r.type === 'epoch');
  assert.ok(final !== undefined && epochs.length > 0, 'fixture has epochs and a final line');
  const dom = dump.stdout;
  assert.deepEqual(valueOf(dom, 'final-test-accuracy'), { value: String(final.testAccuracy), text: pct(final.testAccuracy) });
  const rows = epochRows(dom);
  assert.equal(rows.length, epochs.length);
  rows.forEach((row, i) => {
    const e = epochs[i]!;
    assert.equal(row.attrs['stage'], String(e.stage));
    assert.equal(row.attrs['epoch'], String(e.epoch));
    assert.equal(row.attrs['test-accuracy'], String(e.testAccuracy));
    assert.equal(row.testAccuracyText, pct(e.testAccuracy), `test accuracy shown for stage ${e.stage} epoch ${e.epoch}`);
  });

  // The diagnostics panel is in the page, with every cell (all but the first flip ratios coloured).
  assert.match(dom, /<section id="diagnostics"[^>]*><h2>Binary-network diagnostics<\/h2>/);
  for (const id of ['heatmap-flip-ratio', 'heatmap-outside-window', ...ACTIVATION_MAPS]) {
    const cells = heatmapCells(dom, id);
    assert.equal(cells.length, DIAG_LAYERS.length * epochs.length, `${id} cells in the DOM`);
    const coloured = cells.filter((c) => /background:/.test(c['style'] ?? ''));
    assert.equal(coloured.length, DIAG_LAYERS.length * (id === 'heatmap-flip-ratio' ? epochs.length - 1 : epochs.length), `${id} coloured cells`);
  }

  // The screenshot is a drawn page, not a blank one.
  const image = decodePng(fs.readFileSync(png));
  assert.equal(image.width, 1280);
  assert.equal(image.height, 2400);
  const { rgba } = image;
  const pixelCount = image.width * image.height;
  let nonWhite = 0;
  let ink = 0; // neither white nor the page's light background: text, lines, bars
  for (let i = 0; i < pixelCount; i++) {
    const [r, g, b] = [rgba[i * 4]!, rgba[i * 4 + 1]!, rgba[i * 4 + 2]!];
    if (r < 250 || g < 250 || b < 250) nonWhite++;
    if (Math.max(r, g, b) < 225 || Math.max(r, g, b) - Math.min(r, g, b) > 30) ink++;
  }
  assert.ok(nonWhite / pixelCount > 0.2, `non-white fraction ${(nonWhite / pixelCount).toFixed(3)}`);
  assert.ok(ink / pixelCount > 0.03, `ink fraction ${(ink / pixelCount).toFixed(3)}`);

  // Each series color is drawn, and the region holding the charts is multicolored.
  const seriesColors: Record<string, [number, number, number]> = {
    train: [0x25, 0x63, 0xeb],
    test: [0xea, 0x58, 0x0c],
    lr: [0x7c, 0x3a, 0xed],
    throughput: [0x0d, 0x94, 0x88],
  };
  let top = image.height;
  let bottom = 0;
  for (const [name, [cr, cg, cb]] of Object.entries(seriesColors)) {
    let count = 0;
    for (let y = 0; y < image.height; y++) {
      for (let x = 0; x < image.width; x++) {
        const i = (y * image.width + x) * 4;
        if (Math.abs(rgba[i]! - cr) + Math.abs(rgba[i + 1]! - cg) + Math.abs(rgba[i + 2]! - cb) < 40) {
          count++;
          // Train and test colors recur in the per-class bars; these two appear only in charts.
          if (name === 'lr' || name === 'throughput') {
            top = Math.min(top, y);
            bottom = Math.max(bottom, y);
          }
        }
      }
    }
    assert.ok(count > 150, `${name} series color drawn (${count} pixels)`);
  }
  assert.ok(bottom > top, 'chart area found');
  const distinct = new Set<number>();
  for (let y = top; y <= bottom; y++) {
    for (let x = 0; x < image.width; x++) {
      const i = (y * image.width + x) * 4;
      distinct.add(((rgba[i]! >> 4) << 8) | ((rgba[i + 1]! >> 4) << 4) | (rgba[i + 2]! >> 4));
    }
  }
  assert.ok(distinct.size >= 8, `distinct colors in the chart area: ${distinct.size}`);

  // The heat maps are drawn: both ends of the viridis scale (a stuck layer's 0, each map's maximum)
  // and its middle fill whole cells on screen.
  const viridisColors: Record<string, [number, number, number]> = { dark: [0x44, 0x01, 0x54], middle: [0x21, 0x91, 0x8c], bright: [0xfd, 0xe7, 0x25] };
  for (const [name, [cr, cg, cb]] of Object.entries(viridisColors)) {
    let count = 0;
    for (let i = 0; i < pixelCount; i++) {
      if (Math.abs(rgba[i * 4]! - cr) + Math.abs(rgba[i * 4 + 1]! - cg) + Math.abs(rgba[i * 4 + 2]! - cb) < 24) count++;
    }
    assert.ok(count > 150, `heat map ${name} colour drawn (${count} pixels)`);
  }
  t.diagnostic(`non-white ${(nonWhite / pixelCount).toFixed(3)}, ink ${(ink / pixelCount).toFixed(3)}, chart rows ${top}-${bottom}, ${distinct.size} colors there`);
});
