// Inline SVG line charts, generated at render time so the report needs no script, library or
// network. Scope is deliberately small: one shared x axis of global epochs, linear or log y.
import { escapeHtml } from './format.js';

/** One point of a series; a non-finite `y` breaks the line (a missing or diverged value). */
export interface ChartPoint {
  x: number;
  y: number;
  /** Hover text (an SVG `<title>`), e.g. `stage 2 · epoch 3 · test 84.10%`. */
  label?: string;
}

/** A line on a chart. */
export interface ChartSeries {
  /** Stable key, written as `data-series`. */
  key: string;
  /** Legend text. */
  name: string;
  color: string;
  points: ChartPoint[];
  /** Draw each point as a horizontal step one epoch wide (for per-epoch constants like the lr). */
  step?: boolean;
  /** SVG dash pattern. */
  dash?: string;
}

/** A vertical marker, e.g. where stage 2 begins. */
export interface ChartBoundary {
  x: number;
  /** Text next to the marker's top, for the region to its right. */
  label: string;
}

/** What {@link renderLineChart} draws. */
export interface LineChartSpec {
  /** Element id of the `<svg>`. */
  id: string;
  /** Accessible name of the chart. */
  title: string;
  xLabel: string;
  yLabel: string;
  /** Inclusive x range; every chart of a report gets the same one so they line up. */
  xDomain: [number, number];
  yScale: 'linear' | 'log';
  /** Clamp for a "nice" linear y range (accuracy can never leave [0, 1]). */
  yBounds?: [number, number];
  /** Tick label text from a value; `step` is the linear tick spacing (for choosing decimals). */
  yFormat: (value: number, step: number) => string;
  series: ChartSeries[];
  boundaries?: ChartBoundary[];
  /** Label for the region left of the first boundary. */
  firstRegionLabel?: string;
  width?: number;
  height?: number;
}

const MARGIN = { top: 30, right: 18, bottom: 42, left: 62 };
const AXIS_COLOR = '#94a3b8';
const GRID_COLOR = '#e2e8f0';
const TEXT_COLOR = '#475569';
// Height reserved at the top of the plot for the stage labels.
const LABEL_BAND = 20;
// Beyond this many points, markers turn into a blur and only the line is drawn.
const MAX_MARKERS = 80;

/** The 1-2-5 step nearest to `rough`. */
function niceStep(rough: number): number {
  const power = 10 ** Math.floor(Math.log10(rough));
  const fraction = rough / power;
  const nice = fraction < 1.5 ? 1 : fraction < 3.5 ? 2 : fraction < 7.5 ? 5 : 10;
  return nice * power;
}

interface Axis {
  domain: [number, number];
  ticks: number[];
  step: number;
}

/** A rounded linear range covering [min, max] with about `count` ticks on round numbers. */
export function linearTicks(min: number, max: number, count: number, bounds?: [number, number]): Axis {
  if (min === max) {
    const pad = Math.abs(min) > 0 ? Math.abs(min) * 0.05 : 0.5;
    min -= pad;
    max += pad;
  }
  // A little headroom so extreme points do not sit on the frame when they land on a tick.
  const headroom = (max - min) * 0.03;
  min -= headroom;
  max += headroom;
  const step = niceStep((max - min) / count);
  let lo = Math.floor(min / step + 1e-9) * step;
  let hi = Math.ceil(max / step - 1e-9) * step;
  if (bounds !== undefined) {
    lo = Math.max(lo, bounds[0]);
    hi = Math.min(hi, bounds[1]);
  }
  const ticks: number[] = [];
  // Integer tick indices avoid the drift of repeatedly adding a float step.
  for (let i = Math.ceil(lo / step - 1e-9); i * step <= hi + step * 1e-9; i++) ticks.push(i * step);
  return { domain: [lo, hi], ticks, step };
}

/** A log range covering [min, max] (both > 0), ticked at powers of ten, plus 2x and 5x when sparse. */
export function logTicks(min: number, max: number): Axis {
  let lo = Math.log10(min);
  let hi = Math.log10(max);
  // Breathing room so lines do not sit on the frame; more when the lr never changes.
  const pad = hi - lo < 1e-9 ? 0.5 : 0.12;
  lo -= pad;
  hi += pad;
  const candidates = (multipliers: number[]): number[] => {
    const out: number[] = [];
    for (let e = Math.floor(lo) - 1; e <= Math.ceil(hi) + 1; e++) {
      for (const m of multipliers) {
        const v = m * 10 ** e;
        const l = Math.log10(v);
        if (l >= lo - 1e-9 && l <= hi + 1e-9) out.push(Number(v.toPrecision(6)));
      }
    }
    return out;
  };
  let ticks = candidates([1]);
  if (ticks.length < 3) ticks = candidates([1, 2, 5]);
  return { domain: [10 ** lo, 10 ** hi], ticks, step: 0 };
}

/** x ticks on whole epochs at multiples of a 1-2-5 step, about `count` of them. */
function epochTicks(domain: [number, number], count: number): number[] {
  const first = Math.ceil(domain[0]);
  const last = Math.floor(domain[1]);
  if (last < first) return [];
  const step = Math.max(1, niceStep((last - first + 1) / count));
  const ticks: number[] = [];
  for (let v = Math.ceil(first / step) * step; v <= last; v += step) ticks.push(v);
  return ticks;
}

const f = (n: number): string => (Math.round(n * 100) / 100).toString();

/**
 * Renders a line chart as a standalone `<svg>` element: frame, grid, ticks, axis titles, legend,
 * boundary markers with region labels, lines and point markers with hover titles.
 */
export function renderLineChart(spec: LineChartSpec): string {
  const width = spec.width ?? 560;
  const height = spec.height ?? 300;
  const plot = {
    left: MARGIN.left,
    top: MARGIN.top,
    right: width - MARGIN.right,
    bottom: height - MARGIN.bottom,
  };
  const [x0, x1] = spec.xDomain;
  const sx = (x: number): number => plot.left + ((x - x0) / (x1 - x0 || 1)) * (plot.right - plot.left);

  const values = spec.series.flatMap((s) => s.points.map((p) => p.y)).filter((y) => Number.isFinite(y) && (spec.yScale === 'linear' || y > 0));
  const parts: string[] = [];
  parts.push(
    `<svg id="${escapeHtml(spec.id)}" class="chart" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${escapeHtml(spec.title)}">`,
    `<title>${escapeHtml(spec.title)}</title>`,
  );

  if (values.length === 0) {
    parts.push(
      `<rect x="${plot.left}" y="${plot.top}" width="${plot.right - plot.left}" height="${plot.bottom - plot.top}" fill="#f8fafc" stroke="${GRID_COLOR}"/>`,
      `<text x="${f((plot.left + plot.right) / 2)}" y="${f((plot.top + plot.bottom) / 2)}" text-anchor="middle" fill="${TEXT_COLOR}" font-size="13">No data recorded</text>`,
      '</svg>',
    );
    return parts.join('');
  }

  const axis =
    spec.yScale === 'log' ? logTicks(Math.min(...values), Math.max(...values)) : linearTicks(Math.min(...values), Math.max(...values), 5, spec.yBounds);
  const [y0, y1] = axis.domain;
  const toUnit = spec.yScale === 'log' ? (v: number): number => (Math.log10(v) - Math.log10(y0)) / (Math.log10(y1) - Math.log10(y0)) : (v: number): number => (v - y0) / (y1 - y0);
  // The top of the plot is kept free of data so the stage labels never sit on a line.
  const dataTop = plot.top + LABEL_BAND;
  const sy = (y: number): number => plot.bottom - toUnit(y) * (plot.bottom - dataTop);

  // Regions alternate a faint tint so the stages read as blocks, not only as a dashed line.
  const boundaries = (spec.boundaries ?? []).filter((b) => b.x > x0 && b.x < x1);
  const edges = [x0, ...boundaries.map((b) => b.x), x1];
  for (let i = 1; i < edges.length - 1; i += 2) {
    const a = sx(edges[i]!);
    const b = sx(edges[i + 1]!);
    parts.push(`<rect class="stage-region" x="${f(a)}" y="${plot.top}" width="${f(b - a)}" height="${plot.bottom - plot.top}" fill="#f1f5f9"/>`);
  }

  // Grid and y ticks.
  parts.push(`<g class="y-axis" font-size="11" fill="${TEXT_COLOR}" text-anchor="end">`);
  for (const t of axis.ticks) {
    const y = f(sy(t));
    parts.push(
      `<line x1="${plot.left}" x2="${plot.right}" y1="${y}" y2="${y}" stroke="${GRID_COLOR}" stroke-width="1"/>`,
      `<text x="${plot.left - 8}" y="${y}" dy="0.32em">${escapeHtml(spec.yFormat(t, axis.step))}</text>`,
    );
  }
  parts.push('</g>');

  // x ticks.
  parts.push(`<g class="x-axis" font-size="11" fill="${TEXT_COLOR}" text-anchor="middle">`);
  for (const t of epochTicks(spec.xDomain, 8)) {
    const x = f(sx(t));
    parts.push(
      `<line x1="${x}" x2="${x}" y1="${plot.bottom}" y2="${plot.bottom + 5}" stroke="${AXIS_COLOR}"/>`,
      `<text x="${x}" y="${plot.bottom + 18}">${t}</text>`,
    );
  }
  parts.push('</g>');

  // Frame: left and bottom axes.
  parts.push(
    `<path d="M${plot.left} ${plot.top}V${plot.bottom}H${plot.right}" fill="none" stroke="${AXIS_COLOR}" stroke-width="1"/>`,
    `<text x="${f((plot.left + plot.right) / 2)}" y="${height - 6}" text-anchor="middle" font-size="12" fill="${TEXT_COLOR}">${escapeHtml(spec.xLabel)}</text>`,
    `<text transform="translate(14 ${f((plot.top + plot.bottom) / 2)}) rotate(-90)" text-anchor="middle" font-size="12" fill="${TEXT_COLOR}">${escapeHtml(spec.yLabel)}</text>`,
  );

  // Stage boundaries, with each region's name just inside its top-left corner.
  const regionLabel = (x: number, text: string): string =>
    `<text x="${f(x + 6)}" y="${plot.top + 14}" font-size="11" font-weight="600" fill="#64748b" stroke="#ffffff" stroke-width="3" paint-order="stroke">${escapeHtml(text)}</text>`;
  if (spec.firstRegionLabel !== undefined && boundaries.length > 0) parts.push(regionLabel(plot.left, spec.firstRegionLabel));
  for (const b of boundaries) {
    const x = f(sx(b.x));
    parts.push(
      `<line class="stage-boundary" data-x="${b.x}" x1="${x}" x2="${x}" y1="${plot.top}" y2="${plot.bottom}" stroke="#64748b" stroke-width="1.25" stroke-dasharray="5 4"/>`,
      regionLabel(sx(b.x), b.label),
    );
  }

  // Lines: one path per series, broken at non-finite values (a diverged loss).
  const inRange = (y: number): boolean => Number.isFinite(y) && (spec.yScale === 'linear' || y > 0);
  for (const s of spec.series) {
    const segments: string[] = [];
    let open = false;
    for (const p of s.points) {
      if (!inRange(p.y)) {
        open = false;
        continue;
      }
      const y = f(sy(p.y));
      if (s.step) {
        const a = f(sx(p.x - 0.5));
        const b = f(sx(p.x + 0.5));
        segments.push(open ? `L${a} ${y}H${b}` : `M${a} ${y}H${b}`);
      } else {
        segments.push(`${open ? 'L' : 'M'}${f(sx(p.x))} ${y}`);
      }
      open = true;
    }
    const dash = s.dash === undefined ? '' : ` stroke-dasharray="${escapeHtml(s.dash)}"`;
    parts.push(
      `<g class="series" data-series="${escapeHtml(s.key)}">`,
      `<path d="${segments.join('')}" fill="none" stroke="${escapeHtml(s.color)}" stroke-width="2" stroke-linejoin="round" stroke-linecap="round"${dash}/>`,
    );
    if (s.points.filter((p) => inRange(p.y)).length <= MAX_MARKERS) {
      for (const p of s.points) {
        if (!inRange(p.y)) continue;
        const tip = p.label === undefined ? '' : `<title>${escapeHtml(p.label)}</title>`;
        parts.push(`<circle cx="${f(sx(p.x))}" cy="${f(sy(p.y))}" r="3" fill="#ffffff" stroke="${escapeHtml(s.color)}" stroke-width="1.75">${tip}</circle>`);
      }
    }
    parts.push('</g>');
  }

  // Legend, right-aligned above the plot. Text width is estimated (no layout engine at render
  // time) from an average glyph width that is generous for common sans-serif fonts.
  const itemWidth = (s: ChartSeries): number => 28 + s.name.length * 7 + 18;
  let lx = plot.right - spec.series.reduce((a, s) => a + itemWidth(s), 0) + 18;
  parts.push(`<g class="legend" font-size="12" fill="#334155">`);
  for (const s of spec.series) {
    const dash = s.dash === undefined ? '' : ` stroke-dasharray="${escapeHtml(s.dash)}"`;
    parts.push(
      `<line x1="${lx}" x2="${lx + 22}" y1="12" y2="12" stroke="${escapeHtml(s.color)}" stroke-width="2.5"${dash}/>`,
      `<circle cx="${lx + 11}" cy="12" r="3" fill="#ffffff" stroke="${escapeHtml(s.color)}" stroke-width="1.75"/>`,
      `<text x="${lx + 28}" y="12" dy="0.32em">${escapeHtml(s.name)}</text>`,
    );
    lx += itemWidth(s);
  }
  parts.push('</g>', '</svg>');
  return parts.join('');
}
