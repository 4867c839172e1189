/** Turns bench/results.json into the SVG chart under docs/ and the README's table. */
import { readFileSync, writeFileSync } from 'node:fs';

type R = Record<string, any>;

function bars(title: string, unit: string, rows: [string, number][], x: number, y: number, w: number): string {
  const max = Math.max(...rows.map((r) => (Number.isFinite(r[1]) ? r[1] : 0)), 1e-9);
  const rowH = 26;
  let s = `<text x="${x}" y="${y}" font-weight="bold">${title}</text>`;
  rows.forEach(([label, v], i) => {
    const yy = y + 14 + i * rowH;
    const bw = Number.isFinite(v) ? Math.max(1, (v / max) * (w - 200)) : 0;
    s += `<text x="${x}" y="${yy + 15}">${label}</text>`;
    s += `<rect x="${x + 120}" y="${yy + 3}" width="${bw.toFixed(1)}" height="16" fill="${i % 2 ? '#5b8def' : '#2a5bd7'}"/>`;
    s += `<text x="${x + 126 + bw}" y="${yy + 15}">${Number.isFinite(v) ? `${v} ${unit}` : 'n/a'}</text>`;
  });
  return s;
}

export function renderChart(r: R): string {
  const hit = r.cacheHit;
  const cold = r.coldMiss;
  const tail = r.tail ?? {};
  const p99 = (k: string) => (typeof tail[k]?.p99Ms === 'number' ? tail[k].p99Ms : NaN);
  const body = [
    bars('Cache-hit throughput (queries/s, dnsperf)', 'q/s', [
      ['Node ceiling', hit.ceilingUdp.qps],
      ['dohd UDP', hit.udp.qps],
      ['dohd TCP', hit.tcp.qps],
    ], 20, 30, 560),
    bars('Cold miss latency (ms)', 'ms', [
      ['upstream p50', cold.upstreamOwnP50Ms],
      ['dohd p50', cold.dohdP50Ms],
      ['upstream p99', cold.upstreamOwnP99Ms],
      ['dohd p99', cold.dohdP99Ms],
    ], 20, 160, 560),
    bars('p99 with one jittery upstream (ms)', 'ms', [
      ['single', p99('single')],
      ['race', p99('race')],
      ['hedged', p99('hedged')],
    ], 600, 30, 560),
    bars('Resident memory (MB)', 'MB', [
      ['idle', r.memory.idleRssMb],
      ['100k names', r.memory.rssWith100kNamesMb],
    ], 600, 160, 560),
  ].join('\n');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="1180" height="300" font-family="sans-serif" font-size="13">
<rect width="100%" height="100%" fill="white"/>
${body}
<text x="20" y="290" fill="#666" font-size="11">dohd benchmark, ${r.date} — ${r.machine.cpus} × ${r.machine.model}, Node ${r.machine.node}; measured by bench/run.ts</text>
</svg>
`;
}

export function tableMarkdown(r: R): string {
  const hit = r.cacheHit;
  const cold = r.coldMiss;
  const t = r.tail ?? {};
  const tail = (k: string) =>
    t[k]?.p99Ms !== undefined ? `p50 ${t[k].p50Ms} ms, p99 ${t[k].p99Ms} ms, ${t[k].upstreamRequestsPerQuery} upstream requests/query` : `not run (${t[k]?.skipped ?? 'n/a'})`;
  const ok = (b: boolean | null) => (b === null ? 'n/a' : b ? 'met' : '**missed**');
  const g = r.targets;
  return [
    `Measured ${r.date.slice(0, 10)} on ${r.machine.cpus} × ${r.machine.model}, Node ${r.machine.node}, upstream delay ${r.settings.upstreamDelayMs} ms.`,
    '',
    '| measure | result | target |',
    '| --- | --- | --- |',
    `| cache-hit UDP throughput | ${hit.udp.qps} q/s = ${Math.round(hit.udpFractionOfCeiling * 100)}% of the Node ceiling (${hit.ceilingUdp.qps} q/s) | ≥ 80%: ${ok(g.cacheHitAtLeast80PctOfCeiling)} |`,
    `| cache-hit UDP latency | p50 ${hit.udp.p50Ms} ms, p99 ${hit.udp.p99Ms} ms (ceiling p50 ${hit.ceilingUdp.p50Ms}, p99 ${hit.ceilingUdp.p99Ms}) | |`,
    `| cache-hit TCP | ${hit.tcp.qps} q/s, p50 ${hit.tcp.p50Ms} ms, p99 ${hit.tcp.p99Ms} ms | |`,
    `| cold-miss added latency | p50 ${cold.addedP50Ms} ms, p99 ${cold.addedP99Ms} ms (dohd ${cold.dohdP50Ms}/${cold.dohdP99Ms}, upstream ${cold.upstreamOwnP50Ms}/${cold.upstreamOwnP99Ms}) | p50 ≤ 1 ms: ${ok(g.coldMissAddedP50AtMost1Ms)} |`,
    `| TLS handshakes | ${cold.tlsHandshakes} for ${cold.queries} cold queries (${cold.tlsHandshakesPer10k} per 10,000) | ≤ 1 per upstream: ${ok(g.atMostOneHandshakePerUpstream)} |`,
    `| jittery pair: better single upstream | ${tail('single')} | |`,
    `| jittery pair: race | ${tail('race')} | p99 ≤ single: ${ok(g.raceP99NoWorseThanSingle)} |`,
    `| jittery pair: hedged | ${tail('hedged')} | within 10% of race at < 1.5× requests: ${ok(g.hedgedWithin10PctOfRace)} |`,
    `| resident memory | idle ${r.memory.idleRssMb} MB, ${r.memory.rssWith100kNamesMb} MB with ${r.memory.filled} cached names | ≤ 150 MB: ${ok(g.rssWith100kNamesAtMost150Mb)} |`,
  ].join('\n');
}

export function updateReadme(path: string, r: R): void {
  const text = readFileSync(path, 'utf8');
  const start = '<!-- bench:start -->';
  const end = '<!-- bench:end -->';
  const i = text.indexOf(start);
  const j = text.indexOf(end);
  if (i < 0 || j < i) return;
  writeFileSync(path, text.slice(0, i + start.length) + '\n' + tableMarkdown(r) + '\n' + text.slice(j));
}
