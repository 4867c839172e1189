/**
 * How sure a p99 comparison is. Two p99s measured on a shared machine differ by a ms or two
 * from run to run even when nothing changed, so "is A's p99 worse than B's" is answered with
 * a bootstrap: both samples are resampled with replacement many times, and the spread of the
 * resampled differences gives a 95% interval. A is *measurably worse* only when that whole
 * interval lies above the bound. Seeded, so the same samples always give the same interval.
 */
import { percentile, percentileOfSorted } from './dnsperf.js';

/** `x` rounded to `d` decimal places. */
export const round = (x: number, d = 2): number => Math.round(x * 10 ** d) / 10 ** d;

export interface Interval {
  /** The statistic on the samples as measured. */
  value: number;
  /** 2.5th and 97.5th percentiles of the resampled statistic. */
  lo: number;
  hi: number;
}

/** mulberry32: a small seeded PRNG (the interval must not change between two reads of the same data). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function resample(xs: readonly number[], next: () => number, out: Float64Array): Float64Array {
  for (let i = 0; i < out.length; i++) out[i] = xs[Math.floor(next() * xs.length)]!;
  return out.sort();
}

/**
 * `stat(pa, pb)` of the two samples' p-th percentiles (e.g. a difference or a ratio), with
 * its bootstrap 95% interval.
 */
export function bootstrapPercentiles(
  a: readonly number[],
  b: readonly number[],
  stat: (pa: number, pb: number) => number,
  p = 99,
  iterations = 1000,
  seed = 1,
): Interval {
  const value = stat(percentile(a, p), percentile(b, p));
  if (a.length === 0 || b.length === 0) return { value, lo: NaN, hi: NaN };
  const next = rng(seed);
  const ra = new Float64Array(a.length);
  const rb = new Float64Array(b.length);
  const stats = new Float64Array(iterations);
  for (let i = 0; i < iterations; i++) {
    stats[i] = stat(percentileOfSorted(resample(a, next, ra), p), percentileOfSorted(resample(b, next, rb), p));
  }
  stats.sort();
  return { value, lo: percentileOfSorted(stats, 2.5), hi: percentileOfSorted(stats, 97.5) };
}
