/**
 * DNS-over-TLS upstreams (RFC 7858) against the real DoT fixture server: pipelining on one
 * connection, answers out of order, every fault mode three times in a row on the same
 * upstream (the second attempt is where a half-retired connection would show), connections
 * that die idle or under queries, certificates, the pending bound, and DoT inside dohd
 * (upstreams, groups, fallback, health, metrics). `dohd query --dot`: test/e2e/query-dot.test.ts.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import dnsPacket from 'dns-packet';
import { startDaemon, type RunningDaemon } from '../fixtures/daemon.js';
import { queryUdp } from '../fixtures/dns-client.js';
import { startDohServer, type DohServer } from '../fixtures/doh-server.js';
import { startDotServer, type DotMode, type DotServer } from '../fixtures/dot-server.js';
import { makePki, type Pki } from '../fixtures/pki.js';
import { until } from '../fixtures/resources.js';
import { startTcpProxy } from '../fixtures/tcp-proxy.js';
import { performance } from 'node:perf_hooks';
import { decodeQuery, type Query } from '../../src/dns/message.js';
import { buildUpstreamQuery } from '../../src/dns/upstream-query.js';
import { validateConfig } from '../../src/config/load.js';
import { DotUpstream } from '../../src/upstream/dot/dot.js';
import { UpstreamError } from '../../src/upstream/errors.js';

let pki: Pki;
let otherPki: Pki;
let dot: DotServer;
let untrusted: DotServer;
let doh: DohServer;
const upstreams: DotUpstream[] = [];
let d: RunningDaemon | undefined;

beforeAll(async () => {
  pki = await makePki({ dnsNames: ['dot.test', 'doh.test', 'localhost'] });
  otherPki = await makePki({ dnsNames: ['dot.test'] });
  dot = await startDotServer({ pki });
  untrusted = await startDotServer({ pki: otherPki });
  doh = await startDohServer({ pki, mode: 'http500' });
});
afterAll(async () => {
  await Promise.all([dot.close(), untrusted.close(), doh.close()]);
  await Promise.all([pki.cleanup(), otherPki.cleanup()]);
});
afterEach(async () => {
  await Promise.all(upstreams.splice(0).map((u) => u.close()));
  await d?.stop();
  d = undefined;
  dot.reset();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function mk(opts: { url?: string; bootstrap?: string[]; ca?: string | null; idleTimeoutMs?: number; maxPending?: number; connectTimeoutMs?: number } = {}): DotUpstream {
  const u = new DotUpstream(
    {
      url: opts.url ?? `tls://dot.test:${dot.port}`,
      bootstrap: opts.bootstrap ?? ['127.0.0.1'],
      ...(opts.ca === null ? {} : { ca: opts.ca ?? pki.caFile }),
      ...(opts.idleTimeoutMs ? { idleTimeoutMs: opts.idleTimeoutMs } : {}),
    },
    { connectTimeoutMs: opts.connectTimeoutMs ?? 3000, ...(opts.maxPending ? { maxPending: opts.maxPending } : {}) },
  );
  upstreams.push(u);
  return u;
}

function q(name: string, type = 'A'): { wire: Buffer; query: Query } {
  const raw = dnsPacket.encode({ type: 'query', id: 0, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type: type as 'A', class: 'IN' }] });
  const dq = decodeQuery(raw);
  if (!dq.ok) throw new Error('query');
  return { wire: buildUpstreamQuery(dq.query), query: dq.query };
}

async function ask(u: DotUpstream, name = 'example.com', ms = 3000) {
  const { wire, query } = q(name);
  return u.exchange(wire, query, AbortSignal.timeout(ms));
}

async function failure(u: DotUpstream, name = 'example.com', ms = 3000): Promise<UpstreamError> {
  const err = await ask(u, name, ms).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UpstreamError);
  return err as UpstreamError;
}

const addr = (a: { packet: dnsPacket.Packet }) => (a.packet.answers ?? []).map((r) => ('data' in r ? r.data : null));

describe('DoT upstream: the protocol', () => {
  it('answers over TLS with the URL host as server name, ALPN "dot", the certificate checked against it', async () => {
    const u = mk();
    const a = await ask(u);
    expect(addr(a)).toEqual(['192.0.2.1']);
    expect(a.wire.readUInt16BE(0)).toBe(0); // canonical: ID 0, as from DoH
    expect(dot.lastServername).toBe('dot.test');
    expect(u.name).toBe(`tls://dot.test:${dot.port}`);
    expect(u.kind).toBe('dot');
  });

  it('pipelines queries on one connection, each with an ID of its own', async () => {
    const u = mk();
    dot.delayMs = 50;
    const names = Array.from({ length: 20 }, (_, i) => (i % 2 ? 'example.com' : 'www.example.com'));
    const rs = await Promise.all(names.map((n) => ask(u, n)));
    expect(rs.map((r) => addr(r)[0])).toEqual(names.map((n) => (n === 'example.com' ? '192.0.2.1' : '192.0.2.3')));
    expect(dot.handshakes).toBe(1);
    expect(u.stats.connects).toBe(1);
    const ids = new Set(dot.queries.map((x) => x.id));
    expect(ids.size).toBe(20);
  });

  it('matches answers that come back out of order by ID', async () => {
    const u = mk();
    dot.mode = 'outOfOrder';
    dot.batch = 3;
    const names = ['example.com', 'www.example.com', 'goproxy.cn'];
    const rs = await Promise.all(names.map((n) => ask(u, n)));
    expect(rs.map((r) => addr(r)[0])).toEqual(['192.0.2.1', '192.0.2.3', '192.0.2.53']);
    expect(dot.handshakes).toBe(1);
  });

  it('ignores the late answer of a cancelled query and keeps the connection', async () => {
    const u = mk();
    await ask(u);
    dot.delayMs = 300;
    const e = await failure(u, 'www.example.com', 50);
    expect(e.reason).toBe('aborted');
    dot.delayMs = 0;
    await until(() => dot.answered === 2, 3000, "the cancelled query's late answer"); // it arrives now
    expect(addr(await ask(u))).toEqual(['192.0.2.1']);
    expect(dot.handshakes).toBe(1);
  });

  it('bounds the queries in flight: past maxPending it fails fast with "overloaded"', async () => {
    const u = mk({ maxPending: 3 });
    dot.mode = 'hang';
    const ctl = new AbortController();
    const hung = [1, 2, 3].map(() => u.exchange(q('example.com').wire, q('example.com').query, ctl.signal).catch((e: unknown) => e));
    const e = await failure(u);
    expect(e.reason).toBe('overloaded');
    ctl.abort();
    expect((await Promise.all(hung)).every((x) => x instanceof UpstreamError && x.reason === 'aborted')).toBe(true);
    expect(u.stats.pending).toBe(0);
  });
});

describe('DoT upstream: every fault three times in a row on the same upstream, then it answers again', () => {
  const cases: [DotMode, string, string][] = [
    ['garbage', 'malformed|wrong_question', 'random bytes'],
    ['short', 'malformed', 'a frame too short to be DNS'],
    ['wrongId', 'wrong_question', 'an ID nobody asked'],
    ['wrongQuestion', 'wrong_question', 'another question'],
    ['reset', 'reset', 'the connection reset under the query (re-sent once, reset again)'],
  ];
  for (const [mode, reason, what] of cases) {
    it(`${mode}: ${what}`, async () => {
      const u = mk();
      dot.mode = mode;
      for (let i = 0; i < 3; i++) {
        const e = await failure(u);
        expect(e.reason).toMatch(new RegExp(`^(${reason})$`));
      }
      dot.mode = 'ok';
      expect(addr(await ask(u))).toEqual(['192.0.2.1']);
    });
  }

  it('hang: each query fails at its deadline, and the connection still serves the next', async () => {
    const u = mk();
    dot.mode = 'hang';
    for (let i = 0; i < 3; i++) expect((await failure(u, 'example.com', 100)).reason).toBe('aborted');
    dot.mode = 'ok';
    expect(addr(await ask(u))).toEqual(['192.0.2.1']);
  });

  it('servfail is an answer, not a failure of the connection', async () => {
    const u = mk();
    dot.mode = 'servfail';
    for (let i = 0; i < 3; i++) expect((await ask(u)).rcode).toBe(2);
    expect(dot.handshakes).toBe(1);
  });

  it('an untrusted certificate is "intercepted", naming its issuer, three times, each on a new connection', async () => {
    const u = mk({ url: `tls://dot.test:${untrusted.port}` });
    for (let i = 0; i < 3; i++) {
      const e = await failure(u);
      expect(e.reason).toBe('intercepted');
      expect(e.message).toMatch(/certificate refused \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\): issued by "dohd test CA"/);
    }
    expect(u.stats.connects).toBe(3);
  });

  it('a certificate for another name is "intercepted"', async () => {
    const u = mk({ url: `tls://wrong.test:${dot.port}` });
    for (let i = 0; i < 3; i++) {
      const e = await failure(u);
      expect(e.reason).toBe('intercepted');
      expect(e.message).toMatch(/ERR_TLS_CERT_ALTNAME_INVALID.*for "dot.test"/);
    }
  });

  it('an IP-literal URL sends no SNI; the certificate must name the URL IP or the address connected to', async () => {
    // The fixture's certificate names 127.0.0.1 (not 127.0.0.9): the bootstrap address it was reached at.
    const u = mk({ url: `tls://127.0.0.9:${dot.port}`, bootstrap: ['127.0.0.1'] });
    expect(addr(await ask(u))).toEqual(['192.0.2.1']);
    expect(dot.lastServername).toBe('');
    const noIpPki = await makePki({ dnsNames: ['dot.test'], ips: [] });
    const noIp = await startDotServer({ pki: noIpPki });
    try {
      const v = mk({ url: `tls://127.0.0.1:${noIp.port}`, ca: noIpPki.caFile, bootstrap: ['127.0.0.1'] });
      const e = await failure(v);
      expect(e.reason).toBe('intercepted');
      expect(e.message).toMatch(/ERR_TLS_CERT_ALTNAME_INVALID/);
    } finally {
      await noIp.close();
      await noIpPki.cleanup();
    }
  });

  it('nothing listening: "connect", three times', async () => {
    const u = mk({ bootstrap: ['127.0.0.3'] });
    for (let i = 0; i < 3; i++) expect((await failure(u)).reason).toBe('connect');
  });
});

describe('DoT upstream: connections that die', () => {
  it('the server closing an idle connection costs the next query nothing', async () => {
    const u = mk();
    dot.idleCloseMs = 150;
    await ask(u);
    await until(() => dot.connections === 0, 5000);
    expect(addr(await ask(u))).toEqual(['192.0.2.1']);
    expect(dot.handshakes).toBe(2);
  });

  it('the server closing after each answer: every query still answered', async () => {
    const u = mk();
    dot.mode = 'closeAfterAnswer';
    for (let i = 0; i < 3; i++) expect(addr(await ask(u))).toEqual(['192.0.2.1']);
  });

  it('queries in flight on a connection that dies are re-sent once on one fresh connection', async () => {
    const u = mk();
    await ask(u);
    dot.delayMs = 100;
    dot.dropNext = 1;
    const names = ['a', 'b', 'c', 'd', 'e'].map((n) => `${n}.example.com`);
    const rs = await Promise.all(names.map((n) => ask(u, n)));
    expect(rs.map((r) => r.rcode)).toEqual(names.map(() => 3));
    expect(dot.handshakes).toBe(2);
    expect(u.stats.retries).toBeGreaterThanOrEqual(1);
  });

  it('a black-holed connection (no FIN, no RST) that was quiet is replaced: the query is answered on a fresh one', async () => {
    const proxy = await startTcpProxy({ host: '127.0.0.1', port: dot.port });
    try {
      const u = new DotUpstream({ url: `tls://dot.test:${proxy.port}`, bootstrap: ['127.0.0.1'], ca: pki.caFile, quietMs: 50 }, { connectTimeoutMs: 3000 });
      upstreams.push(u);
      await ask(u);
      await sleep(100); // quiet now
      proxy.blackhole();
      const t0 = performance.now();
      expect(addr(await ask(u, 'www.example.com', 2500))).toEqual(['192.0.2.3']);
      expect(performance.now() - t0).toBeLessThan(2000);
      expect(u.stats.retries).toBe(1);
      expect(u.stats.connects).toBe(2);
    } finally {
      await proxy.close();
    }
  });

  it('closes its own connection after idleTimeoutMs without queries', async () => {
    const u = mk({ idleTimeoutMs: 150 });
    await ask(u);
    expect(dot.connections).toBe(1);
    await until(() => dot.connections === 0, 5000);
    expect(addr(await ask(u))).toEqual(['192.0.2.1']);
  });

  it('a bootstrap address that refuses is passed over at once for the next one in the same query', async () => {
    const u = mk({ bootstrap: ['127.0.0.3', '127.0.0.1'] });
    expect(addr(await ask(u))).toEqual(['192.0.2.1']);
    expect(u.lastAttempts.map((a) => [a.address, a.outcome])).toEqual([
      ['127.0.0.3', 'ECONNREFUSED'],
      ['127.0.0.1', 'ok'],
    ]);
    expect(u.currentAddress).toBe('127.0.0.1');
  });
});

describe('DoT inside dohd', () => {
  const url = () => `tls://dot.test:${dot.port}`;

  it('works as a default upstream, in a forward group and as the fallback group', async () => {
    d = await startDaemon({
      upstreams: [{ url: doh.url, ca: pki.caFile, name: 'broken-doh' }],
      groups: {
        dotgroup: { upstreams: [{ url: url(), bootstrap: ['127.0.0.1'], ca: pki.caFile, name: 'dot-a' }] },
        rescue: { upstreams: [{ url: url(), bootstrap: ['127.0.0.1'], ca: pki.caFile, name: 'dot-b' }] },
      },
      forward: { 'goproxy.cn': 'dotgroup' },
      fallback: 'rescue',
      health: { failures: 1, backoffMs: 60_000 },
    });
    const viaGroup = await queryUdp({ port: d.port, name: 'goproxy.cn', timeoutMs: 4000 });
    expect(viaGroup.response.answers?.map((a) => a.data)).toEqual(['192.0.2.53']);
    await queryUdp({ port: d.port, name: 'www.example.com', timeoutMs: 4000 }); // takes the broken DoH out
    const viaFallback = await queryUdp({ port: d.port, name: 'example.com', timeoutMs: 4000 });
    expect(viaFallback.response.answers?.map((a) => a.data)).toEqual(['192.0.2.1']);
    expect(dot.queries.map((x) => x.questions?.[0]?.name)).toEqual(expect.arrayContaining(['goproxy.cn', 'example.com']));

    d2 = await startDaemon({ upstreams: [{ url: url(), bootstrap: ['127.0.0.1'], ca: pki.caFile }] });
    const plain = await queryUdp({ port: d2.port, name: 'example.com', timeoutMs: 4000 });
    expect(plain.response.answers?.map((a) => a.data)).toEqual(['192.0.2.1']);
    await d2.stop();
    d2 = undefined;
  });

  it('health takes a failing DoT upstream out and metrics count its failures by reason', async () => {
    dot.mode = 'wrongId';
    d = await startDaemon({ upstreams: [{ url: url(), bootstrap: ['127.0.0.1'], ca: pki.caFile, name: 'dot' }], health: { failures: 3, backoffMs: 60_000 } });
    for (let i = 0; i < 3; i++) expect((await queryUdp({ port: d.port, name: `n${i}.example.com`, timeoutMs: 4000 })).response.rcode).toBe('SERVFAIL');
    expect(d.logs.some((l) => l.msg === 'upstream taken out' && l.upstream === 'dot')).toBe(true);
    const text = await d.daemon.metrics.registry.metrics();
    expect(text).toMatch(/dohd_upstream_failures_total\{upstream="dot",reason="wrong_question"\} 3/);
  });

  it('config: tls:// takes bootstrap, ca and name; known providers get their bootstrap; paths are refused', () => {
    const c = validateConfig({ upstreams: [{ url: 'tls://dns.google' }], groups: { g: { upstreams: [{ url: 'tls://one.one.one.one:853' }] } } });
    expect(c.upstreams[0]!.bootstrap).toEqual(expect.arrayContaining(['8.8.8.8', '8.8.4.4']));
    expect(c.groups.g!.upstreams[0]!.bootstrap).toEqual(expect.arrayContaining(['1.1.1.1']));
    expect(() => validateConfig({ upstreams: [{ url: 'tls://dns.google/dns-query' }] })).toThrow(/must be tls:\/\/HOST\[:PORT\]/);
    expect(() => validateConfig({ upstreams: [{ url: 'tls://dot.example' }] })).toThrow(/needs bootstrap IP addresses/);
    expect(() => validateConfig({ upstreams: [{ url: 'ftp://x.example' }] })).toThrow(/tls:\/\/HOST\[:853\]/);
    // dohd's own listener on 853 is a loop, found like any other.
    expect(() => validateConfig({ listen: ['127.0.0.1:853'], upstreams: [{ url: 'tls://127.0.0.1' }] })).toThrow(/forwarding loop/);
  });
});

let d2: RunningDaemon | undefined;
