import { fork } from 'node:child_process';
import { join, resolve } from 'node:path';
import dnsPacket from 'dns-packet';
import { makePki } from '../test/fixtures/pki.js';
const ROOT = resolve(import.meta.dirname, '../..');
const { DohUpstream } = await import(join(ROOT, 'dist/upstream/doh.js'));
const { decodeQuery } = await import(join(ROOT, 'dist/dns/message.js'));
const { buildUpstreamQuery } = await import(join(ROOT, 'dist/dns/upstream-query.js'));
const pki = await makePki();
const up = fork(join(import.meta.dirname, 'upstream-server.js'), [pki.certFile, pki.keyFile]);
const upPort = await new Promise<number>((res) => up.once('message', (m: { port: number }) => res(m.port)));
const u = new DohUpstream({ url: `https://127.0.0.1:${upPort}/dns-query`, ca: pki.caFile }, {});
const count = () => process.getActiveResourcesInfo().filter((x) => x === 'Timeout').length;
console.log('timeouts before', count());
for (let i = 0; i < 50; i++) {
  const q = decodeQuery(dnsPacket.encode({ type: 'query', id: 1, flags: 0x100, questions: [{ name: `n${i}.x`, type: 'A', class: 'IN' }] })).query;
  const ctl = new AbortController();
  await u.exchange(buildUpstreamQuery(q), q, ctl.signal);
  if (process.env.ABORT) ctl.abort();
}
await new Promise((r) => setTimeout(r, 200));
console.log('timeouts after 50 sequential', count());
await Promise.all(Array.from({ length: 50 }, (_, i) => {
  const q = decodeQuery(dnsPacket.encode({ type: 'query', id: 1, flags: 0x100, questions: [{ name: `p${i}.x`, type: 'A', class: 'IN' }] })).query;
  const ctl = new AbortController();
  return u.exchange(buildUpstreamQuery(q), q, ctl.signal).then(() => { if (process.env.ABORT) ctl.abort(); });
}));
await new Promise((r) => setTimeout(r, 200));
console.log('timeouts after 50 parallel', count());
(await import('node:v8')).writeHeapSnapshot('/tmp/i6/h2.heapsnapshot');
await u.close(); up.kill(); await pki.cleanup();
