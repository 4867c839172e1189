/**
 * Concurrent queries to one DoH upstream travel as parallel streams of one HTTP/2 session.
 * (undici serializes POSTs on an HTTP/2 session unless they are marked idempotent: with that
 * bug, 8 queries to an upstream taking 600 ms would need 4.8 s and miss their 2.5 s deadline.)
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { queryUdp } from '../fixtures/dns-client.js';
import { startDaemon } from '../fixtures/daemon.js';
import { startDohUpstream, stopDohUpstream, type DohServer } from '../fixtures/doh-server.js';
import type { Pki } from '../fixtures/pki.js';

let pki: Pki;
let doh: DohServer;
beforeAll(async () => {
  ({ pki, doh } = await startDohUpstream());
});
afterAll(() => stopDohUpstream({ pki, doh }));

it('8 concurrent queries to a 600 ms upstream are all answered within one 2.5 s deadline, over one connection', async () => {
  doh.delayMs = 600;
  const d = await startDaemon({ upstreams: [{ url: doh.url, ca: pki.caFile }], timeoutMs: 2500 });
  try {
    const names = ['example.com', 'www.example.com', 'cname.example.net', 'goproxy.cn'];
    const results = await Promise.all([
      ...names.map((name) => queryUdp({ port: d.port, name, timeoutMs: 5000 })),
      ...names.map((name) => queryUdp({ port: d.port, name, type: 'AAAA', timeoutMs: 5000 })),
    ]);
    expect(results.map((r) => r.response.rcode)).toEqual(Array(8).fill('NOERROR'));
    expect(doh.requests).toBe(8);
    expect(doh.handshakes).toBe(1);
  } finally {
    await d.stop();
  }
});
