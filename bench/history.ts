/**
 * The last full runs, side by side: on a shared 2-core machine one run's verdict on a
 * marginal target is a coin toss, so docs/benchmark.md shows each target over several runs. Every
 * full `npm run bench` appends its summary to bench/history.json (the last HISTORY_MAX are
 * kept); the figures come from results.json as measured, never typed in.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { round } from './stats.js';

type R = Record<string, any>;

export const HISTORY_MAX = 8;

export interface RunSummary {
  date: string;
  /** The code measured: `git describe`-like short commit, `+` when the tree had changes. */
  commit: string;
  /** Median cache-hit throughput over the ceiling's, in the same rounds. */
  hitRatio: number | null;
  coldAddedP50Ms: number | null;
  handshakes: number | null;
  /** race p99 minus the steady upstream's alone (ms), and its 95% bootstrap interval. */
  raceMinusSingleP99Ms: number | null;
  raceMinusSingleP99Interval: [number, number] | null;
  /** hedged p99 over race p99, and its 95% bootstrap interval. */
  hedgedOverRaceP99: number | null;
  hedgedOverRaceP99Interval: [number, number] | null;
  hedgedRequestsPerQuery: number | null;
  settledRssMb: number | null;
  afterFillRssMb: number | null;
  /** The same fill in a dohd under a memory limit (the sidecar's 256 MiB); absent in older runs. */
  afterFillLimitedRssMb?: number | null;
  targets: Record<string, boolean | null>;
}

const n = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const bounds = (i: R | undefined): [number, number] | null => (n(i?.lo) !== null && n(i?.hi) !== null ? [i!.lo, i!.hi] : null);

export function summarize(r: R, commit: string): RunSummary {
  const t = r.tail ?? {};
  const single = n(t.single?.p99Ms);
  const race = n(t.race?.p99Ms);
  const hedged = n(t.hedged?.p99Ms);
  return {
    date: String(r.date),
    commit,
    hitRatio: n(r.cacheHit?.udpFractionOfCeiling),
    coldAddedP50Ms: n(r.coldMiss?.addedOverRoundTrip?.p50Ms),
    handshakes: n(r.tls?.handshakes),
    raceMinusSingleP99Ms: n(t.raceMinusSingleP99Ms?.value) ?? (race !== null && single !== null ? round(race - single, 3) : null),
    raceMinusSingleP99Interval: bounds(t.raceMinusSingleP99Ms),
    hedgedOverRaceP99: n(t.hedgedOverRaceP99?.value) ?? (hedged !== null && race !== null && race > 0 ? round(hedged / race, 3) : null),
    hedgedOverRaceP99Interval: bounds(t.hedgedOverRaceP99),
    hedgedRequestsPerQuery: n(t.hedged?.upstreamRequestsPerQuery),
    settledRssMb: n(r.memory?.settledRssMb),
    afterFillRssMb: n(r.memory?.rssAfterFillMb),
    afterFillLimitedRssMb: n(r.memory?.limited?.rssAfterFillMb),
    targets: { ...(r.targets ?? {}) },
  };
}

export function readHistory(path: string): RunSummary[] {
  if (!existsSync(path)) return [];
  const parsed = JSON.parse(readFileSync(path, 'utf8')) as unknown;
  return Array.isArray(parsed) ? (parsed as RunSummary[]) : [];
}

/** Appends a run (the newest last) and keeps the last HISTORY_MAX; returns what was written. */
export function appendHistory(path: string, run: RunSummary): RunSummary[] {
  const runs = [...readHistory(path), run].slice(-HISTORY_MAX);
  writeFileSync(path, JSON.stringify(runs, null, 2) + '\n');
  return runs;
}

const TARGETS: [key: string, label: string][] = [
  ['cacheHitAtLeast80PctOfCeiling', 'cache-hit UDP ≥ 80% of the ceiling'],
  ['coldMissAddedP50AtMost1MsOverRoundTrip', 'cold miss adds ≤ 1 ms at p50 (over the round trip)'],
  ['atMostOneHandshakePerUpstream', '≤ 1 TLS handshake per upstream'],
  ['raceP99NoWorseThanSingle', '`race` p99 ≤ the steady upstream alone'],
  ['hedgedWithin10PctOfRace', '`hedged` p99 within 10% of `race`, < 1.5 requests/query'],
  ['rssWith100kNamesAtMost150MbSettled', '≤ 150 MB with 100,000 names (settled)'],
  ['rssWith100kNamesAtMost150MbRightAfterFill', '≤ 150 MB with 100,000 names (right after the fill, no memory limit)'],
  ['rssWith100kNamesAtMost150MbRightAfterFillUnderLimit', '≤ 150 MB with 100,000 names (right after the fill, 256 MiB limit)'],
];

/** docs/benchmark.md's view of the history: each run's key figures, then each target's tally. */
export function historyMarkdown(runs: RunSummary[]): string {
  if (runs.length === 0) return '';
  const f = (v: number | null, unit = '', d = 2) => (v === null ? 'n/a' : `${round(v, d)}${unit}`);
  const pct = (v: number | null) => (v === null ? 'n/a' : `${Math.round(v * 100)}%`);
  const signed = (v: number | null) => (v === null ? 'n/a' : `${v > 0 ? '+' : ''}${round(v, 1)} ms`);
  const within = (i: [number, number] | null, show: (v: number) => string) => (i ? ` (${show(i[0])} … ${show(i[1])})` : '');
  const lines = [
    `The last ${runs.length} full runs (bench/history.json, oldest first):`,
    '',
    '| run | code | hits / ceiling | cold miss added p50 | race − alone p99 (95% interval) | hedged / race p99 (95% interval), requests/query | RSS settled / right after the fill: no limit, 256 MiB limit |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...runs.map(
      (s) =>
        `| ${s.date.slice(0, 16).replace('T', ' ')} | ${s.commit} | ${pct(s.hitRatio)} | ${f(s.coldAddedP50Ms, ' ms')} | ${signed(s.raceMinusSingleP99Ms)}${within(s.raceMinusSingleP99Interval ?? null, signed)} | ${pct(s.hedgedOverRaceP99)}${within(s.hedgedOverRaceP99Interval ?? null, pct)}, ${f(s.hedgedRequestsPerQuery)} | ${f(s.settledRssMb, '', 0)} / ${f(s.afterFillRssMb, '', 0)}, ${f(s.afterFillLimitedRssMb ?? null, ' MB', 0)} |`,
    ),
    '',
    '| target | met in |',
    '| --- | --- |',
    ...TARGETS.map(([key, label]) => {
      const known = runs.filter((s) => typeof s.targets[key] === 'boolean');
      const met = known.filter((s) => s.targets[key]).length;
      return `| ${label} | ${known.length ? `${met} of ${known.length} runs` : 'n/a'} |`;
    }),
  ];
  return lines.join('\n');
}
