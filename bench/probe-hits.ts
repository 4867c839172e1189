/** Development probe: cache-hit UDP throughput of dohd against the ceiling server, alternating. */
import { fork, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { makePki } from '../test/fixtures/pki.js';
import { dnsperf, writeQueryFile } from './dnsperf.js';

const ROOT = resolve(import.meta.dirname, '../..');
const S = Number(process.env.PROBE_SECONDS ?? 3);
const tmp = mkdtempSync(join(tmpdir(), 'dohd-probe-'));
const pki = await makePki();
const up = fork(join(import.meta.dirname, 'upstream-server.js'), [pki.certFile, pki.keyFile]);
const upPort = await new Promise<number>((res) => up.once('message', (m: { port: number }) => res(m.port)));
const ceil = fork(join(import.meta.dirname, 'ceiling-server.js'));
const ceilPort = await new Promise<number>((res) => ceil.once('message', (m: { port: number }) => res(m.port)));
const cfg = join(tmp, 'p.yaml');
writeFileSync(cfg, `listen: ["127.0.0.1:0"]\nupstreams:\n  - url: https://127.0.0.1:${upPort}/dns-query\n    ca: ${pki.caFile}\n${process.env.PROBE_CONFIG ?? ''}\n`);
const d = spawn(process.execPath, [...(process.env.PROBE_NODE_FLAGS ?? '').split(' ').filter(Boolean), join(ROOT, 'dist/cli.js'), 'run', '--config', cfg, ...(process.env.PROBE_ARGS ?? '').split(' ').filter(Boolean)], { stdio: ['ignore', 'pipe', 'inherit'] });
const port = await new Promise<number>((res) => {
  let buf = '';
  d.stdout!.on('data', (c: Buffer) => {
    buf += c.toString();
    const m = /"listen":\["127\.0\.0\.1:(\d+)"/.exec(buf);
    if (m) res(Number(m[1]));
  });
});
const file = writeQueryFile(join(tmp, 'hit.txt'), [process.env.PROBE_QUERY ?? 'hit.bench A']);
const opts = { clients: Number(process.env.PROBE_CLIENTS ?? 4), outstanding: 200, extra: (process.env.PROBE_DNSPERF ?? '').split(' ').filter(Boolean) };
await dnsperf({ port, file, seconds: 2, ...opts });
await dnsperf({ port: ceilPort, file, seconds: 2, ...opts });
for (let i = 0; i < Number(process.env.PROBE_ROUNDS ?? 3); i++) {
  const c = await dnsperf({ port: ceilPort, file, seconds: S, ...opts });
  const h = await dnsperf({ port, file, seconds: S, ...opts });
  console.log(`ceiling ${Math.round(c.qps)}  dohd ${Math.round(h.qps)}  ratio ${(h.qps / c.qps).toFixed(2)}  lost ${h.lost}`);
}
d.kill('SIGTERM');
ceil.kill();
up.kill();
await pki.cleanup();
