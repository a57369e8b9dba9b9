// The ablation's pages: ablation.md (a table to paste into a README) and ablation.html (self-
// contained, in the run report's style, linking each run's report.html).
import { dataNumber, escapeHtml, formatDuration, formatLoss, formatPercent } from '../report/format.js';
import { htmlPage } from '../report/render.js';
import type { AblationDelta, AblationResult, AblationRunResult, AblationVariantResult } from './result.js';

const points = (fraction: number): string => {
  const v = 100 * fraction;
  return `${v >= 0 ? '+' : '-'}${Math.abs(v).toFixed(2)}`;
};

/** "91.23 ± 0.15%", "91.23% (1 seed)" or "—". */
export function formatAccuracy(v: AblationVariantResult): string {
  if (v.mean === null) return '—';
  if (v.sd === null) return `${(100 * v.mean).toFixed(2)}% (1 seed)`;
  return `${(100 * v.mean).toFixed(2)} ± ${(100 * v.sd).toFixed(2)}%`;
}

/**
 * "-0.43 pp [-0.90, +0.04]", "-0.43 pp [-0.90, +0.04] (Welch)", "-0.43 pp [-0.90, +0.04] (paired
 * on 2 shared seeds, 1 unpaired run left out)", "-0.43 pp (1 seed: no CI)", or "—" (the recipe, or
 * nothing yet).
 */
export function formatDelta(v: AblationVariantResult): string {
  if (v.delta === null) return '—';
  const d = v.delta;
  if (d.low === null || d.high === null) return `${points(d.difference)} pp (1 seed: no CI)`;
  return `${points(d.difference)} pp [${points(d.low)}, ${points(d.high)}]${methodMark(d)}`;
}

/** How an interval that is not the plain paired one was made, said where it is shown. */
function methodMark(d: AblationDelta): string {
  if (d.method === 'welch') return ' (Welch)';
  if (d.method !== 'paired-shared') return '';
  const runs = d.unpaired === undefined ? 'the other runs' : `${d.unpaired} unpaired run${d.unpaired === 1 ? '' : 's'}`;
  return ` (paired on ${d.pairs ?? 'the'} shared seeds, ${runs} left out)`;
}

/** How the Δ column reads, under the table of either page. */
function deltaExplanation(level: number): string {
  return (
    `Δ is the difference of means to the recipe in percentage points with a paired ${level}% t interval over the seeds ` +
    `(each seed trains both, so its difference is one observation; where the two finished different seeds, Δ and the interval ` +
    `are over the seeds both finished, marked with the pairs used and the unpaired runs left out; Welch's interval, marked, ` +
    `where fewer than two seeds are shared; none with a single seed)`
  );
}

const minutes = (v: AblationVariantResult): string => (v.meanSeconds === null ? '—' : (v.meanSeconds / 60).toFixed(1));
const runsCell = (v: AblationVariantResult): string => (v.n === v.planned ? String(v.n) : `${v.n} of ${v.planned}`);
const mdCell = (text: string): string => text.replace(/\|/g, '\\|');
const codeSpan = (text: string): string => (text.includes('`') ? `\`\` ${text} \`\`` : `\`${text}\``);

/** ablation.md: the table, how to read it, the flags of each variant and the command line. */
export function renderAblationMarkdown(r: AblationResult): string {
  const finished = r.runs.filter((x) => x.status === 'finished').length;
  const level = Math.round(r.level * 100);
  const lines = [
    `| variant | what changes | accuracy (mean ± sd) | Δ vs recipe [${level}% CI] | min per run | runs |`,
    '|---|---|---:|---:|---:|---:|',
    ...r.variants.map((v) => `| ${mdCell(v.name)} | ${mdCell(v.change)} | ${formatAccuracy(v)} | ${formatDelta(v)} | ${minutes(v)} | ${runsCell(v)} |`),
    '',
    `Final test accuracy after both stages over seeds ${r.seeds.join(', ')}; ${deltaExplanation(level)}; min per run is the mean training time.` +
      (r.complete ? '' : ` **Partial: ${finished} of ${r.runs.length} runs finished** (running the command again continues it).`),
    '',
    'Flags of each variant, over the common ones:',
    '',
    ...r.variants.map((v) => `- ${v.name}: ${v.flags.length > 0 ? codeSpan(v.flags.join(' ')) : '(none)'}${v.addition ? ' (addition)' : ''}`),
    ...(r.notes.length > 0 ? ['', ...r.notes.map((n) => `Note: ${n}`)] : []),
    '',
    'Command:',
    '',
    '```sh',
    r.command,
    '```',
    '',
  ];
  return lines.join('\n');
}

function statusBadge(status: AblationRunResult['status']): string {
  const kind = status === 'finished' ? 'ok' : 'warn';
  return `<span class="badge ${kind}">${escapeHtml(status)}</span>`;
}

/**
 * ablation.html: one self-contained page (inline CSS, no script, no network) with the table, every
 * run with a link to its `report.html`, and the command. Table cells carry `data-*` attributes
 * with the full-precision values: each `#variant-table` row has `data-variant`, `data-n`,
 * `data-mean`, `data-sd` and `data-delta`; each `#run-table` row `data-variant`, `data-seed`,
 * `data-status` and `data-accuracy`.
 */
export function renderAblationHtml(r: AblationResult, title: string): string {
  const finished = r.runs.filter((x) => x.status === 'finished').length;
  const level = Math.round(r.level * 100);
  const num = (v: number | null): string => (v === null ? 'NaN' : dataNumber(v));
  const variantRows = r.variants
    .map(
      (v) =>
        `<tr data-variant="${escapeHtml(v.name)}" data-n="${v.n}" data-mean="${num(v.mean)}" data-sd="${num(v.sd)}" data-delta="${num(v.delta?.difference ?? null)}">` +
        `<th scope="row">${escapeHtml(v.name)}${v.addition ? ' <span class="badge warn">addition</span>' : ''}</th>` +
        `<td>${escapeHtml(v.change)}<br><code class="muted">${escapeHtml(v.flags.join(' ') || '(no flags)')}</code></td>` +
        `<td class="num">${escapeHtml(formatAccuracy(v))}</td><td class="num">${escapeHtml(formatDelta(v))}</td>` +
        `<td class="num">${escapeHtml(minutes(v))}</td><td class="num">${escapeHtml(runsCell(v))}</td></tr>`,
    )
    .join('');
  const runRows = r.runs
    .map(
      (x) =>
        `<tr data-variant="${escapeHtml(x.variant)}" data-seed="${x.seed}" data-status="${x.status}" data-accuracy="${num(x.accuracy)}">` +
        `<th scope="row">${escapeHtml(x.variant)}</th><td class="num">${x.seed}</td><td>${statusBadge(x.status)}${x.reused ? ' <span class="muted small">reused</span>' : ''}` +
        `${x.error ? `<br><span class="small">${escapeHtml(x.error)}</span>` : ''}</td>` +
        `<td class="num">${formatPercent(x.accuracy ?? undefined)}</td><td class="num">${formatLoss(x.loss ?? undefined)}</td><td class="num">${formatDuration(x.seconds ?? undefined)}</td>` +
        `<td>${x.report ? `<a href="${escapeHtml(x.report)}">${escapeHtml(x.dir)}</a>` : `<code>${escapeHtml(x.dir)}</code>`}</td></tr>`,
    )
    .join('');
  const recipe = r.variants.find((v) => v.name === 'recipe');
  return htmlPage(`${title} · bnn-torch ablation`, "Generated by bnn ablate from the runs' metrics.jsonl.", [
    `<header class="hero card"><div class="hero-title"><div class="eyebrow">bnn-torch · ablation <span id="ablation-status" class="badge ${r.complete ? 'ok' : 'warn'}" data-status="${r.complete ? 'complete' : 'partial'}">${r.complete ? 'complete' : 'partial'}</span></div>` +
      `<h1>${escapeHtml(title)}</h1><p class="muted">${finished} of ${r.runs.length} runs finished · seeds ${escapeHtml(r.seeds.join(', '))} · updated ${escapeHtml(r.updated)}</p></div>` +
      `<div class="hero-body"><div class="hero-headline"><div class="headline-label">Recipe, final test accuracy</div><div class="headline${recipe?.mean === null ? ' pending' : ''}">` +
      `<span id="recipe-accuracy" data-value="${num(recipe?.mean ?? null)}">${escapeHtml(recipe ? formatAccuracy(recipe) : '—')}</span></div></div></div></header>`,
    `<section class="card" id="variants"><h2>What each trick is worth</h2><p class="muted">Final test accuracy after both stages, mean ± standard deviation over seeds; ${escapeHtml(deltaExplanation(level))}.</p>` +
      `<div class="table-wrap"><table class="data" id="variant-table"><thead><tr><th>variant</th><th>what changes</th><th class="num">accuracy</th><th class="num">Δ vs recipe [${level}% CI]</th><th class="num">min per run</th><th class="num">runs</th></tr></thead><tbody>${variantRows}</tbody></table></div>` +
      (r.notes.length > 0 ? r.notes.map((n) => `<p class="small muted">${escapeHtml(n)}</p>`).join('') : '') +
      `</section>`,
    `<section class="card" id="runs"><h2>Runs</h2><div class="table-wrap"><table class="data compact" id="run-table"><thead><tr><th>variant</th><th class="num">seed</th><th>status</th><th class="num">accuracy</th><th class="num">loss</th><th class="num">time</th><th>report</th></tr></thead><tbody>${runRows}</tbody></table></div></section>`,
    `<section class="card" id="command"><h2>Command</h2><p class="muted">Running it again continues the ablation: finished runs are reused, an interrupted run resumes.</p><pre>${escapeHtml(r.command)}</pre></section>`,
  ]);
}
