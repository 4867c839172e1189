/**
 * The benchmark's verdicts on noisy p99s (bootstrap intervals) and its run history: each
 * full run's figures and verdicts are kept (the last HISTORY_MAX), and docs/benchmark.md's tally
 * counts how many of those runs met each target.
 */
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { appendHistory, HISTORY_MAX, historyMarkdown, summarize, type RunSummary } from '../../../bench/history.js';
import { tableMarkdown, updateBenchmarkDoc } from '../../../bench/report.js';
import { bootstrapPercentiles } from '../../../bench/stats.js';

const dir = mkdtempSync(join(tmpdir(), 'dohd-history-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The parts of bench/results.json the summary reads. */
function results(date: string, hitRatio: number, raceP99: number, singleP99: number, targets: Record<string, boolean>) {
  return {
    date,
    cacheHit: { udpFractionOfCeiling: hitRatio },
    coldMiss: { addedOverRoundTrip: { p50Ms: 0.3 } },
    tls: { handshakes: 1 },
    tail: {
      single: { p99Ms: singleP99 },
      race: { p99Ms: raceP99 },
      hedged: { p99Ms: raceP99 * 1.05, upstreamRequestsPerQuery: 1.01 },
      raceMinusSingleP99Ms: { value: Math.round((raceP99 - singleP99) * 1000) / 1000, lo: raceP99 - singleP99 - 1.5, hi: raceP99 - singleP99 + 1.5 },
    },
    memory: { settledRssMb: 138.2, rssAfterFillMb: 311.7 },
    targets,
  };
}

describe('bench history', () => {
  it('summarizes a run from its results: ratios and differences as measured', () => {
    const s = summarize(results('2026-11-26T09:05:00.000Z', 0.833, 13.089, 13.355, { raceP99NoWorseThanSingle: true }), 'abc1234+');
    expect(s).toMatchObject({ commit: 'abc1234+', hitRatio: 0.833, raceMinusSingleP99Ms: -0.266, hedgedOverRaceP99: 1.05, settledRssMb: 138.2, handshakes: 1 });
    expect(s.raceMinusSingleP99Interval![0]).toBeCloseTo(-1.766, 3);
    expect(s.hedgedOverRaceP99Interval).toBeNull(); // not measured: no interval, not a made-up one
    expect(s.targets).toEqual({ raceP99NoWorseThanSingle: true });
    // The fill under a memory limit: read when measured, n/a in runs from before it was.
    expect(s.afterFillLimitedRssMb).toBeNull();
    const limited = summarize({ ...results('2026-11-26T11:30:00Z', 0.8, 10, 10, { rssWith100kNamesAtMost150MbRightAfterFillUnderLimit: true }), memory: { settledRssMb: 121, rssAfterFillMb: 270.4, limited: { limitMb: 256, rssAfterFillMb: 141.3 } } }, 'd');
    expect(limited.afterFillLimitedRssMb).toBe(141.3);
    const md = historyMarkdown([s, limited]);
    expect(md).toContain('| 138 / 312, n/a |');
    expect(md).toContain('| 121 / 270, 141 MB |');
    expect(md).toContain('| ≤ 150 MB with 100,000 names (right after the fill, 256 MiB limit) | 1 of 1 runs |');
    // A phase that did not run is n/a, not zero.
    expect(summarize({ date: 'x', targets: {} }, 'c').raceMinusSingleP99Ms).toBeNull();
  });

  it('keeps the last runs only, oldest first', () => {
    const path = join(dir, 'history.json');
    for (let i = 0; i < HISTORY_MAX + 3; i++) appendHistory(path, summarize(results(`2026-11-26T10:${String(i).padStart(2, '0')}:00Z`, 0.8, 10, 10, {}), `c${i}`));
    const kept = JSON.parse(readFileSync(path, 'utf8')) as { commit: string }[];
    expect(kept).toHaveLength(HISTORY_MAX);
    expect(kept[0]!.commit).toBe('c3');
    expect(kept[kept.length - 1]!.commit).toBe(`c${HISTORY_MAX + 2}`);
  });

  it("tallies each target over the runs, leaving out runs that did not measure it", () => {
    const runs = [
      summarize(results('2026-11-26T09:05:00Z', 0.83, 13.0, 13.3, { cacheHitAtLeast80PctOfCeiling: true, raceP99NoWorseThanSingle: true }), 'a'),
      summarize(results('2026-11-26T09:32:00Z', 0.79, 11.8, 11.5, { cacheHitAtLeast80PctOfCeiling: false, raceP99NoWorseThanSingle: false }), 'b'),
      summarize(results('2026-11-26T10:00:00Z', 0.86, 11.0, 11.2, { cacheHitAtLeast80PctOfCeiling: true }), 'c'),
    ];
    const md = historyMarkdown(runs);
    expect(md).toContain('The last 3 full runs');
    expect(md).toContain('| cache-hit UDP ≥ 80% of the ceiling | 2 of 3 runs |');
    expect(md).toContain('| `race` p99 ≤ the steady upstream alone | 1 of 2 runs |');
    expect(md).toContain('| ≤ 150 MB with 100,000 names (settled) | n/a |');
    // One row per run, with its code and figures.
    expect(md).toContain('| 2026-11-26 09:32 | b | 79% | 0.3 ms | +0.3 ms (-1.2 ms … +1.8 ms) |');
    expect(md).toContain('| 2026-11-26 09:05 | a | 83% | 0.3 ms | -0.3 ms (-1.8 ms … +1.2 ms) |');
    expect(historyMarkdown([])).toBe('');
  });
});

describe('bootstrap interval of a p99 comparison', () => {
  /** Latency-like samples: mostly around `base`, a tail up to 3x. Deterministic. */
  function sample(n: number, base: number, seed: number): number[] {
    let x = seed;
    return Array.from({ length: n }, () => {
      x = (x * 1103515245 + 12345) % 2 ** 31;
      const u = x / 2 ** 31;
      return base * (1 + (u > 0.97 ? 2 * u : 0.3 * u));
    });
  }

  it('two samples of the same distribution: the interval of the difference holds 0', () => {
    const i = bootstrapPercentiles(sample(6000, 6, 1), sample(6000, 6, 2), (a, b) => a - b);
    expect(i.lo).toBeLessThanOrEqual(0);
    expect(i.hi).toBeGreaterThanOrEqual(0);
    expect(i.lo).toBeLessThanOrEqual(i.value);
    expect(i.hi).toBeGreaterThanOrEqual(i.value);
  });

  it('a sample 2 ms slower throughout is measurably worse: the whole interval is above 0', () => {
    const slow = sample(6000, 6, 3).map((v) => v + 2);
    const i = bootstrapPercentiles(slow, sample(6000, 6, 4), (a, b) => a - b);
    expect(i.lo).toBeGreaterThan(0);
    expect(i.value).toBeGreaterThan(1.5);
  });

  it('is seeded: the same samples give the same interval', () => {
    const a = sample(3000, 5, 5);
    const b = sample(3000, 5, 6);
    expect(bootstrapPercentiles(a, b, (x, y) => x / y)).toEqual(bootstrapPercentiles(a, b, (x, y) => x / y));
    expect(Number.isNaN(bootstrapPercentiles([], b, (x, y) => x - y).lo)).toBe(true);
  });
});

describe('the page the benchmark writes', () => {
  const root = (p: string) => new URL(`../../../${p}`, import.meta.url).pathname;

  it('is docs/benchmark.md alone: its tables between the markers, the rest of the page and the README untouched', () => {
    const page = join(dir, 'benchmark.md');
    copyFileSync(root('docs/benchmark.md'), page);
    const before = readFileSync(page, 'utf8');
    const results = JSON.parse(readFileSync(root('bench/results.json'), 'utf8')) as Record<string, unknown>;
    const history = JSON.parse(readFileSync(root('bench/history.json'), 'utf8')) as RunSummary[];
    expect(updateBenchmarkDoc(page, results, history)).toBe(true);
    const after = readFileSync(page, 'utf8');
    const start = '<!-- bench:start -->';
    const end = '<!-- bench:end -->';
    // Outside the markers, nothing changed; inside, the tables of these results.
    expect(after.slice(0, after.indexOf(start))).toBe(before.slice(0, before.indexOf(start)));
    expect(after.slice(after.indexOf(end))).toBe(before.slice(before.indexOf(end)));
    expect(after).toContain(tableMarkdown(results));
    expect(after).toContain(historyMarkdown(history));
    // The README has no tables for the benchmark to rewrite.
    expect(readFileSync(root('README.md'), 'utf8')).not.toContain(start);
    // A page without the markers is left as it is.
    const bare = join(dir, 'bare.md');
    writeFileSync(bare, '# no markers\n');
    expect(updateBenchmarkDoc(bare, results, history)).toBe(false);
    expect(readFileSync(bare, 'utf8')).toBe('# no markers\n');
  });

  it('the committed page holds the tables of the committed results (bench/results.json)', () => {
    const results = JSON.parse(readFileSync(root('bench/results.json'), 'utf8')) as Record<string, unknown>;
    expect(readFileSync(root('docs/benchmark.md'), 'utf8')).toContain(tableMarkdown(results));
  });
});
