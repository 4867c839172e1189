/** Turns bench/results.json into the SVG chart and the tables of docs/benchmark.md (the only page the benchmark writes). */
import { readFileSync, writeFileSync } from 'node:fs';
import { historyMarkdown, type RunSummary } from './history.js';

type R = Record<string, any>;

function bars(title: string, unit: string, rows: [string, number][], x: number, y: number, w: number): string {
  const max = Math.max(...rows.map((r) => (Number.isFinite(r[1]) ? r[1] : 0)), 1e-9);
  const rowH = 24;
  let s = `<text x="${x}" y="${y}" font-weight="bold">${title}</text>`;
  rows.forEach(([label, v], i) => {
    const yy = y + 10 + i * rowH;
    const bw = Number.isFinite(v) ? Math.max(1, (v / max) * (w - 230)) : 0;
    s += `<text x="${x}" y="${yy + 15}">${label}</text>`;
    s += `<rect x="${x + 140}" y="${yy + 3}" width="${bw.toFixed(1)}" height="16" fill="${i % 2 ? '#5b8def' : '#2a5bd7'}"/>`;
    s += `<text x="${x + 146 + bw}" y="${yy + 15}">${Number.isFinite(v) ? `${v} ${unit}` : 'n/a'}</text>`;
  });
  return s;
}

const num = (v: unknown) => (typeof v === 'number' ? v : NaN);

export function renderChart(r: R): string {
  const hit = r.cacheHit ?? {};
  const cold = r.coldMiss ?? {};
  const tail = r.tail ?? {};
  const mem = r.memory ?? {};
  const workers: R[] = r.workers ?? [];
  const body = [
    bars('Cache hits, UDP (queries/s, dnsperf; medians of interleaved rounds)', 'q/s', [
      ['Node ceiling', num(hit.ceilingUdp?.qps)],
      ['dohd', num(hit.udp?.qps)],
      ...workers.filter((w) => w.workers > 1).map((w): [string, number] => [`dohd, ${w.workers} workers`, num(w.qps)]),
      ['dohd over TCP', num(hit.tcp?.qps)],
    ], 20, 30, 580),
    bars(`Cold miss latency, p50 / p99 (ms, ${cold.qps ?? '?'} q/s)`, 'ms', [
      ['upstream direct p50', num(cold.upstreamRoundTrip?.p50Ms)],
      ['dohd p50', num(cold.dohd?.p50Ms)],
      ['upstream direct p99', num(cold.upstreamRoundTrip?.p99Ms)],
      ['dohd p99', num(cold.dohd?.p99Ms)],
    ], 20, 190, 580),
    bars('p99 with one jittery upstream (ms)', 'ms', [
      ['steady one alone', num(tail.single?.p99Ms)],
      ['race', num(tail.race?.p99Ms)],
      ['hedged', num(tail.hedged?.p99Ms)],
    ], 620, 30, 560),
    bars('Resident memory (MB)', 'MB', [
      ['idle', num(mem.idleRssMb)],
      ['100k names, settled', num(mem.settledRssMb)],
      ['right after the fill', num(mem.rssAfterFillMb)],
      ['peak while filling', num(mem.peakRssDuringFillMb)],
      [`after the fill, ${mem.limited?.limitMb ?? '?'} MiB limit`, num(mem.limited?.rssAfterFillMb)],
    ], 620, 190, 560),
  ].join('\n');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="1200" height="330" font-family="sans-serif" font-size="13">
<rect width="100%" height="100%" fill="white"/>
${body}
<text x="20" y="320" fill="#666" font-size="11">dohd benchmark, ${r.date} — ${r.machine.cpus} × ${r.machine.model}, Node ${r.machine.node}, load average ${r.machine.loadavgAtStart?.[0]} → ${r.machine.loadavgAtEnd?.[0]}; measured by bench/run.ts</text>
</svg>
`;
}

/** `; <what>: <value> (95% interval <lo> … <hi>)` for a bootstrap interval (bench/stats.ts), or nothing. */
function interval(i: R | undefined, what: string, f: (v: number) => string): string {
  return i && Number.isFinite(i.lo) ? `; ${what}: ${f(i.value)} (95% interval ${f(i.lo)} … ${f(i.hi)})` : '';
}

export function tableMarkdown(r: R): string {
  const hit = r.cacheHit;
  const cold = r.coldMiss;
  const mem = r.memory;
  const t = r.tail ?? {};
  const g = r.targets;
  const ok = (b: boolean | null | undefined) => (b === null || b === undefined ? 'n/a' : b ? 'met' : '**missed**');
  const tail = (k: string) =>
    t[k]?.p99Ms !== undefined
      ? `p50 ${t[k].p50Ms} ms, p99 ${t[k].p99Ms} ms, ${t[k].upstreamRequestsPerQuery} upstream requests/query${t[k].dohdCpuMicrosecondsPerQuery !== undefined ? `, dohd CPU ${t[k].dohdCpuMicrosecondsPerQuery} µs/query` : ''} (${t[k].samples} queries${t[k].roundP99Ms ? `; p99 by round: ${t[k].roundP99Ms.join(', ')}` : ''})`
      : `not run (${t[k]?.skipped ?? 'n/a'})`;
  const rows: string[] = [];
  if (hit) {
    rows.push(
      `| cache-hit UDP throughput | ${hit.udp.qps} q/s = ${Math.round(hit.udpFractionOfCeiling * 100)}% of the Node ceiling (${hit.ceilingUdp.qps} q/s); rounds: ${hit.rounds.map((x: R) => `${Math.round(x.ratio * 100)}%`).join(', ')} | ≥ 80%: ${ok(g.cacheHitAtLeast80PctOfCeiling)} |`,
      `| CPU time per cache hit at ${hit.cpuQps} q/s | dohd ${hit.cpuMicrosecondsPerQuery.dohd} µs, ceiling ${hit.cpuMicrosecondsPerQuery.ceiling} µs (ceiling/dohd = ${Math.round((100 * hit.cpuMicrosecondsPerQuery.ceiling) / hit.cpuMicrosecondsPerQuery.dohd)}%) | |`,
      `| cache-hit UDP latency at ${hit.latencyQps} q/s | p50 ${hit.udp.p50Ms} ms, p99 ${hit.udp.p99Ms} ms (ceiling: p50 ${hit.ceilingUdp.p50Ms}, p99 ${hit.ceilingUdp.p99Ms}) | |`,
      `| cache-hit TCP | ${hit.tcp.qps} q/s; at ${hit.latencyQps} q/s p50 ${hit.tcp.p50Ms} ms, p99 ${hit.tcp.p99Ms} ms | |`,
    );
  }
  for (const w of r.workers ?? [])
    rows.push(`| cache-hit UDP, \`--workers ${w.workers}\` | ${w.qps} q/s (ceiling in the same rounds: ${w.ceilingQps ?? '?'} q/s; median ratio ${Math.round(w.fractionOfCeiling * 100)}%); ${w.rssMb} MB resident, all processes | |`);
  if (cold) {
    rows.push(
      `| cold miss at ${cold.qps} q/s | dohd p50 ${cold.dohd.p50Ms} ms, p99 ${cold.dohd.p99Ms} ms; the upstream asked directly by a DoH client: p50 ${cold.upstreamRoundTrip.p50Ms}, p99 ${cold.upstreamRoundTrip.p99Ms} | |`,
      `| cold-miss added latency, over the upstream's round trip | p50 ${cold.addedOverRoundTrip.p50Ms} ms, p99 ${cold.addedOverRoundTrip.p99Ms} ms | p50 ≤ 1 ms: ${ok(g.coldMissAddedP50AtMost1MsOverRoundTrip)} |`,
      `| cold-miss added latency, over the upstream's service time | p50 ${cold.addedOverService.p50Ms} ms, p99 ${cold.addedOverService.p99Ms} ms (service, measured inside the upstream: p50 ${cold.upstreamServiceViaDohd.p50Ms}, p99 ${cold.upstreamServiceViaDohd.p99Ms}) | p50 ≤ 1 ms: ${ok(g.coldMissAddedP50AtMost1MsOverService)} |`,
    );
  }
  rows.push(`| TLS handshakes | ${r.tls.handshakes} over ${r.tls.queries} upstream queries and the cache-hit runs (one dohd, one upstream) | ≤ 1 per upstream: ${ok(g.atMostOneHandshakePerUpstream)} |`);
  if (t.single || t.race || t.hedged) {
    rows.push(
      `| one jittery upstream (5% of answers 200 ms late): the steady one alone | ${tail('single')} | |`,
      `| … race | ${tail('race')}${interval(t.raceMinusSingleP99Ms, 'race − alone p99', (v) => `${v > 0 ? '+' : ''}${v} ms`)} | p99 no worse than alone: ${ok(g.raceP99NoWorseThanSingle)} |`,
      `| … hedged | ${tail('hedged')}${interval(t.hedgedOverRaceP99, 'hedged / race p99', (v) => `${Math.round(v * 100)}%`)} | p99 within 10% of race at < 1.5 requests/query: ${ok(g.hedgedWithin10PctOfRace)} |`,
    );
  }
  if (mem) {
    const lim = mem.limited ?? {};
    const limited = lim.skipped
      ? `not measured under a ${lim.limitMb} MiB limit (${lim.skipped})`
      : `in a fresh dohd under a ${lim.limitMb} MiB memory limit ${lim.rssAfterFillMb} MB right after the same fill (peak ${lim.peakRssDuringFillMb} MB, ${lim.fillQps} q/s)`;
    rows.push(
      `| resident memory | idle ${mem.idleRssMb} MB; with ${mem.filled} cached names ${mem.settledRssMb} MB after ${mem.settleSeconds} s idle (${mem.rssAfterFillMb} MB right after the fill with no memory limit, peak ${mem.peakRssDuringFillMb} MB; filled at ${mem.fillQps} q/s); ${limited} | ≤ 150 MB: settled ${ok(g.rssWith100kNamesAtMost150MbSettled)}, right after the fill: no limit ${ok(g.rssWith100kNamesAtMost150MbRightAfterFill)}, ${lim.limitMb} MiB limit ${ok(g.rssWith100kNamesAtMost150MbRightAfterFillUnderLimit)} |`,
    );
  }
  return [
    `Measured ${r.date.slice(0, 10)} on ${r.machine.cpus} × ${r.machine.model}, Node ${r.machine.node}, load average ${r.machine.loadavgAtStart?.join(' ')} at the start, ${r.machine.loadavgAtEnd?.join(' ')} at the end; upstream delay ${r.settings.upstreamDelayMs} ms, ${r.settings.rounds} rounds of ${r.settings.seconds} s.`,
    '',
    '| measure | result | target |',
    '| --- | --- | --- |',
    ...rows,
  ].join('\n');
}

/** Rewrites the part of docs/benchmark.md between its bench:start and bench:end markers; false when they are missing. */
export function updateBenchmarkDoc(path: string, r: R, history: RunSummary[] = []): boolean {
  const text = readFileSync(path, 'utf8');
  const start = '<!-- bench:start -->';
  const end = '<!-- bench:end -->';
  const i = text.indexOf(start);
  const j = text.indexOf(end);
  if (i < 0 || j < i) return false;
  const runs = historyMarkdown(history);
  writeFileSync(path, text.slice(0, i + start.length) + '\n' + tableMarkdown(r) + '\n' + (runs ? `\n${runs}\n` : '') + text.slice(j));
  return true;
}
