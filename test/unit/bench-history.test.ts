/**
 * The benchmark's run history: each full run's figures and verdicts are kept (the last
 * HISTORY_MAX), and the README's tally counts how many of those runs met each target.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { appendHistory, HISTORY_MAX, historyMarkdown, summarize } from '../../bench/history.js';

const dir = mkdtempSync(join(tmpdir(), 'dohd-history-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The parts of bench/results.json the summary reads. */
function results(date: string, hitRatio: number, raceP99: number, singleP99: number, targets: Record<string, boolean>) {
  return {
    date,
    cacheHit: { udpFractionOfCeiling: hitRatio },
    coldMiss: { addedOverRoundTrip: { p50Ms: 0.3 } },
    tls: { handshakes: 1 },
    tail: { single: { p99Ms: singleP99 }, race: { p99Ms: raceP99 }, hedged: { p99Ms: raceP99 * 1.05, upstreamRequestsPerQuery: 1.01 } },
    memory: { settledRssMb: 138.2, rssAfterFillMb: 311.7 },
    targets,
  };
}

describe('bench history', () => {
  it('summarizes a run from its results: ratios and differences as measured', () => {
    const s = summarize(results('2026-11-26T09:05:00.000Z', 0.833, 13.089, 13.355, { raceP99NoWorseThanSingle: true }), 'abc1234+');
    expect(s).toMatchObject({ commit: 'abc1234+', hitRatio: 0.833, raceMinusSingleP99Ms: -0.266, hedgedOverRaceP99: 1.05, settledRssMb: 138.2, handshakes: 1 });
    expect(s.targets).toEqual({ raceP99NoWorseThanSingle: true });
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
    expect(md).toContain('| 2026-11-26 09:32 | b | 79% | 0.3 ms | +0.3 ms |');
    expect(md).toContain('| 2026-11-26 09:05 | a | 83% | 0.3 ms | -0.3 ms |');
    expect(historyMarkdown([])).toBe('');
  });
});
