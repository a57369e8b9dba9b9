// The run report page. One self-contained HTML string: inline CSS, inline SVG, no script, no
// external resource of any kind, and a CSP that forbids fetching anything should a future edit
// slip one in. Every value that comes from the run directory goes through escapeHtml.
import { renderLineChart, type ChartBoundary, type ChartSeries } from './chart.js';
import { dataNumber, escapeHtml, formatDuration, formatExponent, formatInteger, formatLearningRate, formatLoss, formatPercent } from './format.js';
import type { DiagnosticsRecord, EpochRecord, FinalRecord, RunRecord } from './run-record.js';

/** Options of {@link renderReport}. */
export interface RenderOptions {
  /** Name of the run shown as the page heading (for example the run directory's name). */
  title?: string;
}

const COLORS = {
  train: '#2563eb',
  test: '#ea580c',
  lr: '#7c3aed',
  throughput: '#0d9488',
} as const;

/** An epoch placed on the report's shared x axis. */
interface PlacedEpoch extends EpochRecord {
  /** 1-based position across all stages; stage s starts after the full length of stages < s. */
  global: number;
}

interface Layout {
  epochs: PlacedEpoch[];
  stages: number[];
  /** x of each stage's first epoch minus one half, for stages after the first. */
  boundaries: ChartBoundary[];
  totalLength: number;
}

function layoutEpochs(epochs: readonly EpochRecord[]): Layout {
  const lengths = new Map<number, number>();
  for (const e of epochs) lengths.set(e.stage, Math.max(lengths.get(e.stage) ?? 0, e.epoch + 1));
  const stages = [...lengths.keys()].sort((a, b) => a - b);
  // Offsets come from each stage's highest epoch, not from counting lines, so a skipped line
  // leaves a gap at its own epoch instead of shifting every later epoch left.
  const offsets = new Map<number, number>();
  let offset = 0;
  const boundaries: ChartBoundary[] = [];
  for (const [i, stage] of stages.entries()) {
    offsets.set(stage, offset);
    if (i > 0) boundaries.push({ x: offset + 0.5, label: `Stage ${stage}` });
    offset += lengths.get(stage) ?? 0;
  }
  return {
    epochs: epochs.map((e) => ({ ...e, global: (offsets.get(e.stage) ?? 0) + e.epoch + 1 })),
    stages,
    boundaries,
    totalLength: offset,
  };
}

const mean = (values: readonly number[]): number | undefined => {
  const finite = values.filter(Number.isFinite);
  return finite.length === 0 ? undefined : finite.reduce((a, b) => a + b, 0) / finite.length;
};

const sum = (values: readonly number[]): number => values.reduce((a, b) => a + b, 0);

function decimalsFor(step: number): number {
  return Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
}

const epochLabel = (e: PlacedEpoch): string => `stage ${e.stage} · epoch ${e.epoch}`;

function renderCharts(layout: Layout): string {
  const { epochs, boundaries, totalLength } = layout;
  const xDomain: [number, number] = [0.5, Math.max(totalLength, 1) + 0.5];
  const common = {
    xLabel: 'epoch (all stages)',
    xDomain,
    boundaries,
    firstRegionLabel: `Stage ${layout.stages[0] ?? 1}`,
  };
  const series = (key: string, name: string, color: string, pick: (e: PlacedEpoch) => number | undefined, text: (v: number) => string): ChartSeries => ({
    key,
    name,
    color,
    // An epoch without the value (not evaluated) is left out so the line bridges it; a NaN
    // (diverged) stays in and breaks the line.
    points: epochs.flatMap((e) => {
      const y = pick(e);
      return y === undefined ? [] : [{ x: e.global, y, label: `${epochLabel(e)} — ${name}: ${text(y)}` }];
    }),
  });

  const loss = renderLineChart({
    ...common,
    id: 'chart-loss',
    title: 'Loss per epoch, train and test',
    yLabel: 'cross-entropy loss',
    yScale: 'linear',
    yBounds: [0, Number.POSITIVE_INFINITY],
    yFormat: (v, step) => v.toFixed(decimalsFor(step)),
    series: [series('train-loss', 'train loss', COLORS.train, (e) => e.trainLoss, formatLoss), series('test-loss', 'test loss', COLORS.test, (e) => e.testLoss, formatLoss)],
  });
  const accuracy = renderLineChart({
    ...common,
    id: 'chart-accuracy',
    title: 'Accuracy per epoch, train and test',
    yLabel: 'accuracy',
    yScale: 'linear',
    yBounds: [0, 1],
    yFormat: (v, step) => `${(v * 100).toFixed(decimalsFor(step * 100))}%`,
    series: [
      series('train-accuracy', 'train accuracy', COLORS.train, (e) => e.trainAccuracy, (v) => formatPercent(v)),
      series('test-accuracy', 'test accuracy', COLORS.test, (e) => e.testAccuracy, (v) => formatPercent(v)),
    ],
  });
  const lr = renderLineChart({
    ...common,
    id: 'chart-lr',
    title: 'Learning rate per epoch (log scale)',
    yLabel: 'learning rate (log)',
    yScale: 'log',
    yFormat: (v) => formatExponent(v),
    series: [{ ...series('lr', 'learning rate', COLORS.lr, (e) => e.lr, formatLearningRate), step: true }],
  });
  const throughput = renderLineChart({
    ...common,
    id: 'chart-throughput',
    title: 'Training throughput per epoch',
    yLabel: 'train images / s',
    yScale: 'linear',
    yBounds: [0, Number.POSITIVE_INFINITY],
    yFormat: (v, step) => (step >= 1 ? formatInteger(v) : v.toFixed(decimalsFor(step))),
    series: [series('throughput', 'images / s', COLORS.throughput, (e) => e.trainImagesPerSecond, (v) => formatInteger(v))],
  });

  const figure = (heading: string, svg: string, note: string): string =>
    `<figure class="card chart-card"><figcaption><h3>${escapeHtml(heading)}</h3><p class="muted">${escapeHtml(note)}</p></figcaption>${svg}</figure>`;
  const boundaryNote = boundaries.length > 0 ? 'Dashed line: start of the next stage.' : '';
  return `<section id="curves"><h2>Training curves</h2><div class="chart-grid">${[
    figure('Loss', loss, `Mean train loss over each epoch; test loss after it. ${boundaryNote}`),
    figure('Accuracy', accuracy, `Train accuracy over each epoch; test accuracy after it. ${boundaryNote}`),
    figure('Learning rate', lr, 'Rate used during each epoch, log scale.'),
    figure('Throughput', throughput, 'Training images per second, per epoch.'),
  ].join('')}</div></section>`;
}

// Viridis (matplotlib's), sampled at tenths: perceptually uniform, readable in grey and by
// colour-blind readers. Low values are dark purple, high values yellow.
const VIRIDIS = ['#440154', '#482475', '#414487', '#355f8d', '#2a788e', '#21918c', '#22a884', '#44bf70', '#7ad151', '#bddf26', '#fde725'] as const;

/** The viridis colour of `t` in [0, 1] (clamped), as `#rrggbb`. */
export function viridis(t: number): string {
  const x = Math.max(0, Math.min(1, Number.isFinite(t) ? t : 0)) * (VIRIDIS.length - 1);
  const i = Math.min(Math.floor(x), VIRIDIS.length - 2);
  const f = x - i;
  const rgb = (hex: string): number[] => [1, 3, 5].map((k) => parseInt(hex.slice(k, k + 2), 16));
  const a = rgb(VIRIDIS[i]!);
  const b = rgb(VIRIDIS[i + 1]!);
  return `#${a.map((v, k) => Math.round(v + (b[k]! - v) * f).toString(16).padStart(2, '0')).join('')}`;
}

/** Layer names in network order: `layer2.1.conv` after `layer2.0.conv`, `layer10` after `layer9`. */
function naturalCompare(a: string, b: string): number {
  const pa = a.split(/(\d+)/);
  const pb = b.split(/(\d+)/);
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    const x = pa[i]!;
    const y = pb[i]!;
    if (x === y) continue;
    if (i % 2 === 1) return Number(x) - Number(y); // odd parts are the digit runs
    return x < y ? -1 : 1;
  }
  return pa.length - pb.length;
}

/** A diagnostics share with enough digits for small values: `2.13%`, `0.0412%`, `0%`. */
function formatShare(v: number): string {
  if (!Number.isFinite(v)) return '—';
  if (v === 0) return '0%';
  const pct = v * 100;
  return `${Math.abs(pct) >= 1 ? pct.toFixed(2) : pct.toPrecision(3)}%`;
}

function renderHeatmap(
  id: string,
  heading: string,
  measure: string,
  records: readonly DiagnosticsRecord[],
  layers: readonly string[],
  pick: (r: DiagnosticsRecord, layer: string) => number | undefined,
  missing: (r: DiagnosticsRecord, layer: string) => string,
  fixedMax?: number,
): string {
  const values = records.flatMap((r) => layers.map((l) => pick(r, l))).filter((v): v is number => v !== undefined && Number.isFinite(v));
  const max = fixedMax ?? (values.length > 0 ? Math.max(...values) : 0);
  const top = max > 0 ? max : 1;
  const stages: Array<{ stage: number; count: number }> = [];
  for (const r of records) {
    const last = stages[stages.length - 1];
    if (last?.stage === r.stage) last.count++;
    else stages.push({ stage: r.stage, count: 1 });
  }
  const startsStage = (i: number): boolean => i > 0 && records[i - 1]!.stage !== records[i]!.stage;
  const stageHead = stages.map((s, i) => `<th class="hm-stage${i > 0 ? ' stage-start' : ''}" colspan="${s.count}">Stage ${s.stage}</th>`).join('');
  const epochHead = records.map((r, i) => `<th class="hm-epoch${startsStage(i) ? ' stage-start' : ''}" title="stage ${r.stage} · epoch ${r.epoch}">${r.epoch}</th>`).join('');
  const rows = layers.map((layer) => {
    const cells = records.map((r, i) => {
      const v = pick(r, layer);
      const where = `${layer} · stage ${r.stage} · epoch ${r.epoch}`;
      const cls = `hm-cell${startsStage(i) ? ' stage-start' : ''}`;
      const attrs = `data-layer="${escapeHtml(layer)}" data-stage="${r.stage}" data-epoch="${r.epoch}"`;
      if (v === undefined || !Number.isFinite(v)) {
        const why = v === undefined ? missing(r, layer) : 'not a number';
        return `<td class="${cls} hm-missing" ${attrs} data-value="NaN" title="${escapeHtml(`${where} — ${measure}: ${why}`)}"></td>`;
      }
      return `<td class="${cls}" ${attrs} data-value="${dataNumber(v)}" style="background:${viridis(v / top)}" title="${escapeHtml(`${where} — ${measure}: ${formatShare(v)} (${dataNumber(v)})`)}"></td>`;
    });
    return `<tr><th scope="row" class="hm-layer">${escapeHtml(layer)}</th>${cells.join('')}</tr>`;
  });
  const gradient = VIRIDIS.map((c, i) => `${c} ${(i * 10).toFixed(0)}%`).join(',');
  const legend =
    `<div class="hm-legend" aria-label="colour scale"><span class="num">0</span>` +
    `<span class="hm-ramp" style="background:linear-gradient(to right,${gradient})"></span>` +
    `<span class="num" data-max="${dataNumber(max)}">${formatShare(top)}</span>` +
    `<span class="muted small">linear; grey: no value</span></div>`;
  return (
    `<figure class="hm-figure" id="${id}-figure"><figcaption><h3>${escapeHtml(heading)}</h3>${legend}</figcaption>` +
    `<div class="table-wrap"><table id="${id}" class="heatmap"><thead><tr><th class="hm-corner" rowspan="2">Layer</th>${stageHead}</tr><tr>${epochHead}</tr></thead>` +
    `<tbody>${rows.join('')}</tbody></table></div></figure>`
  );
}

function renderDiagnostics(records: readonly DiagnosticsRecord[] | undefined): string {
  if (records === undefined || records.length === 0) return '';
  const seen = new Set<string>();
  for (const r of records) for (const l of r.layers) seen.add(l.layer);
  if (seen.size === 0) return '';
  const layers = [...seen].sort(naturalCompare);
  const find = (r: DiagnosticsRecord, layer: string) => r.layers.find((l) => l.layer === layer);
  const flips = renderHeatmap(
    'heatmap-flip-ratio',
    'Flip ratio: share of weights whose sign changed during the epoch',
    'flip ratio',
    records,
    layers,
    (r, l) => find(r, l)?.flipRatio,
    (r, l) => (find(r, l) === undefined ? 'not measured' : 'no earlier measurement to compare with'),
  );
  const outside = renderHeatmap(
    'heatmap-outside-window',
    'Share of latent weights outside [-1, 1]',
    'outside [-1, 1]',
    records,
    layers,
    (r, l) => find(r, l)?.outsideWindow,
    () => 'not measured',
  );
  // Activation figures exist only for runs that measured them (a fixed batch, once an epoch).
  const measuredActivations = records.some((r) => r.layers.some((l) => l.activationSaturated !== undefined));
  const notMeasured = (r: DiagnosticsRecord, l: string): string => (find(r, l) === undefined ? 'not measured' : 'no activation statistics this epoch');
  const activations = measuredActivations
    ? renderHeatmap(
        'heatmap-activation-saturated',
        'Share of sign inputs with |x| ≥ 1 (the clipped gradient is zero there)',
        '|x| ≥ 1',
        records,
        layers,
        (r, l) => find(r, l)?.activationSaturated,
        notMeasured,
      ) +
      renderHeatmap(
        'heatmap-activation-positive',
        'Sign balance: share of +1 outputs (0.5 is balanced; the scale is fixed at 0 to 100%)',
        'share of +1',
        records,
        layers,
        (r, l) => find(r, l)?.activationPositive,
        notMeasured,
        1,
      ) +
      renderHeatmap(
        'heatmap-constant-channels',
        'Collapsed channels: share of input channels with one sign over the whole batch',
        'constant channels',
        records,
        layers,
        (r, l) => find(r, l)?.constantChannels,
        notMeasured,
      )
    : '';
  return (
    `<section id="diagnostics" class="card"><h2>Binary-network diagnostics</h2>` +
    `<p class="muted">Rows: the binary convolutions in network order; columns: epochs of both stages (the dark line marks where a stage starts). ` +
    `Hover a cell for its exact value. <strong>Flip ratio</strong> (signs of the latent weights in stage 1, of the 1-bit weights in stage 2) should fall as the learning rate falls; ` +
    `a layer stuck at 0 early on has stopped learning. <strong>Outside [-1, 1]</strong>: the straight-through estimator passes no gradient to those weights, ` +
    `so a growing share is capacity the layer has lost.` +
    (measuredActivations
      ? ` The activation maps come from one forward pass per epoch on a fixed batch of training images (batch statistics, as in training): ` +
        `<strong>|x| ≥ 1</strong> is where the sign's straight-through gradient is cut; <strong>share of +1</strong> far from 50% and ` +
        `<strong>collapsed channels</strong> mean the layer passes little information on.`
      : '') +
    `</p>` +
    flips +
    outside +
    activations +
    `</section>`
  );
}

function renderEpochTable(layout: Layout): string {
  if (layout.epochs.length === 0) return `<section id="epochs" class="card"><h2>Epochs</h2><p class="muted">No epochs recorded.</p></section>`;
  const best = layout.epochs.reduce<PlacedEpoch | undefined>(
    (acc, e) => (e.testAccuracy !== undefined && Number.isFinite(e.testAccuracy) && (acc === undefined || e.testAccuracy > (acc.testAccuracy ?? -1)) ? e : acc),
    undefined,
  );
  const rows = layout.epochs.map((e, i) => {
    const attrs = [
      `data-global-epoch="${e.global}"`,
      `data-stage="${e.stage}"`,
      `data-epoch="${e.epoch}"`,
      `data-lr="${dataNumber(e.lr)}"`,
      `data-train-loss="${dataNumber(e.trainLoss)}"`,
      `data-train-accuracy="${dataNumber(e.trainAccuracy)}"`,
      e.testLoss === undefined ? '' : `data-test-loss="${dataNumber(e.testLoss)}"`,
      e.testAccuracy === undefined ? '' : `data-test-accuracy="${dataNumber(e.testAccuracy)}"`,
      `data-seconds="${dataNumber(e.seconds)}"`,
      `data-images-per-second="${dataNumber(e.trainImagesPerSecond)}"`,
    ].filter((a) => a !== '');
    const classes = [i > 0 && layout.epochs[i - 1]?.stage !== e.stage ? 'stage-start' : '', e === best ? 'best' : ''].filter((c) => c !== '');
    const cls = classes.length > 0 ? ` class="${classes.join(' ')}"` : '';
    return (
      `<tr${cls} ${attrs.join(' ')}>` +
      `<td class="num muted">${e.global}</td><td class="num">${e.stage}</td><td class="num">${e.epoch}</td>` +
      `<td class="num" data-col="lr">${escapeHtml(formatLearningRate(e.lr))}</td>` +
      `<td class="num" data-col="train-loss">${formatLoss(e.trainLoss)}</td>` +
      `<td class="num" data-col="train-accuracy">${formatPercent(e.trainAccuracy)}</td>` +
      `<td class="num" data-col="test-loss">${formatLoss(e.testLoss)}</td>` +
      `<td class="num" data-col="test-accuracy">${formatPercent(e.testAccuracy)}</td>` +
      `<td class="num" data-col="seconds">${e.seconds.toFixed(1)}</td>` +
      `<td class="num" data-col="images-per-second">${formatInteger(e.trainImagesPerSecond)}</td>` +
      `</tr>`
    );
  });
  const bestNote = best === undefined ? '' : ` Best test accuracy (highlighted): <strong>${formatPercent(best.testAccuracy)}</strong> at ${escapeHtml(epochLabel(best))}.`;
  return (
    `<section id="epochs" class="card"><h2>Epochs</h2><p class="muted">Epochs are numbered from 0 within each stage; # counts across stages, as on the charts' x axis.${bestNote}</p>` +
    `<div class="table-wrap"><table id="epoch-table" class="data"><thead><tr>` +
    `<th class="num">#</th><th class="num">Stage</th><th class="num">Epoch</th><th class="num">LR</th>` +
    `<th class="num">Train loss</th><th class="num">Train acc.</th><th class="num">Test loss</th><th class="num">Test acc.</th>` +
    `<th class="num">Time (s)</th><th class="num">Images / s</th>` +
    `</tr></thead><tbody>${rows.join('')}</tbody></table></div></section>`
  );
}

function renderClassAccuracy(final: FinalRecord | undefined): string {
  const values = final?.classAccuracy;
  if (values === undefined || values.length === 0) return '';
  const names = values.map((_, i) => final?.classNames?.[i] ?? `class ${i}`);
  const finite = values.map((v, i) => ({ v, i })).filter((c) => Number.isFinite(c.v));
  const worst = finite.reduce<{ v: number; i: number } | undefined>((a, c) => (a === undefined || c.v < a.v ? c : a), undefined);
  const bestClass = finite.reduce<{ v: number; i: number } | undefined>((a, c) => (a === undefined || c.v > a.v ? c : a), undefined);
  const rows = values.map((v, i) => {
    const width = Number.isFinite(v) ? Math.max(0, Math.min(1, v)) * 100 : 0;
    const weakest = worst !== undefined && worst.i === i && finite.length > 1;
    return (
      `<div class="class-row${weakest ? ' weakest' : ''}" data-class-index="${i}" data-class-name="${escapeHtml(names[i] ?? '')}" data-value="${dataNumber(v)}">` +
      `<span class="class-name" title="${escapeHtml(names[i] ?? '')}">${escapeHtml(names[i] ?? '')}</span>` +
      `<span class="bar-track"><span class="bar" style="width:${width.toFixed(2)}%"></span></span>` +
      `<span class="class-value num">${formatPercent(v, 1)}</span></div>`
    );
  });
  const meanValue = mean(values);
  const facts = [
    `mean over classes <strong id="mean-class-accuracy" data-value="${meanValue === undefined ? 'NaN' : dataNumber(meanValue)}">${formatPercent(meanValue)}</strong>`,
    worst === undefined ? '' : `weakest: ${escapeHtml(names[worst.i] ?? '')} (${formatPercent(worst.v)})`,
    bestClass === undefined ? '' : `strongest: ${escapeHtml(names[bestClass.i] ?? '')} (${formatPercent(bestClass.v)})`,
  ].filter((s) => s !== '');
  return `<section id="class-accuracy" class="card"><h2>Test accuracy per class</h2><p class="muted">${facts.join(' · ')}</p><div class="class-grid">${rows.join('')}</div></section>`;
}

function renderTimings(run: RunRecord, layout: Layout): string {
  const final = run.final;
  const stageIds = new Set<number>(layout.stages);
  for (const key of Object.keys(final?.stageSeconds ?? {})) if (/^\d+$/.test(key)) stageIds.add(Number(key));
  const stages = [...stageIds].sort((a, b) => a - b);
  const row = (id: string, label: string, epochs: readonly PlacedEpoch[], wall: number | undefined, wallNote: string): string => {
    const meanEpoch = mean(epochs.map((e) => e.seconds));
    const meanRate = mean(epochs.map((e) => e.trainImagesPerSecond));
    return (
      `<tr id="${id}" data-value="${wall === undefined ? 'NaN' : dataNumber(wall)}"><th scope="row">${escapeHtml(label)}</th>` +
      `<td class="num">${epochs.length}</td>` +
      `<td class="num">${formatDuration(wall)}${wallNote}</td>` +
      `<td class="num">${formatDuration(meanEpoch)}</td>` +
      `<td class="num">${formatInteger(meanRate)}</td></tr>`
    );
  };
  const estimated = '<sup class="muted" title="sum of the recorded epoch times">*</sup>';
  const stageRows = stages.map((s) => {
    const epochs = layout.epochs.filter((e) => e.stage === s);
    const recorded = final?.stageSeconds?.[String(s)];
    return row(`timing-stage-${s}`, `Stage ${s}`, epochs, recorded ?? sum(epochs.map((e) => e.seconds)), recorded === undefined ? estimated : '');
  });
  const total = final?.totalSeconds;
  const totalRow = row('timing-total', 'Whole run', layout.epochs, total ?? sum(layout.epochs.map((e) => e.seconds)), total === undefined ? estimated : '');
  const meanEpoch = mean(layout.epochs.map((e) => e.seconds));
  const meanRate = mean(layout.epochs.map((e) => e.trainImagesPerSecond));
  const anyEstimated = total === undefined || stages.some((s) => final?.stageSeconds?.[String(s)] === undefined);
  return (
    `<section id="timings" class="card"><h2>Timings</h2>` +
    `<p class="muted">Mean epoch time <strong id="timing-mean-epoch" data-value="${meanEpoch === undefined ? 'NaN' : dataNumber(meanEpoch)}">${formatDuration(meanEpoch)}</strong> · ` +
    `mean training throughput <strong id="timing-throughput" data-value="${meanRate === undefined ? 'NaN' : dataNumber(meanRate)}">${formatInteger(meanRate)} images/s</strong></p>` +
    `<table class="data compact"><thead><tr><th></th><th class="num">Epochs</th><th class="num">Wall time</th><th class="num">Mean epoch</th><th class="num">Images / s</th></tr></thead>` +
    `<tbody>${stageRows.join('')}</tbody><tfoot>${totalRow}</tfoot></table>` +
    (anyEstimated ? `<p class="muted small">* no total recorded: sum of the epoch times (excludes setup and final evaluation).</p>` : '') +
    `</section>`
  );
}

function renderEnvironment(final: FinalRecord | undefined): string {
  const rows: Array<[string, string, string]> = [];
  if (final?.device !== undefined) rows.push(['env-device', 'Device', final.device]);
  if (final?.cpu !== undefined) rows.push(['env-cpu', 'CPU', final.cpu]);
  if (final?.cpuKernels !== undefined) rows.push(['env-cpu-kernels', 'Kernels', final.cpuKernels]);
  if (final?.threads !== undefined) rows.push(['env-threads', 'CPU threads', String(final.threads)]);
  if (final?.libtorch !== undefined) rows.push(['env-libtorch', 'LibTorch', final.libtorch]);
  if (final?.bnnTorchVersion !== undefined) rows.push(['env-bnn-torch', 'bnn-torch', final.bnnTorchVersion]);
  const body =
    rows.length === 0
      ? `<p class="muted">Not recorded${final === undefined ? ' (written with the final results)' : ''}.</p>`
      : `<table class="data compact kv"><tbody>${rows.map(([id, k, v]) => `<tr><th scope="row">${escapeHtml(k)}</th><td id="${id}">${escapeHtml(v)}</td></tr>`).join('')}</tbody></table>`;
  return `<section id="environment" class="card"><h2>Environment</h2>${body}</section>`;
}

function configValue(value: unknown): string {
  if (typeof value === 'string') return `<span class="str">${escapeHtml(value)}</span>`;
  if (value === null || typeof value === 'number' || typeof value === 'boolean') return `<code>${escapeHtml(String(value))}</code>`;
  const compact = JSON.stringify(value) ?? String(value);
  const text = compact.length > 60 ? (JSON.stringify(value, null, 2) ?? compact) : compact;
  return `<code class="json">${escapeHtml(text)}</code>`;
}

function renderConfig(config: Record<string, unknown>): string {
  const entries = Object.entries(config);
  const body =
    entries.length === 0
      ? '<p class="muted">No config.json recorded.</p>'
      : `<table id="config-table" class="data kv"><tbody>${entries
          .map(([k, v]) => `<tr data-key="${escapeHtml(k)}"><th scope="row"><code>${escapeHtml(k)}</code></th><td>${configValue(v)}</td></tr>`)
          .join('')}</tbody></table>`;
  return `<section id="config" class="card"><h2>Configuration</h2>${body}</section>`;
}

function renderSummary(text: string | undefined): string {
  const body = text === undefined ? '<p class="muted">No summary.txt recorded.</p>' : `<pre id="model-summary">${escapeHtml(text.replace(/\s+$/, ''))}</pre>`;
  return `<section id="summary" class="card"><h2>Model summary</h2>${body}</section>`;
}

function renderNotices(run: RunRecord): string {
  const notices: string[] = [];
  if (run.final === undefined) {
    const n = run.epochs.length;
    notices.push(
      `<div id="incomplete-notice" class="notice warn" role="status"><strong>Run incomplete.</strong> metrics.jsonl has no final record: the run was interrupted or is still going. ` +
        `Showing the ${n} epoch${n === 1 ? '' : 's'} recorded so far; final accuracy, per-class results and environment are not available.</div>`,
    );
  }
  if (run.skippedLines > 0) {
    notices.push(
      `<div id="skipped-lines" class="notice warn" role="status" data-value="${run.skippedLines}"><strong>${run.skippedLines} malformed line${run.skippedLines === 1 ? '' : 's'}</strong> in metrics.jsonl ${run.skippedLines === 1 ? 'was' : 'were'} skipped; the figures below leave ${run.skippedLines === 1 ? 'it' : 'them'} out.</div>`,
    );
  }
  return notices.join('');
}

function renderHero(run: RunRecord, layout: Layout, title: string): string {
  const final = run.final;
  const complete = final !== undefined;
  const withTest = layout.epochs.filter((e) => e.testAccuracy !== undefined && Number.isFinite(e.testAccuracy));
  const latest = withTest.at(-1);
  const headline = complete
    ? `<div class="headline-label">Final test accuracy</div><div class="headline"><span id="final-test-accuracy" data-value="${dataNumber(final.testAccuracy)}">${formatPercent(final.testAccuracy)}</span></div>`
    : `<div class="headline-label">Latest test accuracy${latest === undefined ? '' : ` (${escapeHtml(epochLabel(latest))})`}</div>` +
      `<div class="headline pending"><span id="latest-test-accuracy" data-value="${latest?.testAccuracy === undefined ? 'NaN' : dataNumber(latest.testAccuracy)}">${formatPercent(latest?.testAccuracy)}</span></div>`;
  const totalSeconds = final?.totalSeconds ?? sum(layout.epochs.map((e) => e.seconds));
  const stageCounts = layout.stages.map((s) => layout.epochs.filter((e) => e.stage === s).length);
  const stat = (label: string, id: string, value: string, dataValue: string, note = ''): string =>
    `<div class="stat"><div class="stat-label">${escapeHtml(label)}</div><div class="stat-value"><span id="${id}" data-value="${escapeHtml(dataValue)}">${value}</span></div>${note === '' ? '' : `<div class="stat-note">${note}</div>`}</div>`;
  const meanRate = mean(layout.epochs.map((e) => e.trainImagesPerSecond));
  const env = [final?.device, final?.threads === undefined ? undefined : `${final.threads} thread${final.threads === 1 ? '' : 's'}`, final?.libtorch === undefined ? undefined : `LibTorch ${final.libtorch}`, final?.bnnTorchVersion === undefined ? undefined : `bnn-torch ${final.bnnTorchVersion}`].filter(
    (s): s is string => s !== undefined,
  );
  const stats = [
    stat(complete ? 'Total time' : 'Time so far', 'total-time', formatDuration(totalSeconds), dataNumber(totalSeconds), final?.totalSeconds === undefined ? 'sum of epoch times' : ''),
    complete ? stat('Final test loss', 'final-test-loss', formatLoss(final.testLoss), final.testLoss === undefined ? 'NaN' : dataNumber(final.testLoss)) : '',
    stat('Epochs', 'epoch-count', String(layout.epochs.length), String(layout.epochs.length), stageCounts.length > 1 ? escapeHtml(stageCounts.map((c, i) => `${c} in stage ${layout.stages[i]}`).join(' + ')) : ''),
    stat('Training throughput', 'mean-throughput', `${formatInteger(meanRate)} <small>img/s</small>`, meanRate === undefined ? 'NaN' : dataNumber(meanRate), 'mean over epochs'),
  ].filter((s) => s !== '');
  return (
    `<header class="hero card">` +
    `<div class="hero-title"><div class="eyebrow">bnn-torch · run report <span id="run-status" class="badge ${complete ? 'ok' : 'warn'}" data-status="${complete ? 'complete' : 'incomplete'}">${complete ? 'complete' : 'incomplete'}</span></div>` +
    `<h1>${escapeHtml(title)}</h1>${env.length > 0 ? `<p class="muted">${escapeHtml(env.join(' · '))}</p>` : ''}</div>` +
    `<div class="hero-body"><div class="hero-headline">${headline}</div><div class="stats">${stats.join('')}</div></div>` +
    `</header>`
  );
}

// The report's style sheet, which htmlPage gives every bnn-torch page (the ablation's too) so they look alike.
const REPORT_STYLE = `
*{box-sizing:border-box}
html{background:#f3f5f8;color:#0f172a;font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,"Noto Sans",sans-serif;-webkit-text-size-adjust:100%}
body{margin:0;padding:28px 24px 40px}
main{max-width:1200px;margin:0 auto;display:flex;flex-direction:column;gap:20px}
h1{font-size:26px;line-height:1.2;margin:4px 0 6px;font-weight:700;letter-spacing:-0.01em;overflow-wrap:anywhere}
h2{font-size:17px;margin:0 0 10px;font-weight:650}
h3{font-size:14px;margin:0;font-weight:650}
p{margin:0 0 10px}
.card{background:#fff;border:1px solid #e2e8f0;border-radius:12px;padding:18px 20px;box-shadow:0 1px 2px rgba(15,23,42,.04)}
.muted{color:#64748b}
.small{font-size:12px}
.num{text-align:right;font-variant-numeric:tabular-nums}
code,pre{font-family:ui-monospace,"SFMono-Regular","DejaVu Sans Mono",Menlo,Consolas,monospace;font-size:12.5px}
.eyebrow{font-size:12px;font-weight:600;text-transform:uppercase;letter-spacing:.06em;color:#64748b;display:flex;align-items:center;gap:10px}
.badge{display:inline-block;padding:1px 8px;border-radius:999px;font-size:11px;letter-spacing:.04em}
.badge.ok{background:#dcfce7;color:#166534}
.badge.warn{background:#fef3c7;color:#92400e}
.hero{display:flex;flex-direction:column;gap:14px;padding:22px 24px}
.hero-body{display:flex;flex-wrap:wrap;align-items:stretch;gap:24px}
.hero-headline{min-width:260px;padding-right:24px;border-right:1px solid #e2e8f0}
.headline-label{font-size:13px;color:#64748b;font-weight:600}
.headline{font-size:56px;line-height:1.05;font-weight:750;letter-spacing:-0.02em;color:#0f172a;font-variant-numeric:tabular-nums}
.headline.pending{color:#92400e}
.stats{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:14px;flex:1;align-content:center}
.stat-label{font-size:12px;color:#64748b;font-weight:600}
.stat-value{font-size:22px;font-weight:650;font-variant-numeric:tabular-nums}
.stat-value small{font-size:13px;color:#64748b;font-weight:500}
.stat-note{font-size:12px;color:#94a3b8}
.notice{border-radius:10px;padding:12px 16px;border:1px solid}
.notice.warn{background:#fffbeb;border-color:#fcd34d;color:#78350f}
.chart-grid{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:20px}
.chart-card{margin:0;padding:14px 16px 8px}
.chart-card figcaption{display:flex;align-items:baseline;gap:10px;flex-wrap:wrap;margin-bottom:4px}
.chart-card figcaption p{margin:0;font-size:12px}
svg.chart{display:block;width:100%;height:auto;font-family:inherit}
.split{display:grid;grid-template-columns:3fr 2fr;gap:20px;align-items:start}
.table-wrap{overflow-x:auto}
table.data{border-collapse:collapse;width:100%}
table.data th,table.data td{padding:6px 10px;border-bottom:1px solid #eef2f6;vertical-align:top}
table.data thead th{font-size:12px;color:#475569;font-weight:650;border-bottom:1px solid #cbd5e1;background:#f8fafc;white-space:nowrap}
table.data tbody tr:nth-child(even){background:#fbfcfe}
table.data tfoot th,table.data tfoot td{border-top:1px solid #cbd5e1;border-bottom:0;font-weight:650}
table.data th[scope=row]{text-align:left;font-weight:600;white-space:nowrap}
table.compact th,table.compact td{padding:5px 10px}
#epoch-table td{white-space:nowrap}
#epoch-table tr.stage-start td{border-top:2px solid #94a3b8}
#epoch-table tr.best td{background:#fff7ed;font-weight:650}
table.kv th[scope=row]{width:1%;color:#334155}
table.kv td{overflow-wrap:anywhere}
code.json{white-space:pre-wrap;color:#0f172a}
.str{color:#0f172a}
pre{margin:0;padding:14px 16px;background:#0f172a;color:#e2e8f0;border-radius:8px;overflow:auto;max-height:560px;line-height:1.45}
.class-grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:6px 28px}
.class-row{display:grid;grid-template-columns:130px 1fr 58px;align-items:center;gap:10px;padding:3px 0}
.class-name{overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.bar-track{height:12px;background:#eef2f6;border-radius:6px;overflow:hidden}
.bar{display:block;height:100%;background:#2563eb;border-radius:6px}
.class-row.weakest .bar{background:#ea580c}
.class-row.weakest .class-name{font-weight:650}
table.heatmap{border-collapse:separate;border-spacing:0;font-size:11px}
table.heatmap th{font-weight:600;color:#475569;padding:1px 3px;white-space:nowrap}
table.heatmap th.hm-layer,table.heatmap th.hm-corner{text-align:left;padding-right:10px;font-family:ui-monospace,"SFMono-Regular","DejaVu Sans Mono",Menlo,Consolas,monospace}
table.heatmap th.hm-stage{text-align:left;border-bottom:1px solid #cbd5e1}
table.heatmap th.hm-epoch{font-weight:500;color:#94a3b8;text-align:center;min-width:16px}
td.hm-cell{min-width:16px;height:18px;padding:0;border:1px solid #fff}
td.hm-missing{background:#e2e8f0}
table.heatmap .stage-start{border-left:2px solid #0f172a}
.hm-figure{margin:14px 0 0}
.hm-figure figcaption{display:flex;align-items:center;gap:16px;flex-wrap:wrap;margin-bottom:6px}
.hm-legend{display:flex;align-items:center;gap:6px;font-size:12px}
.hm-ramp{display:inline-block;width:160px;height:12px;border-radius:3px}
footer{max-width:1200px;margin:0 auto;color:#94a3b8;font-size:12px;text-align:center}
@media (max-width:900px){.chart-grid,.split{grid-template-columns:1fr}.hero-headline{border-right:0;padding-right:0}}
@media print{html{background:#fff}body{padding:0}.card{box-shadow:none;break-inside:avoid}pre{max-height:none;white-space:pre-wrap}}
`;

/**
 * Renders the run report: one self-contained HTML page (inline CSS and SVG, no script, no
 * external resource), with the headline result, loss/accuracy/learning-rate charts over both
 * stages, per-layer binary-network diagnostics as heat maps (when recorded), the per-epoch table,
 * per-class accuracy, timings, environment, model summary and config.
 *
 * Key numbers carry stable ids and `data-*` attributes holding the full-precision source value:
 * `#final-test-accuracy` (or `#latest-test-accuracy` for an incomplete run), `#total-time`,
 * `#final-test-loss`, `#epoch-count`, `#timing-total`, `#timing-stage-N`, `#timing-mean-epoch`,
 * `#timing-throughput`, `#skipped-lines`, `#incomplete-notice`; with diagnostics in the run,
 * `#diagnostics` holds the heat maps `#heatmap-flip-ratio` and `#heatmap-outside-window` (and, when
 * the run measured activations, `#heatmap-activation-saturated`, `#heatmap-activation-positive` and
 * `#heatmap-constant-channels`), whose cells have `data-layer`, `data-stage`, `data-epoch` and `data-value` (NaN where there is none);
 * each epoch row of `#epoch-table` has `data-stage`, `data-epoch`, `data-global-epoch`, `data-lr`, `data-train-loss`,
 * `data-train-accuracy`, `data-test-loss`, `data-test-accuracy` (when measured), `data-seconds`
 * and `data-images-per-second`; each per-class row has `data-class-index`, `data-class-name`
 * and `data-value`.
 *
 * @param run - The parsed run directory (see `readRunDirectory`).
 * @param options - Page title.
 * @returns The complete HTML document.
 */
export function renderReport(run: RunRecord, options: RenderOptions = {}): string {
  const layout = layoutEpochs(run.epochs);
  const title = options.title ?? 'Training run';
  const docTitle = run.final === undefined ? `${title} · incomplete` : `${title} · ${formatPercent(run.final.testAccuracy)}`;
  return htmlPage(`${docTitle} · bnn-torch report`, 'Generated by bnn-torch from config.json, metrics.jsonl and summary.txt.', [
    renderHero(run, layout, title),
    renderNotices(run),
    renderCharts(layout),
    renderDiagnostics(run.diagnostics),
    renderEpochTable(layout),
    renderClassAccuracy(run.final),
    `<div class="split">${renderTimings(run, layout)}${renderEnvironment(run.final)}</div>`,
    renderSummary(run.summaryText),
    renderConfig(run.config),
  ]);
}

/**
 * @internal A self-contained page in the report's style (strict CSP: no scripts, no network):
 * `sections` inside `<main>`, `footer` (plain text, escaped) at the bottom. Shared by the run report
 * and the ablation page.
 */
export function htmlPage(title: string, footer: string, sections: readonly string[]): string {
  return [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">`,
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    '<meta name="generator" content="bnn-torch">',
    `<title>${escapeHtml(title)}</title>`,
    `<style>${REPORT_STYLE}</style>`,
    '</head>',
    '<body>',
    '<main>',
    ...sections,
    '</main>',
    `<footer>${escapeHtml(footer)} This page is self-contained: no scripts, no network.</footer>`,
    '</body>',
    '</html>',
    '',
  ].join('\n');
}
