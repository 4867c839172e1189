/**
 * Memory probe (a development tool, not part of `npm run bench`): fills a dohd's cache with
 * N names through the real path (dnsperf → UDP → pipeline → the benchmark DoH upstream) and
 * prints its resident memory every 5 s afterwards; with PROBE_SNAPSHOT=1 it then has dohd
 * write a heap snapshot (SIGUSR2) into the working directory, for bench/heap-summary.ts.
 *
 *   npx tsc -p tsconfig.bench.json && unshare -n bash -c 'ip link set lo up && node .bench-dist/bench/probe-memory.js'
 *
 * PROBE_NAMES (100000), PROBE_OUTSTANDING (50), PROBE_QPS (no limit), PROBE_SETTLE seconds (30),
 * PROBE_NODE_FLAGS (V8 flags for dohd, e.g. "--heap-growing-percent=30"), PROBE_ARGS (dohd flags),
 * PROBE_CGROUP_MB (start dohd in a cgroup with this memory limit, as a container would).
 */
import { fork, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { makePki } from '../test/fixtures/pki.js';
import { inCgroup, memoryCgroup } from './cgroup.js';
import { dnsperf, writeQueryFile } from './dnsperf.js';
import { cpuMs, rssOf } from './proc.js';

const ROOT = resolve(import.meta.dirname, '../..');
const N = Number(process.env.PROBE_NAMES ?? 100_000);
const tmp = mkdtempSync(join(tmpdir(), 'dohd-probe-'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const words = (v: string | undefined) => (v ?? '').split(' ').filter(Boolean);

const pki = await makePki();
const up = fork(join(import.meta.dirname, 'upstream-server.js'), [pki.certFile, pki.keyFile]);
const upPort = await new Promise<number>((res) => up.once('message', (m: { port: number }) => res(m.port)));
const cfg = join(tmp, 'probe.yaml');
writeFileSync(cfg, `listen: ["127.0.0.1:0"]\nupstreams:\n  - url: https://127.0.0.1:${upPort}/dns-query\n    ca: ${pki.caFile}\ncache: { maxEntries: 200000 }\n`);
const dohdArgs = [...words(process.env.PROBE_NODE_FLAGS), '--heapsnapshot-signal=SIGUSR2', join(ROOT, 'dist/cli.js'), 'run', '--config', cfg, ...words(process.env.PROBE_ARGS)];
// PROBE_CGROUP_MB: dohd starts in a cgroup with this memory limit (as in a container).
const limited = process.env.PROBE_CGROUP_MB ? memoryCgroup(`dohd-probe-${process.pid}`, Number(process.env.PROBE_CGROUP_MB)) : null;
if (limited && 'skipped' in limited) throw new Error(limited.skipped);
const [command, args] = limited ? inCgroup(limited.dir, process.execPath, dohdArgs) : [process.execPath, dohdArgs];
const d = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'] });
const port = await new Promise<number>((res) => {
  let buf = '';
  d.stdout!.on('data', (c: Buffer) => {
    buf += c.toString();
    const m = /"listen":\["127\.0\.0\.1:(\d+)"/.exec(buf);
    if (m) res(Number(m[1]));
  });
});
const rss = () => rssOf(d.pid!);
await sleep(1000);
console.log('idle: rss MB', rss().toFixed(1));
const file = writeQueryFile(join(tmp, 'fill.txt'), Array.from({ length: N }, (_, i) => `q${i}.fill.bench A`));
const t0 = Date.now();
const cpu0 = cpuMs(d.pid!);
const r = await dnsperf({
  port,
  file,
  runs: 1,
  clients: 1,
  outstanding: Number(process.env.PROBE_OUTSTANDING ?? 50),
  ...(process.env.PROBE_QPS ? { maxQps: Number(process.env.PROBE_QPS) } : {}),
});
console.log(`filled ${r.completed} (lost ${r.lost}) in ${(Date.now() - t0) / 1000} s, dohd CPU ${(((cpuMs(d.pid!) - cpu0) / r.completed) * 1000).toFixed(0)} us/query: rss MB`, rss().toFixed(1));
for (let t = 0; t < Number(process.env.PROBE_SETTLE ?? 30); t += 5) {
  await sleep(5000);
  console.log(`idle ${t + 5} s: rss MB`, rss().toFixed(1));
}
if (process.env.PROBE_SNAPSHOT) {
  d.kill('SIGUSR2');
  await sleep(Number(process.env.PROBE_SNAPSHOT_WAIT_MS ?? 30_000));
  console.log('heap snapshot written into', process.cwd());
}
d.kill('SIGTERM');
up.kill();
if (limited) d.once('exit', () => limited.remove());
await pki.cleanup();
