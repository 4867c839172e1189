/**
 * The first query after idle: upstream connections that died while dohd was not looking
 * (closed without GOAWAY, dropped under a request, or black-holed) never cost a SERVFAIL.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { queryUdp } from '../fixtures/dns-client.js';
import { startDaemon, type RunningDaemon } from '../fixtures/daemon.js';
import { startDohUpstream, stopDohUpstream, type DohServer } from '../fixtures/doh-server.js';
import type { Pki } from '../fixtures/pki.js';
import { until } from '../fixtures/resources.js';
import { startTcpProxy, type TcpProxy } from '../fixtures/tcp-proxy.js';
import { DohUpstream } from '../../src/upstream/doh/doh.js';

let pki: Pki;
let doh: DohServer;
let d: RunningDaemon | undefined;
let proxy: TcpProxy | undefined;

const TIMEOUT = 2500;

beforeAll(async () => {
  ({ pki, doh } = await startDohUpstream());
});
afterAll(() => stopDohUpstream({ pki, doh }));
afterEach(async () => {
  await d?.stop();
  d = undefined;
  await proxy?.close();
  proxy = undefined;
  doh.reset();
  doh.idleCloseMs = undefined;
  doh.onQuery = undefined;
});

function upstream(d: RunningDaemon): DohUpstream {
  return d.daemon.upstreams[0] as DohUpstream;
}

/** Makes the upstream's connection look quiet for ms (its last response further back), instead of waiting that long. */
function quietFor(d: RunningDaemon, ms: number): void {
  const conn = (upstream(d) as unknown as { conn: { heardAt: number } | null }).conn;
  if (!conn) throw new Error('no connection to age');
  conn.heardAt -= ms;
}

describe('DoH connections that die while idle', () => {
  it('the server closing an idle connection silently (no GOAWAY) costs the next query nothing', async () => {
    doh.idleCloseMs = 300;
    d = await startDaemon({ upstreams: [{ url: doh.url, ca: pki.caFile }], timeoutMs: TIMEOUT });
    const a = await queryUdp({ port: d.port, name: 'example.com' });
    expect(a.response.rcode).toBe('NOERROR');
    await until(() => doh.sessions === 0, 3000, 'the server dropped the connection');
    const b = await queryUdp({ port: d.port, name: 'www.example.com', timeoutMs: 4000 });
    expect(b.response.rcode).toBe('NOERROR');
    expect(b.response.answers?.map((x) => ('data' in x ? x.data : null))).toEqual(['192.0.2.3']);
    expect(b.ms).toBeLessThan(TIMEOUT);
    expect(doh.handshakes).toBe(2);
    expect(d.logs.filter((l) => l.msg === 'upstream failed')).toEqual([]);
  });

  it('a connection dropped right as a request is sent: the request is sent once more on a fresh one', async () => {
    d = await startDaemon({ upstreams: [{ url: doh.url, ca: pki.caFile }], timeoutMs: TIMEOUT });
    await queryUdp({ port: d.port, name: 'example.com' });
    doh.dropNext = 1;
    const r = await queryUdp({ port: d.port, name: 'www.example.com', timeoutMs: 4000 });
    expect(r.response.rcode).toBe('NOERROR');
    expect(r.ms).toBeLessThan(TIMEOUT);
    expect(doh.requests).toBe(3); // one answered, one dropped, one retried
    expect(doh.handshakes).toBe(2);
    expect(upstream(d).stats.retries).toBe(1);
  });

  it('several queries in flight on a connection that dies are all answered over one fresh connection', async () => {
    d = await startDaemon({ upstreams: [{ url: doh.url, ca: pki.caFile }], timeoutMs: TIMEOUT });
    await queryUdp({ port: d.port, name: 'example.com' });
    doh.delayMs = 100; // keep them in flight together
    doh.dropNext = 1;
    const names = ['a', 'b', 'c', 'd', 'e'].map((n) => `${n}.example.com`);
    const rs = await Promise.all(names.map((name) => queryUdp({ port: d!.port, name, timeoutMs: 4000 })));
    expect(rs.map((r) => r.response.rcode)).toEqual(names.map(() => 'NXDOMAIN'));
    expect(doh.handshakes).toBe(2);
  });

  it('a retry that also fails is not retried again: SERVFAIL within the deadline, not a storm', async () => {
    d = await startDaemon({ upstreams: [{ url: doh.url, ca: pki.caFile }], timeoutMs: TIMEOUT });
    doh.dropNext = 100;
    const r = await queryUdp({ port: d.port, name: 'example.com', timeoutMs: 4000 });
    expect(r.response.rcode).toBe('SERVFAIL');
    expect(r.ms).toBeLessThan(TIMEOUT + 500);
    expect(doh.requests).toBe(2);
    expect(d.logs.some((l) => l.msg === 'upstream failed' && l.reason === 'reset')).toBe(true);
  });

  it('a black-holed connection (no FIN, no RST) is replaced: the next query is answered within its deadline', async () => {
    proxy = await startTcpProxy({ host: '127.0.0.1', port: doh.port });
    d = await startDaemon({ upstreams: [{ url: `https://127.0.0.1:${proxy.port}/dns-query`, ca: pki.caFile }], timeoutMs: TIMEOUT });
    const a = await queryUdp({ port: d.port, name: 'example.com' });
    expect(a.response.rcode).toBe('NOERROR');
    proxy.blackhole();
    quietFor(d, 1300); // quiet for longer than quietMs (1 s)
    const b = await queryUdp({ port: d.port, name: 'www.example.com', timeoutMs: 4000 });
    expect(b.response.rcode).toBe('NOERROR');
    expect(b.response.answers?.map((x) => ('data' in x ? x.data : null))).toEqual(['192.0.2.3']);
    expect(b.ms).toBeLessThan(TIMEOUT);
    expect(proxy.connections).toBe(2);
    expect(upstream(d).stats.resends).toBe(1);
    // The fresh connection is the one used from now on.
    const c = await queryUdp({ port: d.port, name: 'short.example.net' });
    expect(c.response.rcode).toBe('NOERROR');
    expect(proxy.connections).toBe(2);
  });

  it("a re-send that answers first cancels the quiet connection's request at once (RST_STREAM, not left to run)", async () => {
    d = await startDaemon({ upstreams: [{ url: doh.url, ca: pki.caFile }], timeoutMs: TIMEOUT });
    await queryUdp({ port: d.port, name: 'example.com' });
    quietFor(d, 1300); // quiet for longer than quietMs (1 s)
    // The request on the quiet connection is slow to answer; the re-send on a fresh one is not.
    doh.delayMs = 2000;
    let seen = 0;
    doh.onQuery = () => {
      if (++seen === 2) doh.delayMs = 0;
    };
    const r = await queryUdp({ port: d.port, name: 'www.example.com', timeoutMs: 4000 });
    expect(r.response.rcode).toBe('NOERROR');
    expect(r.ms).toBeLessThan(2000);
    expect(upstream(d).stats.resends).toBe(1);
    expect(doh.handshakes).toBe(2);
    // The overtaken request is reset as soon as the re-send wins, long before its 2 s answer.
    await until(() => doh.resets > 0, 1000, 'the overtaken request reset');
    expect(doh.resets).toBe(1);
    expect(doh.answered).toBe(2); // the first query and the re-send: the overtaken request never was
    expect(upstream(d).stats.pending).toBe(0);
  });

  it('a recently heard connection gets no re-send: a slow answer on it is waited for, on one connection', async () => {
    d = await startDaemon({ upstreams: [{ url: doh.url, ca: pki.caFile }], timeoutMs: TIMEOUT });
    await queryUdp({ port: d.port, name: 'example.com' });
    doh.delayMs = 1200; // slower than any re-send delay
    const r = await queryUdp({ port: d.port, name: 'www.example.com', timeoutMs: 4000 });
    expect(r.response.rcode).toBe('NOERROR');
    expect(doh.handshakes).toBe(1);
    expect(upstream(d).stats.resends).toBe(0);
  });

  it('idleTimeoutMs per upstream: dohd closes its idle connection itself, and reconnects for the next query', async () => {
    d = await startDaemon({ upstreams: [{ url: doh.url, ca: pki.caFile, idleTimeoutMs: 200 }], timeoutMs: TIMEOUT });
    expect(upstream(d).idleTimeoutMs).toBe(200);
    await queryUdp({ port: d.port, name: 'example.com' });
    expect(doh.sessions).toBe(1);
    await until(() => doh.sessions === 0, 3000, 'dohd closed its idle connection');
    const r = await queryUdp({ port: d.port, name: 'www.example.com' });
    expect(r.response.rcode).toBe('NOERROR');
    expect(doh.handshakes).toBe(2);
  });
});
