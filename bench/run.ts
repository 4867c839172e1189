/**
 * The benchmark: a local DoH upstream, dohd and dnsperf on loopback; the results go to
 * bench/results.json, docs/bench.svg and the README's benchmark table.
 * Run with `npm run bench` (it re-runs itself in a loopback-only network namespace when root).
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { makePki } from '../test/fixtures/pki.js';
import { dnsperf, percentile, writeQueryFile } from './dnsperf.js';
import { renderChart, updateReadme } from './report.js';

const ROOT = resolve(import.meta.dirname, '../..');
const CLI = join(ROOT, 'dist/cli.js');
const SECONDS = Number(process.env.BENCH_SECONDS ?? 6);
const UPSTREAM_DELAY = Number(process.env.BENCH_UPSTREAM_DELAY_MS ?? 5);
const tmp = mkdtempSync(join(tmpdir(), 'dohd-bench-'));
const children: ChildProcess[] = [];

function log(msg: string) {
  process.stderr.write(`[bench] ${msg}\n`);
}

interface Forked {
  child: ChildProcess;
  port: number;
  ask<T>(msg: object): Promise<T>;
}

async function forkServer(script: string, args: string[] = []): Promise<Forked> {
  const child = fork(join(import.meta.dirname, script), args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.push(child);
  const port = await new Promise<number>((res, rej) => {
    child.once('message', (m: { port: number }) => res(m.port));
    child.once('exit', (c) => rej(new Error(`${script} exited ${c}`)));
  });
  return {
    child,
    port,
    ask: <T>(msg: object) =>
      new Promise<T>((res) => {
        child.once('message', (m) => res(m as T));
        child.send(msg);
      }),
  };
}

interface Dohd {
  child: ChildProcess;
  port: number;
  rssMb(): number;
  stop(): Promise<void>;
}

async function startDohd(name: string, config: string): Promise<Dohd> {
  const file = join(tmp, `${name}.yaml`);
  writeFileSync(file, config);
  const child = spawn(process.execPath, [CLI, 'run', '--config', file], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  const port = await new Promise<number>((res, rej) => {
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const m = /"listen":\["127\.0\.0\.1:(\d+)"/.exec(buf);
      if (m) res(Number(m[1]));
    });
    child.once('exit', (c) => rej(new Error(`dohd (${name}) exited ${c}: ${buf}`)));
  });
  return {
    child,
    port,
    rssMb: () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]) / 1024,
    stop: () =>
      new Promise((res) => {
        child.once('exit', () => res());
        child.kill('SIGTERM');
      }),
  };
}

function dohdConfig(upstreams: { port: number; ca: string; extra?: string }[], extra = ''): string {
  return [
    'listen: ["127.0.0.1:0"]',
    'upstreams:',
    ...upstreams.map((u) => `  - url: https://127.0.0.1:${u.port}/dns-query\n    ca: ${u.ca}${u.extra ?? ''}`),
    'cache: { maxEntries: 200000 }',
    'log: { level: info }',
    extra,
  ].join('\n');
}

const names = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `q${i}.${prefix}.bench A`);
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const pki = await makePki();
  const results: Record<string, unknown> = {
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version },
    settings: { seconds: SECONDS, upstreamDelayMs: UPSTREAM_DELAY },
  };
  const hitFile = writeQueryFile(join(tmp, 'hit.txt'), ['hit.bench A']);

  // 1. The runtime's ceiling, measured first in the same run.
  log('ceiling: minimal Node UDP server');
  const ceiling = await forkServer('ceiling-server.js');
  const ceilUdp = await dnsperf({ port: ceiling.port, file: hitFile, seconds: SECONDS, clients: 4, outstanding: 200 });
  const ceilLat = await dnsperf({ port: ceiling.port, file: hitFile, seconds: 3, maxQps: 5000, verbose: true });
  ceiling.child.kill();

  // 2. dohd cache hits, UDP and TCP.
  const up = await forkServer('upstream-server.js', [pki.certFile, pki.keyFile]);
  await up.ask({ cmd: 'config', delayMs: UPSTREAM_DELAY });
  const d1 = await startDohd('hits', dohdConfig([{ port: up.port, ca: pki.caFile }]));
  await sleep(1000);
  const idleRss = d1.rssMb();
  log('cache hits over UDP and TCP');
  await dnsperf({ port: d1.port, file: hitFile, runs: 1, clients: 1 });
  const hitUdp = await dnsperf({ port: d1.port, file: hitFile, seconds: SECONDS, clients: 4, outstanding: 200 });
  const hitUdpLat = await dnsperf({ port: d1.port, file: hitFile, seconds: 3, maxQps: 5000, verbose: true });
  const hitTcp = await dnsperf({ port: d1.port, file: hitFile, seconds: SECONDS, clients: 4, outstanding: 200, tcp: true });
  const hitTcpLat = await dnsperf({ port: d1.port, file: hitFile, seconds: 3, maxQps: 5000, verbose: true, tcp: true });

  // 3. Cold misses: dohd's time against the upstream's own, same tool, same rate.
  log('cold misses');
  await up.ask({ cmd: 'reset' });
  const coldFile = writeQueryFile(join(tmp, 'cold.txt'), names('cold', 10_000));
  const cold = await dnsperf({ port: d1.port, file: coldFile, runs: 1, maxQps: 1000, verbose: true, clients: 1, outstanding: 50 });
  const coldStats = await up.ask<{ requests: number; handshakes: number; serviceP50Ms: number; serviceP99Ms: number }>({ cmd: 'stats' });

  // 4. Memory with 100,000 cached names.
  log('filling the cache with 100,000 names');
  const fillFile = writeQueryFile(join(tmp, 'fill.txt'), names('fill', 100_000));
  await up.ask({ cmd: 'config', delayMs: 0 });
  const fill = await dnsperf({ port: d1.port, file: fillFile, runs: 1, maxQps: 5000, clients: 2, outstanding: 200 });
  await sleep(1500);
  const fullRss = d1.rssMb();
  await d1.stop();

  // 5. Tail latency with one jittery upstream: the better single one, race, hedged.
  log('tail latency with a jittery upstream');
  const a = up;
  await a.ask({ cmd: 'config', delayMs: UPSTREAM_DELAY, jitterProb: 0.01, jitterMs: 40 });
  const b = await forkServer('upstream-server.js', [pki.certFile, pki.keyFile]);
  await b.ask({ cmd: 'config', delayMs: UPSTREAM_DELAY, jitterProb: 0.05, jitterMs: 200 });
  const tail: Record<string, unknown> = {};
  const variants: [string, string][] = [
    ['single', dohdConfig([{ port: a.port, ca: pki.caFile }])],
    ['race', dohdConfig([{ port: a.port, ca: pki.caFile }, { port: b.port, ca: pki.caFile }])],
    ['hedged', dohdConfig([{ port: a.port, ca: pki.caFile }, { port: b.port, ca: pki.caFile }], 'strategy: hedged')],
  ];
  for (const [name, config] of variants) {
    await a.ask({ cmd: 'reset' });
    await b.ask({ cmd: 'reset' });
    let d: Dohd;
    try {
      d = await startDohd(`tail-${name}`, config);
    } catch (err) {
      tail[name] = { skipped: String((err as Error).message).split('\n')[0] };
      continue;
    }
    const file = writeQueryFile(join(tmp, `tail-${name}.txt`), names(`tail-${name}`, 4000));
    const r = await dnsperf({ port: d.port, file, runs: 1, maxQps: 400, verbose: true, clients: 1 });
    const sa = await a.ask<{ requests: number }>({ cmd: 'stats' });
    const sb = await b.ask<{ requests: number }>({ cmd: 'stats' });
    tail[name] = {
      queries: r.completed,
      p50Ms: round(percentile(r.latencies, 50)),
      p99Ms: round(percentile(r.latencies, 99)),
      upstreamRequestsPerQuery: round((sa.requests + sb.requests) / Math.max(1, r.completed)),
    };
    await d.stop();
  }

  const ceilQps = ceilUdp.qps;
  results.cacheHit = {
    ceilingUdp: { qps: Math.round(ceilQps), p50Ms: round(percentile(ceilLat.latencies, 50), 3), p99Ms: round(percentile(ceilLat.latencies, 99), 3) },
    udp: { qps: Math.round(hitUdp.qps), p50Ms: round(percentile(hitUdpLat.latencies, 50), 3), p99Ms: round(percentile(hitUdpLat.latencies, 99), 3), lost: hitUdp.lost },
    tcp: { qps: Math.round(hitTcp.qps), p50Ms: round(percentile(hitTcpLat.latencies, 50), 3), p99Ms: round(percentile(hitTcpLat.latencies, 99), 3) },
    udpFractionOfCeiling: round(hitUdp.qps / ceilQps, 3),
  };
  const coldP50 = percentile(cold.latencies, 50);
  const coldP99 = percentile(cold.latencies, 99);
  // The upstream's own time is measured inside it (request received to answer written);
  // everything else in dohd's answer time — its work and both loopback hops — is what dohd adds.
  const ownP50 = coldStats.serviceP50Ms;
  const ownP99 = coldStats.serviceP99Ms;
  results.coldMiss = {
    queries: cold.completed,
    dohdP50Ms: round(coldP50, 3),
    dohdP99Ms: round(coldP99, 3),
    upstreamOwnP50Ms: round(ownP50, 3),
    upstreamOwnP99Ms: round(ownP99, 3),
    addedP50Ms: round(coldP50 - ownP50, 3),
    addedP99Ms: round(coldP99 - ownP99, 3),
    tlsHandshakes: coldStats.handshakes,
    upstreamRequests: coldStats.requests,
    tlsHandshakesPer10k: round((coldStats.handshakes / Math.max(1, cold.completed)) * 10_000, 2),
  };
  results.memory = { idleRssMb: round(idleRss, 1), rssWith100kNamesMb: round(fullRss, 1), filled: fill.completed };
  results.tail = tail;
  const targets = {
    cacheHitAtLeast80PctOfCeiling: hitUdp.qps >= 0.8 * ceilQps,
    coldMissAddedP50AtMost1Ms: coldP50 - ownP50 <= 1,
    atMostOneHandshakePerUpstream: coldStats.handshakes <= 1,
    rssWith100kNamesAtMost150Mb: fullRss <= 150,
    raceP99NoWorseThanSingle:
      typeof (tail.race as { p99Ms?: number })?.p99Ms === 'number' && (tail.race as { p99Ms: number }).p99Ms <= (tail.single as { p99Ms: number }).p99Ms,
    hedgedWithin10PctOfRace:
      typeof (tail.hedged as { p99Ms?: number })?.p99Ms === 'number'
        ? (tail.hedged as { p99Ms: number }).p99Ms <= 1.1 * (tail.race as { p99Ms: number }).p99Ms + 0.5 &&
          (tail.hedged as { upstreamRequestsPerQuery: number }).upstreamRequestsPerQuery < 1.5
        : null,
  };
  results.targets = targets;
  const out = JSON.stringify(results, null, 2);
  writeFileSync(join(ROOT, 'bench/results.json'), out + '\n');
  writeFileSync(join(ROOT, 'docs/bench.svg'), renderChart(results));
  updateReadme(join(ROOT, 'README.md'), results);
  process.stdout.write(out + '\n');
  await pki.cleanup();
}

main()
  .catch((err) => {
    process.stderr.write(`bench failed: ${(err as Error).stack}\n`);
    process.exitCode = 1;
  })
  .finally(() => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  });
