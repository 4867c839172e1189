/**
 * Memory probe (development tool, not part of `npm run bench`): fills dohd's cache with N
 * names through the real path (dnsperf → UDP → pipeline → DoH upstream), then prints RSS
 * and, with PROBE_SNAPSHOT=1, writes a heap snapshot (SIGUSR2) in the working directory.
 */
import { fork, spawn } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { makePki } from '../test/fixtures/pki.js';
import { dnsperf, writeQueryFile } from './dnsperf.js';

const ROOT = resolve(import.meta.dirname, '../..');
const N = Number(process.env.PROBE_NAMES ?? 100_000);
const tmp = mkdtempSync(join(tmpdir(), 'dohd-probe-'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pki = await makePki();
const up = fork(join(import.meta.dirname, 'upstream-server.js'), [pki.certFile, pki.keyFile]);
const upPort = await new Promise<number>((res) => up.once('message', (m: { port: number }) => res(m.port)));
const cfg = join(tmp, 'p.yaml');
writeFileSync(cfg, `listen: ["127.0.0.1:0"]\nupstreams:\n  - url: https://127.0.0.1:${upPort}/dns-query\n    ca: ${pki.caFile}\ncache: { maxEntries: 200000 }\n`);
const nodeFlags = (process.env.PROBE_NODE_FLAGS ?? '').split(' ').filter(Boolean);
const d = spawn(process.execPath, [...nodeFlags, '--heapsnapshot-signal=SIGUSR2', join(ROOT, 'dist/cli.js'), 'run', '--config', cfg, ...(process.env.PROBE_ARGS ?? '').split(' ').filter(Boolean)], {
  stdio: ['ignore', 'pipe', 'inherit'],
  cwd: process.cwd(),
});
const port = await new Promise<number>((res) => {
  let buf = '';
  d.stdout!.on('data', (c: Buffer) => {
    if (process.env.PROBE_STDOUT) appendFileSync(process.env.PROBE_STDOUT, c);
    buf += c.toString();
    const m = /"listen":\["127\.0\.0\.1:(\d+)"/.exec(buf);
    if (m) res(Number(m[1]));
  });
});
const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${d.pid}/status`, 'utf8'))![1]) / 1024;
await sleep(1000);
console.log('idle rss MB', rss().toFixed(1));
const file = writeQueryFile(join(tmp, 'fill.txt'), Array.from({ length: N }, (_, i) => `q${i}.fill.bench A`));
const t0 = Date.now();
const r = await dnsperf({ port, file, runs: 1, ...(process.env.PROBE_QPS ? { maxQps: Number(process.env.PROBE_QPS) } : {}), clients: 1, outstanding: Number(process.env.PROBE_OUTSTANDING ?? 200) });
console.log('filled', r.completed, 'lost', r.lost, 'in', (Date.now() - t0) / 1000, 's; rss MB', rss().toFixed(1));
for (let t = 0; t < Number(process.env.PROBE_SETTLE ?? 30); t += 5) {
  await sleep(5000);
  console.log(`after ${t + 5} s rss MB`, rss().toFixed(1));
}
if (process.env.PROBE_SNAPSHOT) {
  d.kill('SIGUSR2');
  await sleep(Number(process.env.PROBE_SNAPSHOT_WAIT ?? 30000));
  console.log('after snapshot rss MB', rss().toFixed(1));
}
d.kill('SIGTERM');
up.kill();
await pki.cleanup();
