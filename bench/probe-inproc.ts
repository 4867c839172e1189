/** Development probe: dohd in this process, cache filled through the real path, memory broken down. */
import { fork } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import v8 from 'node:v8';
import { makePki } from '../test/fixtures/pki.js';
import { dnsperf, writeQueryFile } from './dnsperf.js';

const { stats: h2stats } = process.env.PROBE_H2PATCH ? await import('./probe-h2patch.js') : { stats: null };
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
let handledLate = 0;
process.on('rejectionHandled', (p: Promise<unknown>) => {
  if (handledLate++ < 2) p.catch((e: unknown) => console.log('late-handled rejection:', (e as Error)?.stack ?? e));
});
let session: import('node:inspector').Session | null = null;
if (process.env.PROBE_ALLOC) {
  const inspector = await import('node:inspector');
  session = new inspector.Session();
  session.connect();
  await new Promise<void>((res, rej) => session!.post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: !process.env.PROBE_MAJOR_ONLY } as never, (e) => (e ? rej(e) : res())));
}
if (process.env.PROBE_MID_SNAPSHOT) setTimeout(() => { v8.writeHeapSnapshot(process.env.PROBE_MID_SNAPSHOT); console.log('mid snapshot written'); }, 6000);
const gcSeen: number[] = [];
if (process.env.PROBE_GC_INFLIGHT) {
  const { PerformanceObserver } = await import('node:perf_hooks');
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) if ((e as unknown as { detail: { kind: number } }).detail.kind === 1) gcSeen.push(d.handler.inflight);
  }).observe({ entryTypes: ['gc'] });
}
const r = await dnsperf({ port, file, runs: 1, ...(process.env.PROBE_QPS ? { maxQps: Number(process.env.PROBE_QPS) } : {}), clients: 1, outstanding: Number(process.env.PROBE_OUTSTANDING ?? 10) });
console.log('filled', r.completed, 'lost', r.lost, 'cache size', d.cache.size);
if (process.env.PROBE_END_SNAPSHOT) v8.writeHeapSnapshot(process.env.PROBE_END_SNAPSHOT);
show('after fill');
if (gcSeen.length) console.log('inflight at scavenges', gcSeen.length, 'max', Math.max(...gcSeen), 'avg', gcSeen.reduce((a, b) => a + b, 0) / gcSeen.length);
console.log('late-handled rejections', handledLate);
if (session) {
  const prof = await new Promise<unknown>((res, rej) => session!.post('HeapProfiler.stopSampling', (e, p) => (e ? rej(e) : res(p))));
  (await import('node:fs')).writeFileSync(process.env.PROBE_ALLOC!, JSON.stringify((prof as { profile: unknown }).profile));
}
console.log('h2', h2stats);
await sleep(2000);
globalThis.gc?.();
show('after gc');
for (const s of v8.getHeapSpaceStatistics()) console.log('  ', s.space_name.padEnd(24), 'size', mb(s.space_size), 'used', mb(s.space_used_size));
if (process.env.PROBE_SNAPSHOT) v8.writeHeapSnapshot(process.env.PROBE_SNAPSHOT);
await d.stop();
up.kill();
await pki.cleanup();
