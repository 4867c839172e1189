/**
 * The benchmark: a local DoH upstream, dohd and dnsperf on loopback; the results go to
 * bench/results.json, docs/bench.svg and the tables of docs/benchmark.md.
 * Run with `npm run bench` (it re-runs itself in a loopback-only network namespace when root).
 *
 * Honesty rules it keeps:
 * - the ceiling (a minimal Node UDP server) is measured in the same run, interleaved with
 *   dohd round by round after both are warmed up, and the ratio is the median of the rounds';
 * - every latency percentile comes from thousands of samples at a fixed, moderate rate
 *   (throughput runs are separate), and the sample counts are in results.json;
 * - the upstream's own time is measured two ways: inside the upstream (request received to
 *   answer written) and as a DoH client asking it directly sees it;
 * - memory is read from /proc: right after the fill, its peak during the fill, and after the
 *   daemon has been idle for a while (V8 gives memory back lazily); the same fill is measured
 *   again in a dohd under a container's memory limit (V8 sizes its heap from it);
 * - the machine's load average is recorded at the start and the end.
 *
 * BENCH_SECONDS sets the length of each throughput round (default 6); BENCH_ONLY=hits,workers,
 * cold,memory,tail runs some phases only and writes nothing (for development);
 * BENCH_DOHD_NODE_ARGS passes node options to dohd (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof").
 */
import { execFileSync, fork, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { makePki } from '../test/fixtures/pki.js';
import { dnsperf, percentile, writeQueryFile, type PerfOptions } from './dnsperf.js';
import { inCgroup, memoryCgroup } from './cgroup.js';
import { cpuMs, rssOf } from './proc.js';
import { appendHistory, summarize } from './history.js';
import { bootstrapPercentiles, round, type Interval } from './stats.js';
import { renderChart, updateBenchmarkDoc } from './report.js';

const ROOT = resolve(import.meta.dirname, '../..');
const CLI = join(ROOT, 'dist/cli.js');
const SECONDS = Number(process.env.BENCH_SECONDS ?? 6);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const UPSTREAM_DELAY = Number(process.env.BENCH_UPSTREAM_DELAY_MS ?? 5);
const ONLY = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(',')) : null;
const phase = (name: string) => !ONLY || ONLY.has(name);
const tmp = mkdtempSync(join(tmpdir(), 'dohd-bench-'));
const children: ChildProcess[] = [];

/** Load the throughput runs put on: 4 dnsperf clients, 200 queries outstanding each. */
const LOAD_ALL: Partial<PerfOptions> = { clients: 4, outstanding: 200 };
/** Latency runs: a fixed rate well below saturation, one client. */
const LATENCY_QPS = 5000;
const LATENCY_SECONDS = Math.max(3, SECONDS);
/** Rate at which CPU time per cache hit is compared (both servers sustain it). */
const CPU_QPS = 40_000;
const COLD_QPS = 500;
const COLD_QUERIES = Math.max(3000, 1000 * SECONDS);
/** Queries that open the connection and warm the code up before a latency run, on both sides. */
const WARMUP_QUERIES = 200;
const TAIL_QPS = 300;
const TAIL_QUERIES = Math.max(3000, 1000 * SECONDS);
/** Rounds the tail-latency variants take in turn (TAIL_QUERIES per variant in all). */
const TAIL_ROUNDS = Number(process.env.BENCH_TAIL_ROUNDS ?? 3);
const FILL_NAMES = 100_000;
/** The memory limit of the second fill, MiB: the sidecar manifest's (deploy/k8s/sidecar-deployment.yaml). */
const LIMITED_MB = 256;
/** Seconds the daemon is left idle after the fill before memory is read again. */
const SETTLE_SECONDS = Number(process.env.BENCH_SETTLE_SECONDS ?? 30);

/** The code measured: its commit, `+` when sources differed from it (read at the start, before dohd runs). */
const CODE = codeVersion();

function codeVersion(): string {
  try {
    const git = (args: string[]) => execFileSync('git', ['-C', ROOT, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = git(['status', '--porcelain', '--untracked-files=no', '--', 'src', 'bench/*.ts', 'package.json', 'package-lock.json']) !== '';
    return git(['rev-parse', '--short', 'HEAD']) + (dirty ? '+' : '');
  } catch {
    return 'unknown';
  }
}

function log(msg: string) {
  process.stderr.write(`[bench] ${new Date().toISOString().slice(11, 19)} ${msg}\n`);
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
  /** Resident memory of dohd's processes (all of them with workers), MB. */
  rssMb(): number;
  stop(): Promise<void>;
}

/**
 * Pins every thread of these processes to CPU 0 and returns the CPUs left for the load
 * generator ("1" or "1-N"); null when there is a single CPU or no taskset.
 */
function pinServers(pids: number[]): string | null {
  const n = cpus().length;
  if (n < 2) return null;
  try {
    for (const pid of pids) execFileSync('taskset', ['-a', '-p', '-c', '0', String(pid)], { stdio: 'ignore' });
  } catch {
    return null;
  }
  return n === 2 ? '1' : `1-${n - 1}`;
}

/** Gives these processes every CPU again. */
function unpin(pids: number[]): void {
  for (const pid of pids) {
    try {
      execFileSync('taskset', ['-a', '-p', '-c', `0-${cpus().length - 1}`, String(pid)], { stdio: 'ignore' });
    } catch {
      // gone already
    }
  }
}

function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Starts dohd (in the cgroup directory `cgroup`, when given) and waits until it listens. */
async function startDohd(name: string, config: string, args: string[] = [], cgroup?: string): Promise<Dohd> {
  const file = join(tmp, `${name}.yaml`);
  writeFileSync(file, config);
  const nodeArgs = process.env.BENCH_DOHD_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
  const dohdArgs = [...nodeArgs, CLI, 'run', '--config', file, ...args];
  const [command, commandArgs] = cgroup ? inCgroup(cgroup, process.execPath, dohdArgs) : [process.execPath, dohdArgs];
  const child = spawn(command, commandArgs, { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  const workers = Number(args[args.indexOf('--workers') + 1] ?? 1);
  const ready = args.includes('--workers') && workers > 1 ? /"msg":"dohd workers ready"/ : /"msg":"dohd listening"/;
  const port = await new Promise<number>((res, rej) => {
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      for (const line of buf.split('\n')) {
        const m = /"listen":\["127\.0\.0\.1:(\d+)"/.exec(line);
        if (m && ready.test(line)) res(Number(m[1]));
      }
    });
    child.once('exit', (c) => rej(new Error(`dohd (${name}) exited ${c}: ${buf.trim().split('\n').pop() ?? ''}`)));
  });
  return {
    child,
    port,
    rssMb: () => [child.pid!, ...childPids(child.pid!)].reduce((sum, pid) => sum + rssOf(pid), 0),
    stop: () =>
      new Promise((res) => {
        if (child.exitCode !== null) return res();
        child.once('exit', () => res());
        child.kill('SIGTERM');
      }),
  };
}

function dohdConfig(upstreams: { port: number; ca: string }[], extra = ''): string {
  return [
    'listen: ["127.0.0.1:0"]',
    'upstreams:',
    ...upstreams.map((u) => `  - url: https://127.0.0.1:${u.port}/dns-query\n    ca: ${u.ca}`),
    'cache: { maxEntries: 200000 }',
    'log: { level: info }',
    extra,
  ].join('\n');
}

/** Sends every name of `file` through dohd as fast as it takes them (50 outstanding), watching its memory. */
async function fillCache(d: Dohd, file: string) {
  let peakMb = d.rssMb();
  const sampler = setInterval(() => (peakMb = Math.max(peakMb, d.rssMb())), 250);
  const t0 = Date.now();
  const r = await dnsperf({ port: d.port, file, runs: 1, clients: 1, outstanding: 50 });
  clearInterval(sampler);
  const seconds = (Date.now() - t0) / 1000;
  const afterFillMb = d.rssMb();
  return { completed: r.completed, lost: r.lost, seconds, qps: Math.round(r.completed / seconds), afterFillMb, peakMb: Math.max(peakMb, afterFillMb) };
}

const names = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `q${i}.${prefix}.bench A`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => percentile(xs, 50);
const load = () => loadavg().map((x) => round(x, 2));

function latencyStats(lat: number[]) {
  return { samples: lat.length, p50Ms: round(percentile(lat, 50), 3), p99Ms: round(percentile(lat, 99), 3) };
}

async function main() {
  const pki = await makePki();
  const results: Record<string, unknown> = {
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version, loadavgAtStart: load() },
    settings: { seconds: SECONDS, rounds: ROUNDS, tailRounds: TAIL_ROUNDS, upstreamDelayMs: UPSTREAM_DELAY },
  };
  const hitFile = writeQueryFile(join(tmp, 'hit.txt'), ['hit.bench A']);
  const up = await forkServer('upstream-server.js', [pki.certFile, pki.keyFile]);
  await up.ask({ cmd: 'config', delayMs: UPSTREAM_DELAY });
  const ceiling = await forkServer('ceiling-server.js');

  // 1. The upstream's round trip as a DoH client of its own sees it (before dohd starts, so
  //    that dohd's connection count is its own).
  let direct: { latencies?: number[]; error?: string } = {};
  let viaClient = { serviceP50Ms: NaN, serviceP99Ms: NaN };
  if (phase('cold')) {
    log(`the upstream asked directly: ${COLD_QUERIES} names at ${COLD_QPS} q/s`);
    await up.ask({ cmd: 'reset' });
    const client = await forkServer('doh-client.js');
    direct = await client.ask({
      cmd: 'run',
      port: up.port,
      ca: pki.caFile,
      names: Array.from({ length: COLD_QUERIES }, (_, i) => `q${i}.direct.bench`),
      qps: COLD_QPS,
      outstanding: 100,
      warmup: WARMUP_QUERIES,
    });
    client.child.kill();
    viaClient = await up.ask({ cmd: 'stats' });
    if (!direct.latencies) throw new Error(`direct DoH client failed: ${direct.error}`);
  }

  // 2. One dohd for its whole life: idle memory, cold misses, the fill, memory, then cache hits.
  //    TLS handshakes are counted over all of it.
  const totalHandshakes = async () => (await up.ask<{ totalHandshakes: number }>({ cmd: 'stats' })).totalHandshakes;
  const handshakesBefore = await totalHandshakes();
  /** Those of the other dohd started meanwhile (the memory-limited one), not counted against the main one. */
  let otherHandshakes = 0;
  const d1 = await startDohd('main', dohdConfig([{ port: up.port, ca: pki.caFile }]));
  await sleep(2000);
  const idleRss = d1.rssMb();

  if (phase('cold')) {
    log(`cold misses: ${COLD_QUERIES} names at ${COLD_QPS} q/s through dohd`);
    // Warmed up like the direct client: its upstream connection open, its code compiled.
    await dnsperf({ port: d1.port, file: writeQueryFile(join(tmp, 'warm.txt'), names('warm', WARMUP_QUERIES)), runs: 1, maxQps: COLD_QPS, clients: 1 });
    await up.ask({ cmd: 'reset' });
    const coldFile = writeQueryFile(join(tmp, 'cold.txt'), names('cold', COLD_QUERIES));
    const cold = await dnsperf({ port: d1.port, file: coldFile, runs: 1, maxQps: COLD_QPS, verbose: true, clients: 1, outstanding: 100 });
    const viaDohd = await up.ask<{ requests: number; serviceP50Ms: number; serviceP99Ms: number }>({ cmd: 'stats' });
    const c = latencyStats(cold.latencies);
    const dc = latencyStats(direct.latencies!);
    results.coldMiss = {
      queries: cold.completed,
      lost: cold.lost,
      qps: COLD_QPS,
      dohd: c,
      /** What a DoH client asking the upstream itself waits: the upstream's round trip. */
      upstreamRoundTrip: dc,
      /** The upstream's service time as it measured it, during dohd's run and during the direct one. */
      upstreamServiceViaDohd: { p50Ms: round(viaDohd.serviceP50Ms, 3), p99Ms: round(viaDohd.serviceP99Ms, 3) },
      upstreamServiceDirect: { p50Ms: round(viaClient.serviceP50Ms, 3), p99Ms: round(viaClient.serviceP99Ms, 3) },
      addedOverRoundTrip: { p50Ms: round(c.p50Ms - dc.p50Ms, 3), p99Ms: round(c.p99Ms - dc.p99Ms, 3) },
      addedOverService: { p50Ms: round(c.p50Ms - viaDohd.serviceP50Ms, 3), p99Ms: round(c.p99Ms - viaDohd.serviceP99Ms, 3) },
      upstreamRequests: viaDohd.requests,
    };
  }

  if (phase('memory')) {
    // 100,000 names through the real path, as fast as dohd takes them with 50 outstanding.
    log(`memory: filling the cache with ${FILL_NAMES} names`);
    await up.ask({ cmd: 'config', delayMs: 0 });
    const fillFile = writeQueryFile(join(tmp, 'fill.txt'), names('fill', FILL_NAMES));
    const fill = await fillCache(d1, fillFile);
    await up.ask({ cmd: 'config', delayMs: UPSTREAM_DELAY });
    // Prime the cache-hit name now, so the hit phase needs no upstream.
    await dnsperf({ port: d1.port, file: hitFile, runs: 1, clients: 1 });
    log(`memory: idle for ${SETTLE_SECONDS} s`);
    const settleSamples: number[] = [];
    for (let t = 0; t < SETTLE_SECONDS; t += 5) {
      await sleep(5000);
      settleSamples.push(round(d1.rssMb(), 1));
    }
    await up.ask({ cmd: 'config', delayMs: 0 });
    // The same in a fresh dohd under the memory limit of the Kubernetes sidecar manifest, as a
    // container runtime (or systemd's MemoryMax=) sets it: Node sizes the heap from it.
    const cg = memoryCgroup(`dohd-bench-${process.pid}`, LIMITED_MB);
    let limited: Record<string, unknown>;
    if ('skipped' in cg) limited = { limitMb: LIMITED_MB, skipped: cg.skipped };
    else {
      log(`memory: the same fill in a fresh dohd under a ${LIMITED_MB} MiB memory limit`);
      const before = await totalHandshakes();
      const d = await startDohd('memory-limited', dohdConfig([{ port: up.port, ca: pki.caFile }]), [], cg.dir);
      try {
        await sleep(2000);
        const idle = d.rssMb();
        const f = await fillCache(d, writeQueryFile(join(tmp, 'fill-limited.txt'), names('fill-limited', FILL_NAMES)));
        limited = { limitMb: LIMITED_MB, idleRssMb: round(idle, 1), filled: f.completed, lost: f.lost, fillQps: f.qps, rssAfterFillMb: round(f.afterFillMb, 1), peakRssDuringFillMb: round(f.peakMb, 1) };
      } finally {
        await d.stop();
        cg.remove();
        otherHandshakes += (await totalHandshakes()) - before;
      }
    }
    await up.ask({ cmd: 'config', delayMs: UPSTREAM_DELAY });
    results.memory = {
      idleRssMb: round(idleRss, 1),
      filled: fill.completed,
      lost: fill.lost,
      fillSeconds: round(fill.seconds, 1),
      fillQps: fill.qps,
      rssAfterFillMb: round(fill.afterFillMb, 1),
      peakRssDuringFillMb: round(fill.peakMb, 1),
      settledRssMb: settleSamples[settleSamples.length - 1] ?? round(fill.afterFillMb, 1),
      settleSeconds: SETTLE_SECONDS,
      settleSamplesMb: settleSamples,
      limited,
    };
  } else await dnsperf({ port: d1.port, file: hitFile, runs: 1, clients: 1 });

  if (phase('hits')) {
    // Cache hits against the ceiling: both warmed up, then round by round, interleaved. The
    // server under test (the ceiling or dohd) has CPU 0 and dnsperf the others, so the two do
    // not fight over a core: how the scheduler shares one is the largest noise in a ratio.
    const pinned = pinServers([ceiling.child.pid!, d1.child.pid!]);
    const LOAD = pinned ? { ...LOAD_ALL, cpus: pinned } : LOAD_ALL;
    log(`cache hits: ${ROUNDS} rounds of ${SECONDS} s, ceiling and dohd in turn${pinned ? `; servers on CPU 0, dnsperf on CPU ${pinned}` : ''}`);
    await dnsperf({ port: ceiling.port, file: hitFile, seconds: 2, ...LOAD });
    await dnsperf({ port: d1.port, file: hitFile, seconds: 2, ...LOAD });
    const rounds: { ceilingQps: number; dohdQps: number; ratio: number; dohdLost: number }[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const c = await dnsperf({ port: ceiling.port, file: hitFile, seconds: SECONDS, ...LOAD });
      const h = await dnsperf({ port: d1.port, file: hitFile, seconds: SECONDS, ...LOAD });
      rounds.push({ ceilingQps: Math.round(c.qps), dohdQps: Math.round(h.qps), ratio: round(h.qps / c.qps, 3), dohdLost: h.lost });
      log(`  round ${i + 1}: ceiling ${Math.round(c.qps)} q/s, dohd ${Math.round(h.qps)} q/s`);
    }
    // CPU time per answered query at one fixed rate both sustain: less noisy than the
    // saturation throughput on a shared machine (it does not depend on who gets the cores).
    const cpuPerQuery: Record<string, number> = {};
    for (const [name, port, pid] of [['ceiling', ceiling.port, ceiling.child.pid!], ['dohd', d1.port, d1.child.pid!]] as const) {
      const c0 = cpuMs(pid);
      const r = await dnsperf({ port, file: hitFile, seconds: SECONDS, maxQps: CPU_QPS, ...LOAD });
      cpuPerQuery[name] = round(((cpuMs(pid) - c0) * 1000) / Math.max(1, r.completed), 2);
    }
    log('cache-hit latency at a fixed rate, and TCP');
    const ceilLat = await dnsperf({ port: ceiling.port, file: hitFile, seconds: LATENCY_SECONDS, maxQps: LATENCY_QPS, verbose: true, clients: 1 });
    const hitUdpLat = await dnsperf({ port: d1.port, file: hitFile, seconds: LATENCY_SECONDS, maxQps: LATENCY_QPS, verbose: true, clients: 1 });
    const hitTcp = await dnsperf({ port: d1.port, file: hitFile, seconds: SECONDS, ...LOAD, tcp: true });
    const hitTcpLat = await dnsperf({ port: d1.port, file: hitFile, seconds: LATENCY_SECONDS, maxQps: LATENCY_QPS, verbose: true, clients: 1, tcp: true });
    results.cacheHit = {
      rounds,
      ceilingUdp: { qps: Math.round(median(rounds.map((r) => r.ceilingQps))), ...latencyStats(ceilLat.latencies) },
      udp: { qps: Math.round(median(rounds.map((r) => r.dohdQps))), ...latencyStats(hitUdpLat.latencies), lost: rounds.reduce((n, r) => n + r.dohdLost, 0) },
      tcp: { qps: Math.round(hitTcp.qps), ...latencyStats(hitTcpLat.latencies) },
      pinned: pinned !== null,
      latencyQps: LATENCY_QPS,
      cpuQps: CPU_QPS,
      cpuMicrosecondsPerQuery: cpuPerQuery,
      udpFractionOfCeiling: round(median(rounds.map((r) => r.ratio)), 3),
    };
    unpin([ceiling.child.pid!]);
  }
  const handshakes = (await totalHandshakes()) - handshakesBefore - otherHandshakes;
  results.tls = { handshakes, upstreams: 1, queries: ((results.coldMiss as { queries?: number })?.queries ?? 0) + ((results.memory as { filled?: number })?.filled ?? 0) };
  await d1.stop();

  if (phase('workers')) {
    // Scaling: cache-hit UDP throughput with 1, 2 (… one per CPU) workers, each round next to the ceiling.
    const counts = [...new Set([1, 2, cpus().length])].filter((n) => n <= Math.max(2, cpus().length));
    const scaling: Record<string, unknown>[] = [];
    for (const n of counts) {
      log(`workers: ${n}`);
      const d = await startDohd(`workers-${n}`, dohdConfig([{ port: up.port, ca: pki.caFile }]), ['--workers', String(n)]);
      await dnsperf({ port: d.port, file: hitFile, runs: 1, clients: 1 });
      await sleep(300);
      await dnsperf({ port: d.port, file: hitFile, seconds: 2, ...LOAD_ALL });
      const qps: number[] = [];
      const ceilingQps: number[] = [];
      const ratios: number[] = [];
      for (let i = 0; i < ROUNDS; i++) {
        const c = await dnsperf({ port: ceiling.port, file: hitFile, seconds: SECONDS, ...LOAD_ALL });
        const h = await dnsperf({ port: d.port, file: hitFile, seconds: SECONDS, ...LOAD_ALL });
        qps.push(h.qps);
        ceilingQps.push(c.qps);
        ratios.push(h.qps / c.qps);
      }
      scaling.push({
        workers: n,
        qps: Math.round(median(qps)),
        ceilingQps: Math.round(median(ceilingQps)),
        fractionOfCeiling: round(median(ratios), 3),
        rssMb: round(d.rssMb(), 1),
      });
      await d.stop();
    }
    results.workers = scaling;
  }
  ceiling.child.kill();

  if (phase('tail')) {
    // Tail latency: upstream a steady, b jittery (5% of answers 200 ms late); a alone, race, hedged.
    log(`tail latency: ${TAIL_QUERIES} names at ${TAIL_QPS} q/s per variant, in ${TAIL_ROUNDS} interleaved rounds`);
    const a = up;
    await a.ask({ cmd: 'config', delayMs: UPSTREAM_DELAY, jitterProb: 0, jitterMs: 0 });
    const b = await forkServer('upstream-server.js', [pki.certFile, pki.keyFile]);
    await b.ask({ cmd: 'config', delayMs: UPSTREAM_DELAY, jitterProb: 0.05, jitterMs: 200 });
    const tail: Record<string, unknown> = {};
    const both = [{ port: a.port, ca: pki.caFile }, { port: b.port, ca: pki.caFile }];
    const variants: [string, string][] = [
      ['single', dohdConfig([{ port: a.port, ca: pki.caFile }])],
      ['race', dohdConfig(both, 'strategy: race')],
      ['hedged', dohdConfig(both, 'strategy: hedged')],
    ];
    // The variants take turns, round by round, so that a change in the machine's load over the
    // run weighs on all of them alike; each variant's percentiles are over all its rounds.
    const pooled = new Map(variants.map(([name]) => [name, { latencies: [] as number[], completed: 0, lost: 0, requests: 0, roundP99Ms: [] as number[], cpuMs: 0 }]));
    const perRound = Math.ceil(TAIL_QUERIES / TAIL_ROUNDS);
    for (let round_ = 0; round_ < TAIL_ROUNDS; round_++) {
      for (const [name, config] of variants) {
        const acc = pooled.get(name)!;
        await a.ask({ cmd: 'reset' });
        await b.ask({ cmd: 'reset' });
        let d: Dohd;
        try {
          d = await startDohd(`tail-${name}-${round_}`, config);
        } catch (err) {
          tail[name] = { skipped: String((err as Error).message).split('\n')[0] };
          continue;
        }
        // Warm both connections (and the hedged strategy's latency estimates) first.
        await dnsperf({ port: d.port, file: writeQueryFile(join(tmp, `warm-${name}.txt`), names(`warm-${name}-${round_}`, 300)), runs: 1, maxQps: TAIL_QPS, clients: 1 });
        await a.ask({ cmd: 'reset' });
        await b.ask({ cmd: 'reset' });
        const file = writeQueryFile(join(tmp, `tail-${name}.txt`), names(`tail-${name}-${round_}`, perRound));
        const cpu0 = cpuMs(d.child.pid!);
        const r = await dnsperf({ port: d.port, file, runs: 1, maxQps: TAIL_QPS, verbose: true, clients: 1, outstanding: 200 });
        acc.cpuMs += cpuMs(d.child.pid!) - cpu0;
        const sa = await a.ask<{ requests: number }>({ cmd: 'stats' });
        const sb = await b.ask<{ requests: number }>({ cmd: 'stats' });
        acc.latencies.push(...r.latencies);
        acc.completed += r.completed;
        acc.lost += r.lost;
        acc.requests += sa.requests + sb.requests;
        acc.roundP99Ms.push(round(percentile(r.latencies, 99), 3));
        await d.stop();
      }
    }
    for (const [name, acc] of pooled) {
      if (tail[name]) continue;
      tail[name] = {
        queries: acc.completed,
        lost: acc.lost,
        ...latencyStats(acc.latencies),
        roundP99Ms: acc.roundP99Ms,
        upstreamRequestsPerQuery: round(acc.requests / Math.max(1, acc.completed)),
        /** dohd's CPU time (all its threads) per query, over the measured queries of every round. */
        dohdCpuMicrosecondsPerQuery: Math.round((acc.cpuMs * 1000) / Math.max(1, acc.completed)),
      };
    }
    // Is racing (hedging) measurably worse at p99? Bootstrap intervals over the pooled samples.
    const ran = (k: string) => !tail[k] || !(tail[k] as { skipped?: string }).skipped;
    const lat = (k: string) => pooled.get(k)!.latencies;
    const interval = (i: Interval, d: number) => ({ value: round(i.value, d), lo: round(i.lo, d), hi: round(i.hi, d) });
    if (ran('race') && ran('single')) tail.raceMinusSingleP99Ms = interval(bootstrapPercentiles(lat('race'), lat('single'), (r, s) => r - s), 3);
    if (ran('hedged') && ran('race')) tail.hedgedOverRaceP99 = interval(bootstrapPercentiles(lat('hedged'), lat('race'), (h, r) => h / r), 3);
    results.tail = tail;
  }
  (results.machine as Record<string, unknown>).loadavgAtEnd = load();

  const hit = results.cacheHit as { udpFractionOfCeiling: number } | undefined;
  const cold = results.coldMiss as { addedOverRoundTrip: { p50Ms: number }; addedOverService: { p50Ms: number } } | undefined;
  const mem = results.memory as { settledRssMb: number; rssAfterFillMb: number; limited?: { rssAfterFillMb?: number } } | undefined;
  const tail = (results.tail ?? {}) as Record<string, { p99Ms?: number; upstreamRequestsPerQuery?: number; lo?: number }>;
  results.targets = {
    cacheHitAtLeast80PctOfCeiling: hit ? hit.udpFractionOfCeiling >= 0.8 : null,
    coldMissAddedP50AtMost1MsOverRoundTrip: cold ? cold.addedOverRoundTrip.p50Ms <= 1 : null,
    coldMissAddedP50AtMost1MsOverService: cold ? cold.addedOverService.p50Ms <= 1 : null,
    atMostOneHandshakePerUpstream: (results.tls as { handshakes: number }).handshakes <= 1,
    rssWith100kNamesAtMost150MbSettled: mem ? mem.settledRssMb <= 150 : null,
    rssWith100kNamesAtMost150MbRightAfterFill: mem ? mem.rssAfterFillMb <= 150 : null,
    rssWith100kNamesAtMost150MbRightAfterFillUnderLimit: typeof mem?.limited?.rssAfterFillMb === 'number' ? mem.limited.rssAfterFillMb <= 150 : null,
    // Not measurably worse: the 95% interval of the p99 difference (ratio) reaches the bound.
    raceP99NoWorseThanSingle: tail.raceMinusSingleP99Ms ? tail.raceMinusSingleP99Ms.lo! <= 0 : null,
    hedgedWithin10PctOfRace: tail.hedgedOverRaceP99 ? tail.hedgedOverRaceP99.lo! <= 1.1 && (tail.hedged?.upstreamRequestsPerQuery ?? 2) < 1.5 : null,
  };
  const out = JSON.stringify(results, null, 2);
  process.stdout.write(out + '\n');
  if (!ONLY) {
    writeFileSync(join(ROOT, 'bench/results.json'), out + '\n');
    writeFileSync(join(ROOT, 'docs/bench.svg'), renderChart(results));
    const history = appendHistory(join(ROOT, 'bench/history.json'), summarize(results, CODE));
    if (!updateBenchmarkDoc(join(ROOT, 'docs/benchmark.md'), results, history)) process.stderr.write('docs/benchmark.md: no bench:start/bench:end markers; tables not written\n');
  }
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
