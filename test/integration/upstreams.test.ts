/**
 * Upstream strategies (hedged, failover), health (out on failure, probed back in), plain
 * DNS upstreams, forward rules and the fallback group — real DoH and plain DNS servers on
 * loopback, a real dohd, queries over real sockets.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { queryTcp, queryUdp } from '../fixtures/dns-client.js';
import { useDohPair } from '../fixtures/doh-pair.js';
import type { DohServer } from '../fixtures/doh-server.js';
import type { DohUpstream } from '../../src/upstream/doh/doh.js';
import { startPlainDnsServer, type PlainDnsServer } from '../fixtures/plain-dns-server.js';
import { until } from '../fixtures/resources.js';
import { defaultZone } from '../fixtures/zone.js';

const pair = useDohPair(['a', 'b']);
let a: DohServer;
let b: DohServer;
let cluster: PlainDnsServer;
let office: PlainDnsServer;

beforeAll(async () => {
  [a, b] = pair.servers;
  const clusterZone = defaultZone();
  clusterZone.add({ name: 'kubernetes.default.svc.cluster.local', type: 'A', ttl: 30, data: '10.96.0.1' });
  clusterZone.add({ name: '1.0.96.10.in-addr.arpa', type: 'PTR', ttl: 30, data: 'kubernetes.default.svc.cluster.local' });
  clusterZone.add({ name: 'corp.example.net', type: 'A', ttl: 30, data: '10.0.0.1' });
  cluster = await startPlainDnsServer({ zone: clusterZone });
  const officeZone = defaultZone();
  officeZone.add({ name: 'intranet.corp.example.net', type: 'A', ttl: 30, data: '10.1.0.1' });
  office = await startPlainDnsServer({ zone: officeZone });
});
afterAll(async () => {
  await Promise.all([cluster.close(), office.close()]);
});
afterEach(() => {
  for (const p of [cluster, office]) {
    p.mode = 'ok';
    p.delayMs = 0;
    p.udpQueries = 0;
    p.tcpQueries = 0;
  }
});

// These tests count the requests each strategy makes, so the transport-level re-send of a
// request on a quiet connection (tested on its own in idle-connection tests) is off here.
const ab = () => [
  { url: a.url, ca: pair.pki.caFile, name: 'a', quietMs: 0 },
  { url: b.url, ca: pair.pki.caFile, name: 'b', quietMs: 0 },
];

describe('hedged strategy', () => {
  it('sends one request when the first upstream is fast, and a second one when it stalls', async () => {
    const d = await pair.start({ upstreams: ab(), strategy: 'hedged', hedge: { initialDelayMs: 500 } });
    const r1 = await queryUdp({ port: d.port, name: 'www.example.com' });
    expect(r1.response.answers[0]!.data).toBe('192.0.2.3');
    expect([a.requests, b.requests]).toEqual([1, 0]);
    // (Had r1's hedge timer been left running, it would fire before r2's, which r2 waits for:
    // b would count 2 below.)

    a.mode = 'hang';
    const r2 = await queryUdp({ port: d.port, name: 'example.com', type: 'AAAA' });
    expect(r2.response.answers[0]!.data).toBe('2001:db8::1');
    expect([a.requests, b.requests]).toEqual([2, 1]);
    // It waited about the hedge delay for the first one before asking the second.
    expect(r2.ms).toBeGreaterThanOrEqual(450);
  });

  it('a request overtaken by its hedge is left to finish, and its real time ranks the upstreams', async () => {
    // (The previous test's hung request is reset when its daemon stops: useDohPair waits for that.)
    const d = await pair.start({ upstreams: ab(), strategy: 'hedged', timeoutMs: 2000, hedge: { initialDelayMs: 100, minDelayMs: 10 } });
    a.delayMs = 400;
    const r = await queryUdp({ port: d.port, name: 'www.example.com' });
    expect(r.response.answers[0]!.data).toBe('192.0.2.3');
    expect(r.ms).toBeLessThan(350); // b answered the hedge; the client did not wait for a
    // a's request was not reset: a answered it in full, later.
    await until(() => a.answered === 1, 8000);
    expect(a.resets).toBe(0);
    // Health saw a's real time (~400 ms), not "slower than b" (~100 ms): b is asked first now.
    // (The answer sent is told to health once dohd has read it: polled.)
    const seen = await until(() => d.daemon.groups.health.snapshot().find((h) => h.name === 'a')?.latencyMs, 3000, "a's latency in health");
    expect(seen).toBeGreaterThanOrEqual(380);
    a.reset();
    b.reset();
    await queryUdp({ port: d.port, name: 'example.com' });
    expect([a.requests, b.requests]).toEqual([0, 1]);
  });

  it('asks the next upstream at once when the first one fails, and ranks by recent latency', async () => {
    const d = await pair.start({ upstreams: ab(), strategy: 'hedged', timeoutMs: 4000, hedge: { initialDelayMs: 3000 } });
    a.mode = 'http500';
    const r = await queryUdp({ port: d.port, name: 'www.example.com', timeoutMs: 5000 });
    expect(r.response.answers[0]!.data).toBe('192.0.2.3');
    expect(r.ms).toBeLessThan(2500); // not after the hedge delay
    a.mode = 'ok';
    a.delayMs = 200;
    // b answered and a failed: b is now the best, so a is not asked while b is quick.
    await queryUdp({ port: d.port, name: 'example.com' });
    await queryUdp({ port: d.port, name: 'cname.example.net' });
    expect(a.requests).toBe(1);
    expect(b.requests).toBe(3);
  });
});

describe('failover strategy and health', () => {
  it('skips a dead upstream after it fails, and uses it again after it recovers', async () => {
    const d = await pair.start({
      upstreams: ab(),
      strategy: 'failover',
      health: { failures: 1, backoffMs: 400, maxBackoffMs: 3000 },
    });
    a.mode = 'http500';
    const r1 = await queryUdp({ port: d.port, name: 'www.example.com' });
    expect(r1.response.answers[0]!.data).toBe('192.0.2.3');
    expect([a.requests, b.requests]).toEqual([1, 1]);
    expect(d.logs.some((l) => l.msg === 'upstream taken out' && l.upstream === 'a')).toBe(true);

    // Taken out: the next query goes straight to b.
    const r2 = await queryUdp({ port: d.port, name: 'example.com' });
    expect(r2.response.answers[0]!.data).toBe('192.0.2.1');
    expect([a.requests, b.requests]).toEqual([1, 2]);
    expect(d.daemon.groups.health.snapshot().find((s) => s.name === 'a')).toMatchObject({ up: false });

    // a recovers; the background probe brings it back, and it is first in line again.
    a.mode = 'ok';
    await until(() => d.logs.some((l) => l.msg === 'upstream back in' && l.upstream === 'a'), 8000);
    const before = a.requests;
    const r3 = await queryUdp({ port: d.port, name: 'cname.example.net' });
    expect(r3.response.answers.map((x) => x.data)).toEqual(['example.com', '192.0.2.1']);
    expect(a.requests).toBe(before + 1);
    expect(b.requests).toBe(2);
  });

  it('the probe backoff grows while the upstream stays dead', async () => {
    const d = await pair.start({ upstreams: ab(), strategy: 'failover', health: { failures: 1, backoffMs: 100, maxBackoffMs: 10_000 } });
    a.mode = 'http500';
    await queryUdp({ port: d.port, name: 'www.example.com' });
    // 100, then 200, 400, 800 after each failed probe.
    await until(() => (d.daemon.groups.health.snapshot().find((s) => s.name === 'a')?.backoffMs ?? 0) >= 800, 8000);
    const s = d.daemon.groups.health.snapshot().find((x) => x.name === 'a')!;
    expect(s.up).toBe(false);
    expect(s.probes).toBeGreaterThanOrEqual(3);
    expect(s.errorRate).toBeGreaterThan(0);
  });

  it('race skips an upstream that is out, and the others carry on', async () => {
    const d = await pair.start({ upstreams: ab(), health: { failures: 2, backoffMs: 60_000 } });
    a.mode = 'http500';
    await queryUdp({ port: d.port, name: 'www.example.com' });
    await queryUdp({ port: d.port, name: 'example.com' });
    expect(a.requests).toBe(2);
    for (const n of ['cname.example.net', 'short.example.net', 'goproxy.cn']) {
      const r = await queryUdp({ port: d.port, name: n });
      expect(r.response.rcode).toBe('NOERROR');
    }
    expect(a.requests).toBe(2);
    expect(b.requests).toBe(5);
  });

  it('race: the losers are left to finish, not reset (no rapid-reset pattern); only a loser still open at the deadline is reset', async () => {
    const d = await pair.start({ upstreams: ab(), timeoutMs: 600 });
    b.delayMs = 150;
    const names = ['example.com', 'www.example.com', 'cname.example.net', 'short.example.net', 'goproxy.cn'];
    for (const n of names) {
      const t0 = performance.now();
      const r = await queryUdp({ port: d.port, name: n });
      expect(r.response.rcode).toBe('NOERROR');
      // a won: the client did not wait for b.
      expect(performance.now() - t0).toBeLessThan(140);
    }
    await until(() => b.answered === names.length, 8000);
    expect(b.resets).toBe(0);
    expect(a.resets).toBe(0);
    const raw = d.daemon.upstreams.find((u) => u.name === 'b') as DohUpstream;
    await until(() => raw.stats.pending === 0, 8000);

    // b stops answering: its requests are reset once the query deadline (600 ms) is over, not before.
    b.mode = 'hang';
    const t0 = performance.now();
    const r = await queryUdp({ port: d.port, name: 'example.com', type: 'AAAA' });
    expect(r.response.rcode).toBe('NOERROR');
    expect(b.resets).toBe(0);
    await until(() => b.resets === 1, 3000); // polled: a reset before the deadline would show below

    expect(performance.now() - t0).toBeGreaterThanOrEqual(550);
    await until(() => raw.stats.pending === 0, 8000);
  });

  it('failover moves on when an attempt does not answer in time; the last one gets until the deadline', async () => {
    const d = await pair.start({ upstreams: ab(), strategy: 'failover', failover: { attemptTimeoutMs: 200 } });
    a.mode = 'hang';
    b.delayMs = 400; // slower than the attempt timeout, but the last one left
    const r = await queryUdp({ port: d.port, name: 'example.com', timeoutMs: 4000 });
    expect(r.response.answers[0]!.data).toBe('192.0.2.1');
    expect(r.ms).toBeGreaterThanOrEqual(590);
    expect([a.requests, b.requests]).toEqual([1, 1]);
    expect(d.logs.some((l) => l.msg === 'upstream failed' && l.upstream === 'a' && l.reason === 'timeout')).toBe(true);
  });
});

describe('plain DNS upstreams and forward rules', () => {
  const groups = () => ({
    cluster: { strategy: 'failover' as const, upstreams: [{ url: `udp://127.0.0.1:${cluster.port}` }] },
    office: { upstreams: [{ address: `127.0.0.1:${office.port}`, name: 'office' }] },
  });
  const forward = {
    'cluster.local': 'cluster',
    '10.in-addr.arpa': 'cluster',
    'corp.example.net': 'office',
    'public.corp.example.net': 'default',
    'big.example.net': 'cluster',
  };

  it('cluster.local and reverse zones go to the plain group, and nothing else does', async () => {
    const d = await pair.start({ upstreams: [{ url: a.url, ca: pair.pki.caFile }], groups: groups(), forward });
    const k = await queryUdp({ port: d.port, name: 'kubernetes.default.svc.cluster.local' });
    expect(k.response.answers.map((x) => x.data)).toEqual(['10.96.0.1']);
    const ptr = await queryUdp({ port: d.port, name: '1.0.96.10.in-addr.arpa', type: 'PTR' });
    expect(ptr.response.answers.map((x) => x.data)).toEqual(['kubernetes.default.svc.cluster.local']);
    // A search-list name under cluster.local that does not exist: NXDOMAIN from the cluster DNS.
    const nx = await queryUdp({ port: d.port, name: 'example.com.default.svc.cluster.local' });
    expect(nx.response.rcode).toBe('NXDOMAIN');
    expect(cluster.udpQueries).toBe(3);
    expect(a.requests).toBe(0);

    const pub = await queryUdp({ port: d.port, name: 'example.com' });
    expect(pub.response.answers[0]!.data).toBe('192.0.2.1');
    expect(cluster.udpQueries).toBe(3);
    expect(office.udpQueries).toBe(0);
    expect(a.requests).toBe(1);
  });

  it('the most specific rule wins', async () => {
    const d = await pair.start({ upstreams: [{ url: a.url, ca: pair.pki.caFile }], groups: groups(), forward });
    const intranet = await queryUdp({ port: d.port, name: 'Intranet.Corp.example.net' });
    expect(intranet.response.answers[0]!.data).toBe('10.1.0.1');
    expect(office.udpQueries).toBe(1);
    // public.corp.example.net is sent back to the default (DoH) group by its own rule.
    const pub = await queryUdp({ port: d.port, name: 'www.public.corp.example.net' });
    expect(pub.response.rcode).toBe('NXDOMAIN');
    expect(a.requests).toBe(1);
    expect(office.udpQueries).toBe(1);
    // A name that only ends like a rule ("xcorp.example.net") is not covered by it.
    await queryUdp({ port: d.port, name: 'xcorp.example.net' });
    expect(office.udpQueries).toBe(1);
    expect(a.requests).toBe(2);
  });

  it('a truncated UDP answer is retried over TCP', async () => {
    const d = await pair.start({ upstreams: [{ url: a.url, ca: pair.pki.caFile }], groups: groups(), forward });
    const big = await queryTcp({ port: d.port, name: 'big.example.net', type: 'TXT' });
    expect(big.response.answers.length).toBe(40);
    expect(cluster.udpQueries).toBe(1);
    expect(cluster.tcpQueries).toBe(1);
  });

  it('tcp:// upstreams speak TCP only', async () => {
    const d = await pair.start({
      upstreams: [{ url: a.url, ca: pair.pki.caFile }],
      groups: { cluster: { upstreams: [{ url: `tcp://127.0.0.1:${cluster.port}` }] } },
      forward: { 'cluster.local': 'cluster' },
    });
    const k = await queryUdp({ port: d.port, name: 'kubernetes.default.svc.cluster.local' });
    expect(k.response.answers[0]!.data).toBe('10.96.0.1');
    expect([cluster.udpQueries, cluster.tcpQueries]).toEqual([0, 1]);
  });

  it('a plain upstream that does not answer gives SERVFAIL within the deadline', async () => {
    cluster.mode = 'hang';
    const d = await pair.start({ upstreams: [{ url: a.url, ca: pair.pki.caFile }], groups: groups(), forward, timeoutMs: 700 });
    const r = await queryUdp({ port: d.port, name: 'kubernetes.default.svc.cluster.local', timeoutMs: 3000 });
    expect(r.response.rcode).toBe('SERVFAIL');
    expect(r.ms).toBeLessThan(2000);
    expect(a.requests).toBe(0);
  });
});

describe('fallback group', () => {
  it('is used only when every default upstream is down', async () => {
    const d = await pair.start({
      upstreams: ab(),
      groups: { office: { upstreams: [{ address: `127.0.0.1:${office.port}` }] } },
      fallback: 'office',
      health: { failures: 1, backoffMs: 60_000 },
    });
    const ok = await queryUdp({ port: d.port, name: 'example.com' });
    expect(ok.response.answers[0]!.data).toBe('192.0.2.1');
    expect(office.udpQueries).toBe(0);

    a.mode = 'http500';
    b.mode = 'reset';
    const viaFallback = await queryUdp({ port: d.port, name: 'www.example.com' });
    expect(viaFallback.response.answers[0]!.data).toBe('192.0.2.3');
    expect(office.udpQueries).toBe(1);
    expect(d.logs.some((l) => l.msg === 'answering from the fallback group' && l.group === 'office')).toBe(true);
    // Both are out now: the fallback answers without asking them again. (A reset request is
    // retried once on a fresh connection, which may still be under way: let it settle first.)
    const raw = d.daemon.upstreams as DohUpstream[];
    let requests = -1;
    while (requests !== a.requests + b.requests) {
      requests = a.requests + b.requests;
      await until(() => raw.every((u) => u.stats.pending === 0), 8000);
      await sleep(100);
    }
    const next = await queryUdp({ port: d.port, name: 'cname.example.net' });
    expect(next.response.rcode).toBe('NOERROR');
    expect(a.requests + b.requests).toBe(requests);
    expect(office.udpQueries).toBe(2);
  });

  it('is off by default: a failing default group means SERVFAIL', async () => {
    const d = await pair.start({ upstreams: [{ url: a.url, ca: pair.pki.caFile }], groups: { office: { upstreams: [{ address: `127.0.0.1:${office.port}` }] } } });
    a.mode = 'http500';
    const r = await queryUdp({ port: d.port, name: 'example.com' });
    expect(r.response.rcode).toBe('SERVFAIL');
    expect(office.udpQueries).toBe(0);
  });
});
