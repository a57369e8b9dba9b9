// Escaping and number formatting shared by the page and its charts.

/**
 * Escapes text for HTML element content and quoted attribute values (also valid inside SVG).
 * Quotes are escaped too so the same function is safe in either place.
 */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => {
    switch (c) {
      case '&':
        return '&amp;';
      case '<':
        return '&lt;';
      case '>':
        return '&gt;';
      case '"':
        return '&quot;';
      default:
        return '&#39;';
    }
  });
}

/** A fraction in [0, 1] as a percentage with two decimals (`0.905` → `90.50%`); `—` for NaN. */
export function formatPercent(value: number | undefined, decimals = 2): string {
  if (value === undefined || !Number.isFinite(value)) return '—';
  return `${(value * 100).toFixed(decimals)}%`;
}

/** A loss with four decimals; `—` for missing or non-finite values. */
export function formatLoss(value: number | undefined): string {
  if (value === undefined || !Number.isFinite(value)) return '—';
  return value.toFixed(4);
}

/** Drops trailing zeros of a mantissa: `2.50e-4` → `2.5e-4`, `1.00e-3` → `1e-3`. */
function trimExponential(text: string): string {
  const [mantissa = text, exponent = ''] = text.split('e');
  const trimmed = mantissa.includes('.') ? mantissa.replace(/\.?0+$/, '') : mantissa;
  return exponent === '' ? trimmed : `${trimmed}e${exponent.replace(/^\+/, '')}`;
}

/**
 * A learning rate as people write it in configs: plain decimals down to 1e-3 (`0.002`),
 * exponent notation below that (`2e-4`), at most three significant digits.
 */
export function formatLearningRate(value: number): string {
  if (!Number.isFinite(value)) return '—';
  if (value === 0) return '0';
  if (Math.abs(value) >= 1e-3) return String(Number(value.toPrecision(3)));
  return trimExponential(value.toExponential(2));
}

/** A positive number in exponent notation without padding zeros: `0.002` → `2e-3`. */
export function formatExponent(value: number): string {
  if (!Number.isFinite(value)) return '—';
  return trimExponential(value.toExponential(2));
}

/** A duration: `42.1 s`, `13 min 32 s`, `2 h 05 min`. */
export function formatDuration(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds)) return '—';
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const whole = Math.round(seconds);
  const h = Math.floor(whole / 3600);
  const m = Math.floor((whole % 3600) / 60);
  const s = whole % 60;
  if (h > 0) return `${h} h ${String(m).padStart(2, '0')} min`;
  return `${m} min ${String(s).padStart(2, '0')} s`;
}

/** An integer with thousands separators, independent of the machine's locale. */
export function formatInteger(value: number | undefined): string {
  if (value === undefined || !Number.isFinite(value)) return '—';
  return Math.round(value).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** A number for a `data-*` attribute: full precision so tests can compare it with the source. */
export function dataNumber(value: number): string {
  return Number.isFinite(value) ? String(value) : 'NaN';
}
