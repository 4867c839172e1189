/**
 * The crash-proof upstream layer (upstream/guard.ts, issue 18 item 3): a throw inside a
 * transport's callbacks — a connect/TLS callback, a connection event, a socket event, the
 * delivery of an exchange's outcome — never reaches the process. The transport is
 * quarantined (its connections destroyed) and rebuilt, the restart is logged at error level
 * and counted in dohd_upstream_restarts_total{upstream,reason}, and the upstream answers
 * again afterwards. Throws are injected through the guard's test hook, at the exact places
 * the network drives; each place three times in a row on the same transport.
 *
 * Were any of these throws to escape, vitest would fail the run with an uncaught exception
 * or unhandled rejection.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import dnsPacket from 'dns-packet';
import { queryTcp, queryUdp } from '../fixtures/dns-client.js';
import { startDaemon, type RunningDaemon } from '../fixtures/daemon.js';
import { startDohUpstream, stopDohUpstream, type DohServer } from '../fixtures/doh-server.js';
import type { Pki } from '../fixtures/pki.js';
import { startPlainDnsServer, type PlainDnsServer } from '../fixtures/plain-dns-server.js';
import { parseProm } from '../fixtures/prom.js';
import { decodeQuery, type Query } from '../../src/dns/message.js';
import { buildUpstreamQuery } from '../../src/dns/upstream-query.js';
import { DohUpstream } from '../../src/upstream/doh/doh.js';
import { UpstreamError } from '../../src/upstream/errors.js';
import type { GuardedPlace } from '../../src/upstream/guard.js';
import { PlainUpstream } from '../../src/upstream/plain/plain.js';
import { DotUpstream } from '../../src/upstream/dot/dot.js';
import { startDotServer, type DotServer } from '../fixtures/dot-server.js';
import { makePki } from '../fixtures/pki.js';

let flaky: { pki: Pki; doh: DohServer };
let steady: { pki: Pki; doh: DohServer };
let plain: PlainDnsServer;
let d: RunningDaemon | undefined;

beforeAll(async () => {
  [flaky, steady, plain] = await Promise.all([startDohUpstream({ name: 'flaky' }), startDohUpstream({ name: 'steady' }), startPlainDnsServer()]);
});
afterAll(async () => {
  await Promise.all([stopDohUpstream(flaky), stopDohUpstream(steady), plain.close()]);
});
afterEach(async () => {
  await d?.stop();
  d = undefined;
});

let seq = 0;
function query(name = 'example.com', type: dnsPacket.RecordType = 'A'): Query {
  const r = decodeQuery(dnsPacket.encode({ type: 'query', id: ++seq, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type, class: 'IN' }] }));
  if (!r.ok) throw new Error('bad query');
  return r.query;
}

/** A hook that throws at `place`, `times` times. */
function throwAt(place: GuardedPlace, times: number): { hook: (p: GuardedPlace) => void; thrown: () => number } {
  let thrown = 0;
  return {
    hook: (p) => {
      if (p === place && thrown < times) {
        thrown++;
        throw new RangeError(`injected at ${p}`);
      }
    },
    thrown: () => thrown,
  };
}

function signal(ms = 5000): AbortSignal {
  return AbortSignal.timeout(ms);
}

describe('DoH transport', () => {
  for (const place of ['connect', 'connection', 'response', 'settle', 'exchange'] as const) {
    it(`a throw at "${place}", three times in a row: each is a failed attempt and a restart; then it answers again`, async () => {
      const restarts: string[] = [];
      const u = new DohUpstream({ url: flaky.doh.url, ca: flaky.pki.caFile, name: 'flaky' }, { onRestart: (name, reason) => restarts.push(`${name}/${reason}`) });
      try {
        const t = throwAt(place === 'exchange' ? 'settle' : place, 3);
        if (place === 'exchange') {
          // A transport whose exchange fails with something that is not an UpstreamError.
          const send = (u as unknown as { send: unknown }).send;
          let left = 3;
          (u as unknown as { send: unknown }).send = function (this: DohUpstream, ...args: unknown[]) {
            return left-- > 0 ? Promise.reject(new TypeError('injected')) : (send as (...a: unknown[]) => Promise<unknown>).apply(u, args);
          };
        } else u.guard.inject = t.hook;
        let failed = 0;
        for (let i = 0; i < 8 && restarts.length < 3; i++) {
          const q = query();
          await u.exchange(buildUpstreamQuery(q), q, signal()).then(
            () => {},
            (err: unknown) => {
              // Every failure reaches the caller as an UpstreamError, like any failed exchange.
              expect(err).toBeInstanceOf(UpstreamError);
              failed++;
            },
          );
        }
        expect(restarts.length).toBe(3);
        expect(new Set(restarts)).toEqual(new Set([`flaky/${place}`]));
        expect(u.guard.restarts).toBe(3);
        expect(failed).toBeGreaterThan(0);
        // Rebuilt: it answers again.
        u.guard.inject = undefined;
        const q = query();
        const a = await u.exchange(buildUpstreamQuery(q), q, signal());
        expect(a.rcode).toBe(0);
      } finally {
        await u.close();
      }
    });
  }
});

describe('plain-DNS transport', () => {
  for (const tcpOnly of [false, true]) {
    for (const place of ['connect', 'socket'] as const) {
      it(`${tcpOnly ? 'TCP' : 'UDP'}: a throw at "${place}", three times in a row, fails the attempt and restarts; then it answers`, async () => {
        const restarts: string[] = [];
        const u = new PlainUpstream({ host: '127.0.0.1', port: plain.port, family: 4 }, { tcpOnly, name: 'plain', onRestart: (name, reason) => restarts.push(`${name}/${reason}`) });
        const t = throwAt(place, 3);
        u.guard.inject = t.hook;
        for (let i = 0; i < 3; i++) {
          const q = query();
          await expect(u.exchange(Buffer.alloc(0), q, signal())).rejects.toBeInstanceOf(UpstreamError);
        }
        expect(t.thrown()).toBe(3);
        expect(restarts).toEqual([`plain/${place}`, `plain/${place}`, `plain/${place}`]);
        const q = query();
        expect((await u.exchange(Buffer.alloc(0), q, signal())).rcode).toBe(0);
        await u.close();
      });
    }
  }
});

describe('in the daemon', () => {
  it('a throwing DoH transport beside a steady one: every query answered, the restart logged and in /metrics; the flaky one answers again after', async () => {
    d = await startDaemon({
      upstreams: [
        { url: flaky.doh.url, ca: flaky.pki.caFile, name: 'flaky' },
        { url: steady.doh.url, ca: steady.pki.caFile, name: 'steady' },
      ],
    });
    const u = d.daemon.upstreams.find((x) => x.name === 'flaky') as DohUpstream;
    const places: GuardedPlace[] = ['connect', 'connection', 'response', 'settle'];
    for (const place of places) {
      u.dropConnection();
      const t = throwAt(place, 3);
      u.guard.inject = t.hook;
      for (let i = 0; i < 3; i++) {
        const r = await (i % 2 ? queryTcp : queryUdp)({ host: d.host, port: d.port, name: `n${place}${i}.example.com`, type: 'A', timeoutMs: 4000 });
        expect(r.response.rcode).toMatch(/NOERROR|NXDOMAIN/);
      }
      u.guard.inject = undefined;
    }
    const scrape = parseProm(await d.daemon.metrics.render());
    const restarts = scrape.find('dohd_upstream_restarts_total', { upstream: 'flaky' });
    expect(restarts.length).toBeGreaterThan(0);
    expect(restarts.every((s) => places.includes(s.labels.reason as GuardedPlace))).toBe(true);
    expect(scrape.value('dohd_upstream_restarts_total', { upstream: 'steady' })).toBe(0);
    expect(d.logs.some((l) => /upstream transport failed unexpectedly/.test(l.msg) && l.upstream === 'flaky')).toBe(true);
    // Rebuilt: the flaky upstream answers again (once health lets it race again).
    const before = flaky.doh.answered;
    for (let i = 0; i < 40 && flaky.doh.answered === before; i++) {
      const r = await queryUdp({ host: d.host, port: d.port, name: `again${i}.example.com`, type: 'A', timeoutMs: 4000 });
      expect(r.response.rcode).toBe('NXDOMAIN');
      if (flaky.doh.answered === before) await new Promise((r) => setTimeout(r, 100));
    }
    expect(flaky.doh.answered).toBeGreaterThan(before);
  });
});

describe('DoT transport', () => {
  let dot: DotServer;
  let dotPki: Pki;
  beforeAll(async () => {
    dotPki = await makePki({ dnsNames: ['dot.test'] });
    dot = await startDotServer({ pki: dotPki });
  });
  afterAll(async () => {
    await dot.close();
    await dotPki.cleanup();
  });

  for (const place of ['connect', 'connection', 'response', 'settle', 'timer'] as const) {
    it(`a throw at "${place}", three times in a row: never reaches the process, each is a restart; then it answers again`, async () => {
      const restarts: string[] = [];
      const t = throwAt(place, 3);
      const u = new DotUpstream(
        { url: `tls://dot.test:${dot.port}`, bootstrap: ['127.0.0.1'], ca: dotPki.caFile, name: 'dot', quietMs: place === 'timer' ? 1 : 1000, idleTimeoutMs: place === 'timer' ? 50 : 8000 },
        { onRestart: (name, reason) => restarts.push(`${name}/${reason}`), inject: t.hook },
      );
      try {
        const outcomes: string[] = [];
        for (let i = 0; i < 6 && t.thrown() < 3; i++) {
          if (place === 'connection') dot.dropNext = 1; // a close event to deliver
          if (place === 'timer') await new Promise((r) => setTimeout(r, 100)); // the idle timer (50 ms) fires
          const r = await u.exchange(buildUpstreamQuery(query()), query(), signal(3000)).then(
            () => 'answer',
            (e: unknown) => (e instanceof UpstreamError ? e.reason : `not an UpstreamError: ${String(e)}`),
          );
          outcomes.push(r);
        }
        expect(t.thrown()).toBe(3);
        expect(restarts).toEqual([`dot/${place}`, `dot/${place}`, `dot/${place}`]);
        expect(u.guard.restarts).toBe(3);
        for (const o of outcomes) expect(o).not.toMatch(/not an UpstreamError/);
        dot.dropNext = 0;
        const a = await u.exchange(buildUpstreamQuery(query()), query(), signal(3000));
        expect(a.rcode).toBe(0);
      } finally {
        dot.dropNext = 0;
        await u.close();
      }
    });
  }
});
