/** Development probe: cache-hit UDP throughput of dohd against the ceiling server, alternating. */
import { fork, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
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
if (process.env.PROBE_FILL) {
  const fill = writeQueryFile(join(tmp, 'fill.txt'), Array.from({ length: Number(process.env.PROBE_FILL) }, (_, i) => `q${i}.fill.bench A`));
  const t0 = Date.now();
  const r = await dnsperf({ port, file: fill, runs: 1, clients: 1, outstanding: 50 });
  console.log('filled', r.completed, 'in', (Date.now() - t0) / 1000, 's');
  await new Promise((r) => setTimeout(r, Number(process.env.PROBE_SETTLE ?? 0) * 1000));
}
const file = writeQueryFile(join(tmp, 'hit.txt'), [process.env.PROBE_QUERY ?? 'hit.bench A']);
const opts = { clients: Number(process.env.PROBE_CLIENTS ?? 4), outstanding: 200, extra: (process.env.PROBE_DNSPERF ?? '').split(' ').filter(Boolean) };
await dnsperf({ port, file, seconds: 2, ...opts });
await dnsperf({ port: ceilPort, file, seconds: 2, ...opts });
for (let i = 0; i < Number(process.env.PROBE_ROUNDS ?? 3); i++) {
  const c = await dnsperf({ port: ceilPort, file, seconds: S, ...opts });
  const h = await dnsperf({ port, file, seconds: S, ...opts });
  console.log(`ceiling ${Math.round(c.qps)}  dohd ${Math.round(h.qps)}  ratio ${(h.qps / c.qps).toFixed(2)}  lost ${h.lost}`);
}
const cpu = (pid: number) => { const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' '); return (Number(f[11]) + Number(f[12])) * 10; };
{
  const c0 = cpu(d.pid!), c1 = cpu(ceil.pid!);
  await new Promise((r) => setTimeout(r, 5000));
  console.log('idle 5 s cpu: dohd', cpu(d.pid!) - c0, 'ms, ceiling', cpu(ceil.pid!) - c1, 'ms');
}
for (const rate of (process.env.PROBE_RATES ?? '20000,50000').split(',').map(Number)) {
  for (const [name, p, pid] of [['ceiling', ceilPort, ceil.pid!], ['dohd', port, d.pid!]] as const) {
    if (process.env.PROBE_HOOK) {
      const { execSync } = await import('node:child_process');
      execSync(`${process.env.PROBE_HOOK} ${pid} ${name} >/dev/null 2>&1 &`);
      await new Promise((r) => setTimeout(r, 1000));
    }
    const c0 = cpu(pid);
    const r = await dnsperf({ port: p, file, seconds: S, maxQps: rate, clients: 2, outstanding: 200 });
    const ms = cpu(pid) - c0;
    console.log(`${name} at ${rate} q/s: ${Math.round(r.qps)} q/s, cpu ${ms} ms = ${((ms * 1000) / r.completed).toFixed(2)} µs/query`);
  }
}
d.kill('SIGTERM');
ceil.kill();
up.kill();
await pki.cleanup();
