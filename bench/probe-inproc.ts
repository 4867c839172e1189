/** Development probe: dohd in this process, cache filled through the real path, memory broken down. */
import { fork } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import v8 from 'node:v8';
import { makePki } from '../test/fixtures/pki.js';
import { dnsperf, writeQueryFile } from './dnsperf.js';

const ROOT = resolve(import.meta.dirname, '../..');
const { Daemon } = await import(join(ROOT, 'dist/daemon.js'));
const { validateConfig } = await import(join(ROOT, 'dist/config/load.js'));
const { createLogger } = await import(join(ROOT, 'dist/log.js'));
const N = Number(process.env.PROBE_NAMES ?? 100_000);
const tmp = mkdtempSync(join(tmpdir(), 'dohd-probe-'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pki = await makePki();
const up = fork(join(import.meta.dirname, 'upstream-server.js'), [pki.certFile, pki.keyFile]);
const upPort = await new Promise<number>((res) => up.once('message', (m: { port: number }) => res(m.port)));
const config = validateConfig({ listen: ['127.0.0.1:0'], upstreams: [{ url: `https://127.0.0.1:${upPort}/dns-query`, ca: pki.caFile }], cache: { maxEntries: 200000 } });
const d = await Daemon.start(config, createLogger('warn'));
const port = d.addresses[0].port;
const mb = (x: number) => (x / 1048576).toFixed(1);
const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))![1]) / 1024;
function show(label: string) {
  const m = process.memoryUsage();
  console.log(label, 'rss', rss().toFixed(1), 'heapTotal', mb(m.heapTotal), 'heapUsed', mb(m.heapUsed), 'external', mb(m.external), 'arrayBuffers', mb(m.arrayBuffers));
}
await sleep(500);
globalThis.gc?.();
show('idle');
const file = writeQueryFile(join(tmp, 'fill.txt'), Array.from({ length: N }, (_, i) => `q${i}.fill.bench A`));
const r = await dnsperf({ port, file, runs: 1, maxQps: Number(process.env.PROBE_QPS ?? 5000), clients: 2, outstanding: 200 });
console.log('filled', r.completed, 'lost', r.lost, 'cache size', d.cache.size);
show('after fill');
await sleep(2000);
globalThis.gc?.();
show('after gc');
for (const s of v8.getHeapSpaceStatistics()) console.log('  ', s.space_name.padEnd(24), 'size', mb(s.space_size), 'used', mb(s.space_used_size));
if (process.env.PROBE_SNAPSHOT) v8.writeHeapSnapshot(process.env.PROBE_SNAPSHOT);
await d.stop();
up.kill();
await pki.cleanup();
