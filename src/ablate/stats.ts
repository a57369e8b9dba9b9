// The statistics of an ablation table: mean and sample standard deviation over seeds, and the
// difference of two variants' means with a paired t interval (the same seeds on both sides: each
// seed's difference is one observation) or Welch's t interval (unequal variances, fractional
// degrees of freedom, so the t quantile must accept any positive df, not only whole numbers).
import { rangeError } from '../errors.js';

/** Mean and sample standard deviation (n - 1) of a list of values. */
export interface Summary {
  n: number;
  /** NaN when there are no values. */
  mean: number;
  /** Undefined below two values (a single seed has no spread). */
  sd: number | undefined;
}

/** The summary of `values`. */
export function summarize(values: readonly number[]): Summary {
  const n = values.length;
  if (n === 0) return { n, mean: Number.NaN, sd: undefined };
  const mean = values.reduce((s, v) => s + v, 0) / n;
  if (n < 2) return { n, mean, sd: undefined };
  const ss = values.reduce((s, v) => s + (v - mean) ** 2, 0);
  return { n, mean, sd: Math.sqrt(ss / (n - 1)) };
}

// Lanczos approximation (g = 7, 9 coefficients): about 15 significant digits for x > 0.
const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059, 12.507343278686905, -0.13857109526572012,
  9.9843695780195716e-6, 1.5056327351493116e-7,
];

/** ln Γ(x) for x > 0. */
export function logGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x); // reflection
  const z = x - 1;
  let sum = LANCZOS[0]!;
  for (let i = 1; i < LANCZOS.length; i++) sum += LANCZOS[i]! / (z + i);
  const t = z + 7.5;
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(sum);
}

// Lentz's continued fraction for the incomplete beta function (Numerical Recipes' betacf); it
// converges quickly for x < (a + 1) / (a + b + 2), which the caller arranges by symmetry.
function betaContinuedFraction(x: number, a: number, b: number): number {
  const tiny = 1e-300;
  let c = 1;
  let d = 1 - ((a + b) * x) / (a + 1);
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  for (let m = 1; m <= 1000; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((a + m2 - 1) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + m2 + 1));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const step = d * c;
    h *= step;
    if (Math.abs(step - 1) < 1e-16) return h;
  }
  return h; // 1000 terms reach double precision for every a, b the t distribution asks for
}

/** The regularised incomplete beta function I_x(a, b), for a, b > 0 and x in [0, 1]. */
export function regularizedIncompleteBeta(x: number, a: number, b: number): number {
  if (!(a > 0 && b > 0)) throw rangeError(`the incomplete beta function needs a, b > 0, got ${a}, ${b}`);
  if (!(x >= 0 && x <= 1)) throw rangeError(`the incomplete beta function needs x in [0, 1], got ${x}`);
  if (x === 0 || x === 1) return x;
  const front = Math.exp(logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log1p(-x));
  if (x < (a + 1) / (a + b + 2)) return (front * betaContinuedFraction(x, a, b)) / a;
  return 1 - (front * betaContinuedFraction(1 - x, b, a)) / b;
}

function checkDf(df: number): void {
  if (!(Number.isFinite(df) && df > 0)) throw rangeError(`degrees of freedom must be a finite number > 0, got ${df}`);
}

/** P(T <= t) for Student's t distribution with `df` (> 0, fractional allowed) degrees of freedom. */
export function studentTCdf(t: number, df: number): number {
  checkDf(df);
  if (Number.isNaN(t)) return Number.NaN;
  if (t === Number.POSITIVE_INFINITY) return 1;
  if (t === Number.NEGATIVE_INFINITY) return 0;
  // P(|T| > |t|) = I_{df / (df + t²)}(df / 2, 1 / 2).
  const tail = 0.5 * regularizedIncompleteBeta(df / (df + t * t), df / 2, 0.5);
  return t > 0 ? 1 - tail : tail;
}

/**
 * The p-quantile of Student's t distribution with `df` degrees of freedom (any finite df > 0, as
 * Welch's interval needs): the t with P(T <= t) = p, found by bisection on the exact distribution
 * function to about 1e-12.
 */
export function studentTQuantile(p: number, df: number): number {
  checkDf(df);
  if (!(p > 0 && p < 1)) throw rangeError(`the probability must be in (0, 1), got ${p}`);
  if (p === 0.5) return 0;
  if (p < 0.5) return -studentTQuantile(1 - p, df);
  let lo = 0;
  let hi = 1;
  while (studentTCdf(hi, df) < p) {
    lo = hi;
    hi *= 2;
  }
  for (let i = 0; i < 200 && hi - lo > 1e-13 * Math.max(1, hi); i++) {
    const mid = 0.5 * (lo + hi);
    if (studentTCdf(mid, df) < p) lo = mid;
    else hi = mid;
  }
  return 0.5 * (lo + hi);
}

/** A difference of means with its confidence interval. */
export interface DifferenceInterval {
  /** mean(a) - mean(b). */
  difference: number;
  low: number;
  high: number;
  /**
   * Degrees of freedom: Welch–Satterthwaite's, or pairs - 1 for a paired interval (undefined when
   * nothing varies).
   */
  df: number | undefined;
  /** The confidence level, e.g. 0.95. */
  level: number;
}

/**
 * Welch's t interval for mean(a) - mean(b) (no assumption of equal variances). Undefined when
 * either sample has fewer than two values: one seed says nothing about the spread. When neither
 * sample varies at all the interval is the difference itself.
 */
export function welchInterval(a: readonly number[], b: readonly number[], level = 0.95): DifferenceInterval | undefined {
  if (!(level > 0 && level < 1)) throw rangeError(`the confidence level must be in (0, 1), got ${level}`);
  const sa = summarize(a);
  const sb = summarize(b);
  if (sa.sd === undefined || sb.sd === undefined) return undefined;
  const difference = sa.mean - sb.mean;
  const va = sa.sd ** 2 / sa.n;
  const vb = sb.sd ** 2 / sb.n;
  const se = Math.sqrt(va + vb);
  if (se === 0) return { difference, low: difference, high: difference, df: undefined, level };
  const df = (va + vb) ** 2 / (va ** 2 / (sa.n - 1) + vb ** 2 / (sb.n - 1));
  const half = studentTQuantile(1 - (1 - level) / 2, df) * se;
  return { difference, low: difference - half, high: difference + half, df, level };
}

/**
 * The paired t interval for mean(a - b), where a[i] and b[i] belong together (an ablation's variant
 * and recipe trained with the same seed): the differences' mean ± t(n - 1) · sd / √n. A shared
 * seed makes the two sides move together, and pairing takes that common part out, which Welch's
 * interval cannot. Undefined below two pairs; when every difference is the same the interval is
 * that difference.
 */
export function pairedInterval(a: readonly number[], b: readonly number[], level = 0.95): DifferenceInterval | undefined {
  if (!(level > 0 && level < 1)) throw rangeError(`the confidence level must be in (0, 1), got ${level}`);
  if (a.length !== b.length) throw rangeError(`a paired interval needs as many values on both sides, got ${a.length} and ${b.length}`);
  const d = summarize(a.map((v, i) => v - b[i]!));
  if (d.sd === undefined) return undefined;
  if (d.sd === 0) return { difference: d.mean, low: d.mean, high: d.mean, df: undefined, level };
  const df = d.n - 1;
  const half = (studentTQuantile(1 - (1 - level) / 2, df) * d.sd) / Math.sqrt(d.n);
  return { difference: d.mean, low: d.mean - half, high: d.mean + half, df, level };
}
