/**
 * The first query after idle: upstream connections that died while dohd was not looking
 * (closed without GOAWAY, dropped under a request, or black-holed) never cost a SERVFAIL.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { queryUdp } from '../fixtures/dns-client.js';
import type { RunningDaemon } from '../fixtures/daemon.js';
import { useDohUpstream } from '../fixtures/doh-pair.js';
import { until } from '../fixtures/resources.js';
import { startTcpProxy, type TcpProxy } from '../fixtures/tcp-proxy.js';
import { DohUpstream } from '../../src/upstream/doh/doh.js';

const up = useDohUpstream({}, (doh) => {
  doh.idleCloseMs = undefined;
  doh.onQuery = undefined;
});
let proxy: TcpProxy | undefined;

const TIMEOUT = 2500;

/** A daemon on the one upstream (or the entry given for it), with the deadline these tests measure against. */
const start = (upstream: { url: string; ca: string; idleTimeoutMs?: number } = up.upstream) => up.start({ upstreams: [upstream], timeoutMs: TIMEOUT });

// Before useDohUpstream's afterEach (hooks run as a stack): a black-holed connection holds the server's session until the proxy closes.
afterEach(async () => {
  await proxy?.close();
  proxy = undefined;
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
    up.doh.idleCloseMs = 300;
    const d = await start();
    const a = await queryUdp({ port: d.port, name: 'example.com' });
    expect(a.response.rcode).toBe('NOERROR');
    await until(() => up.doh.sessions === 0, 3000, 'the server dropped the connection');
    const b = await queryUdp({ port: d.port, name: 'www.example.com', timeoutMs: 4000 });
    expect(b.response.rcode).toBe('NOERROR');
    expect(b.response.answers?.map((x) => ('data' in x ? x.data : null))).toEqual(['192.0.2.3']);
    expect(b.ms).toBeLessThan(TIMEOUT);
    expect(up.doh.handshakes).toBe(2);
    expect(d.logs.filter((l) => l.msg === 'upstream failed')).toEqual([]);
  });

  it('a connection dropped right as a request is sent: the request is sent once more on a fresh one', async () => {
    const d = await start();
    await queryUdp({ port: d.port, name: 'example.com' });
    up.doh.dropNext = 1;
    const r = await queryUdp({ port: d.port, name: 'www.example.com', timeoutMs: 4000 });
    expect(r.response.rcode).toBe('NOERROR');
    expect(r.ms).toBeLessThan(TIMEOUT);
    expect(up.doh.requests).toBe(3); // one answered, one dropped, one retried
    expect(up.doh.handshakes).toBe(2);
    expect(upstream(d).stats.retries).toBe(1);
  });

  it('several queries in flight on a connection that dies are all answered over one fresh connection', async () => {
    const d = await start();
    await queryUdp({ port: d.port, name: 'example.com' });
    up.doh.delayMs = 100; // keep them in flight together
    up.doh.dropNext = 1;
    const names = ['a', 'b', 'c', 'd', 'e'].map((n) => `${n}.example.com`);
    const rs = await Promise.all(names.map((name) => queryUdp({ port: d.port, name, timeoutMs: 4000 })));
    expect(rs.map((r) => r.response.rcode)).toEqual(names.map(() => 'NXDOMAIN'));
    expect(up.doh.handshakes).toBe(2);
  });

  it('a retry that also fails is not retried again: SERVFAIL within the deadline, not a storm', async () => {
    const d = await start();
    up.doh.dropNext = 100;
    const r = await queryUdp({ port: d.port, name: 'example.com', timeoutMs: 4000 });
    expect(r.response.rcode).toBe('SERVFAIL');
    expect(r.ms).toBeLessThan(TIMEOUT + 500);
    expect(up.doh.requests).toBe(2);
    expect(d.logs.some((l) => l.msg === 'upstream failed' && l.reason === 'reset')).toBe(true);
  });

  it('a black-holed connection (no FIN, no RST) is replaced: the next query is answered within its deadline', async () => {
    proxy = await startTcpProxy({ host: '127.0.0.1', port: up.doh.port });
    const d = await start({ url: `https://127.0.0.1:${proxy.port}/dns-query`, ca: up.pki.caFile });
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
    const d = await start();
    await queryUdp({ port: d.port, name: 'example.com' });
    quietFor(d, 1300); // quiet for longer than quietMs (1 s)
    // The request on the quiet connection is slow to answer; the re-send on a fresh one is not.
    up.doh.delayMs = 2000;
    let seen = 0;
    up.doh.onQuery = () => {
      if (++seen === 2) up.doh.delayMs = 0;
    };
    const r = await queryUdp({ port: d.port, name: 'www.example.com', timeoutMs: 4000 });
    expect(r.response.rcode).toBe('NOERROR');
    expect(r.ms).toBeLessThan(2000);
    expect(upstream(d).stats.resends).toBe(1);
    expect(up.doh.handshakes).toBe(2);
    // The overtaken request is reset as soon as the re-send wins, long before its 2 s answer.
    await until(() => up.doh.resets > 0, 1000, 'the overtaken request reset');
    expect(up.doh.resets).toBe(1);
    expect(up.doh.answered).toBe(2); // the first query and the re-send: the overtaken request never was
    expect(upstream(d).stats.pending).toBe(0);
  });

  it('a recently heard connection gets no re-send: a slow answer on it is waited for, on one connection', async () => {
    const d = await start();
    await queryUdp({ port: d.port, name: 'example.com' });
    up.doh.delayMs = 1200; // slower than any re-send delay
    const r = await queryUdp({ port: d.port, name: 'www.example.com', timeoutMs: 4000 });
    expect(r.response.rcode).toBe('NOERROR');
    expect(up.doh.handshakes).toBe(1);
    expect(upstream(d).stats.resends).toBe(0);
  });

  it('idleTimeoutMs per upstream: dohd closes its idle connection itself, and reconnects for the next query', async () => {
    const d = await start({ ...up.upstream, idleTimeoutMs: 200 });
    expect(upstream(d).idleTimeoutMs).toBe(200);
    await queryUdp({ port: d.port, name: 'example.com' });
    expect(up.doh.sessions).toBe(1);
    await until(() => up.doh.sessions === 0, 3000, 'dohd closed its idle connection');
    const r = await queryUdp({ port: d.port, name: 'www.example.com' });
    expect(r.response.rcode).toBe('NOERROR');
    expect(up.doh.handshakes).toBe(2);
  });
});
