/**
 * The cache by the RFCs, through a real dohd and real DoH servers on loopback: negative
 * caching (RFC 2308), TTL clamps, serve-stale (RFC 8767), prefetch, coalescing, warm restart.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { manualClock, type ManualClock } from '../fixtures/clock.js';
import { queryTcp, queryUdp } from '../fixtures/dns-client.js';
import type { DaemonOptions, RunningDaemon } from '../fixtures/daemon.js';
import { useDohPair } from '../fixtures/doh-pair.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { until } from '../fixtures/resources.js';
import type { DohServer } from '../fixtures/doh-server.js';
import { useTempDir } from '../fixtures/temp-dir.js';

// TTLs run out on a manual clock (the cache's `now`); only the client budgets and deadlines are real time.
const pair = useDohPair(['a', 'b'], {
  afterReset: (servers) => {
    for (const s of servers) {
      s.zone.remove('short.example.net');
      s.zone.add({ name: 'short.example.net', type: 'A', ttl: 2, data: '192.0.2.2' });
    }
  },
});
let a: DohServer;
let b: DohServer;
let d: RunningDaemon | undefined;
let clock: ManualClock;

const tmp = useTempDir('dohd-cache-');

beforeAll(() => {
  [a, b] = pair.servers;
});

/** A daemon on a fresh manual clock (`clock`), stopped after the test. */
function startDaemon(input: ConfigInput, opts: DaemonOptions = {}): Promise<RunningDaemon> {
  clock = manualClock();
  return pair.start(input, { clock: clock.now, ...opts });
}

const one = () => pair.upstreams(a);
const both = () => pair.upstreams(a, b);

describe('negative caching (RFC 2308)', () => {
  it('NXDOMAIN and NODATA are answered from the cache, for the SOA minimum bounded by negativeMaxTtl', async () => {
    d = await startDaemon({ upstreams: one(), cache: { negativeMaxTtl: 5 } });
    const nx1 = await queryUdp({ port: d.port, name: 'nope.example.com' });
    const nx2 = await queryUdp({ port: d.port, name: 'NOPE.example.com' });
    expect(nx1.response.rcode).toBe('NXDOMAIN');
    expect(nx2.response.rcode).toBe('NXDOMAIN');
    // The zone's SOA says 60; the clamp says 5: the SOA goes out with TTL 5.
    expect(nx1.response.authorities.map((r) => [r.type, r.ttl])).toEqual([['SOA', 5]]);
    expect(nx2.response.authorities[0]!.ttl).toBeLessThanOrEqual(5);
    const nodata1 = await queryTcp({ port: d.port, name: 'example.com', type: 'MX' });
    const nodata2 = await queryUdp({ port: d.port, name: 'example.com', type: 'MX' });
    expect(nodata1.response.rcode).toBe('NOERROR');
    expect(nodata1.response.answers).toEqual([]);
    expect(nodata2.response.rcode).toBe('NOERROR');
    expect(a.requests).toBe(2);
    expect(d.daemon.cacheStage.hits).toBe(2);
  });

  it('without a clamp the negative TTL is the SOA minimum', async () => {
    d = await startDaemon({ upstreams: one() });
    const nx = await queryUdp({ port: d.port, name: 'missing.example.net' });
    expect(nx.response.authorities[0]!.ttl).toBe(60);
    await queryUdp({ port: d.port, name: 'missing.example.net' });
    expect(a.requests).toBe(1);
  });
});

describe('TTL clamps', () => {
  it('minTtl raises short TTLs (and keeps them cached that long); maxTtl lowers long ones', async () => {
    d = await startDaemon({ upstreams: one(), cache: { minTtl: 10, maxTtl: 100 } });
    const s1 = await queryUdp({ port: d.port, name: 'short.example.net' });
    expect(s1.response.answers[0]!.ttl).toBe(10);
    const e = await queryUdp({ port: d.port, name: 'example.com' });
    expect(e.response.answers[0]!.ttl).toBe(100);
    clock.advance(2200); // past the record's own TTL of 2
    const s2 = await queryUdp({ port: d.port, name: 'short.example.net' });
    expect(s2.response.answers[0]!.data).toBe('192.0.2.2');
    expect(s2.response.answers[0]!.ttl).toBeLessThanOrEqual(8);
    expect(s2.response.answers[0]!.ttl).toBeGreaterThanOrEqual(6);
    expect(a.requests).toBe(2);
  });
});

describe('serve-stale (RFC 8767)', () => {
  it('serves the expired answer with TTL 30 within the client budget while every upstream hangs, then refreshes when one recovers', async () => {
    d = await startDaemon({
      upstreams: both(),
      timeoutMs: 1000,
      cache: { staleClientTimeoutMs: 400, staleRecheckMs: 300 },
    });
    const fresh = await queryUdp({ port: d.port, name: 'short.example.net' });
    expect(fresh.response.answers[0]!.ttl).toBe(2);
    clock.advance(2100);
    a.mode = 'hang';
    b.mode = 'hang';
    const stale = await queryUdp({ port: d.port, name: 'short.example.net', timeoutMs: 3000 });
    expect(stale.response.rcode).toBe('NOERROR');
    expect(stale.response.answers.map((r) => [r.data, r.ttl])).toEqual([['192.0.2.2', 30]]);
    // It waited for the refresh as long as the budget allows, and answered before the deadline.
    expect(stale.ms).toBeGreaterThanOrEqual(350);
    expect(stale.ms).toBeLessThan(950);
    expect(d.daemon.cacheStage.staleServed).toBe(1);
    const asked = a.requests + b.requests;
    expect(asked).toBeGreaterThanOrEqual(1);

    // The upstreams come back with a new address: the next refresh brings it in.
    for (const s of [a, b]) {
      s.zone.remove('short.example.net');
      s.zone.add({ name: 'short.example.net', type: 'A', ttl: 2, data: '192.0.2.22' });
      s.mode = 'ok';
    }
    // The hung refresh fails at its 1 s deadline (real time); 300 ms of the clock later, the next one goes out.
    let last = stale;
    for (let i = 0; i < 40 && last.response.answers[0]?.data !== '192.0.2.22'; i++) {
      await sleep(50);
      clock.advance(200);
      last = await queryUdp({ port: d.port, name: 'short.example.net', timeoutMs: 3000 });
      expect(last.response.rcode).toBe('NOERROR');
      expect(['192.0.2.2', '192.0.2.22']).toContain(last.response.answers[0]!.data);
    }
    expect(last.response.answers.map((r) => r.data)).toEqual(['192.0.2.22']);
    expect(last.response.answers[0]!.ttl).toBeLessThanOrEqual(2);
    expect(a.requests + b.requests).toBeGreaterThan(asked);
  });

  it('with the defaults the stale answer comes at the 1.8 s budget, before the 2.5 s deadline', async () => {
    d = await startDaemon({ upstreams: one() });
    await queryUdp({ port: d.port, name: 'short.example.net' });
    clock.advance(2100);
    a.mode = 'hang';
    const r = await queryUdp({ port: d.port, name: 'short.example.net', timeoutMs: 4000 });
    expect(r.response.answers.map((x) => [x.data, x.ttl])).toEqual([['192.0.2.2', 30]]);
    expect(r.ms).toBeGreaterThanOrEqual(1700);
    expect(r.ms).toBeLessThan(2450);
  });

  it('an answer expired beyond the stale window is not served: SERVFAIL at the deadline', async () => {
    d = await startDaemon({ upstreams: one(), timeoutMs: 800, cache: { staleWindow: 1, staleClientTimeoutMs: 200 } });
    await queryUdp({ port: d.port, name: 'short.example.net' });
    clock.advance(3200); // TTL 2 + window 1
    a.mode = 'hang';
    const r = await queryUdp({ port: d.port, name: 'short.example.net', timeoutMs: 3000 });
    expect(r.response.rcode).toBe('SERVFAIL');
    expect(d.daemon.cacheStage.staleServed).toBe(0);
  });

  it('a fast failure of every upstream serves the stale answer at once', async () => {
    d = await startDaemon({ upstreams: both(), timeoutMs: 4000, cache: { staleClientTimeoutMs: 3000 } });
    await queryUdp({ port: d.port, name: 'short.example.net' });
    clock.advance(2100);
    a.mode = 'http500';
    b.mode = 'servfail';
    const r = await queryUdp({ port: d.port, name: 'short.example.net', timeoutMs: 5000 });
    expect(r.response.answers.map((x) => [x.data, x.ttl])).toEqual([['192.0.2.2', 30]]);
    expect(r.ms).toBeLessThan(2500); // not after the 3 s budget
  });
});

describe('prefetch', () => {
  it('keeps a hot name warm across several TTLs: no client query ever waits on an upstream', async () => {
    a.delayMs = 30; // every upstream exchange takes a while: a client waiting on one would be a miss
    d = await startDaemon({ upstreams: one(), cache: { prefetchHits: 1, prefetchThreshold: 0.8, staleWindow: 0 } });
    const first = await queryUdp({ port: d.port, name: 'short.example.net' });
    expect(first.response.answers[0]!.data).toBe('192.0.2.2');
    // Five seconds (two and a half TTLs) of a query every 100 ms. The clock stands still while a
    // prefetch is in flight: it takes 30 ms of real time, far inside the 1.6 s the 0.8 threshold leaves.
    let answered = 0;
    for (let t = 0; t < 5000; t += 100) {
      clock.advance(100);
      const r = await queryUdp({ port: d.port, name: 'short.example.net' });
      expect(r.response.rcode).toBe('NOERROR');
      expect(r.response.answers[0]!.data).toBe('192.0.2.2');
      answered++;
      await until(() => d!.daemon.cacheStage.refreshing === 0, 3000, 'prefetch done');
    }
    expect(answered).toBe(50);
    expect(d.daemon.cacheStage.misses).toBe(1); // only the very first query
    expect(d.daemon.cacheStage.staleServed).toBe(0);
    expect(d.daemon.cacheStage.prefetches).toBeGreaterThanOrEqual(2);
    expect(a.requests).toBeGreaterThanOrEqual(3);
  });

  it('an entry nobody asks for again is not prefetched', async () => {
    d = await startDaemon({ upstreams: one(), cache: { prefetchHits: 3, prefetchThreshold: 0.5 } });
    await queryUdp({ port: d.port, name: 'short.example.net' });
    clock.advance(1200);
    await queryUdp({ port: d.port, name: 'short.example.net' }); // one hit, in the last half: not popular enough
    clock.advance(700);
    await queryUdp({ port: d.port, name: 'other.example.net' }); // a query behind it: a prefetch would have gone out by now
    expect(d.daemon.cacheStage.prefetches).toBe(0);
    expect(a.requests).toBe(2);
  });
});

describe('coalescing', () => {
  it('a shared exchange nobody waits for any more is cancelled: nothing stays in flight after the deadline', async () => {
    a.mode = 'hang';
    d = await startDaemon({ upstreams: one(), timeoutMs: 300 });
    const rs = await Promise.all(Array.from({ length: 5 }, () => queryUdp({ port: d!.port, name: 'example.com', timeoutMs: 3000 })));
    expect(rs.map((r) => r.response.rcode)).toEqual(Array(5).fill('SERVFAIL'));
    expect(a.requests).toBe(1);
    const upstream = d.daemon.upstreams[0] as unknown as { stats: { pending: number } };
    await until(() => d!.daemon.coalesceStage.inflight === 0 && upstream.stats.pending === 0, 2000, 'nothing in flight').catch(() => {});
    expect(d.daemon.coalesceStage.inflight).toBe(0);
    expect(upstream.stats.pending).toBe(0);
  });

  it('100 identical concurrent queries cause one upstream request; DO makes a different question', async () => {
    a.delayMs = 250;
    d = await startDaemon({ upstreams: one() });
    const plain = Array.from({ length: 100 }, () => queryUdp({ port: d!.port, name: 'www.example.com', timeoutMs: 3000 }));
    const rs = await Promise.all(plain);
    for (const r of rs) {
      expect(r.response.rcode).toBe('NOERROR');
      expect(r.response.answers.map((x) => x.data)).toEqual(['192.0.2.3']);
    }
    expect(a.requests).toBe(1);
    expect(d.daemon.coalesceStage.joined).toBeGreaterThanOrEqual(90);
    const mixed = await Promise.all(
      Array.from({ length: 20 }, (_, i) => queryUdp({ port: d!.port, name: 'example.com', edns: { do: i % 2 === 0 }, timeoutMs: 3000 })),
    );
    expect(mixed.every((r) => r.response.answers[0]?.data === '192.0.2.1')).toBe(true);
    expect(a.requests).toBe(3);
  });
});

describe('bounds', () => {
  it('maxBytes bounds the cache: old entries are evicted, the daemon keeps answering', async () => {
    d = await startDaemon({ upstreams: one(), cache: { maxBytes: 4096 } });
    for (let i = 0; i < 20; i++) await queryUdp({ port: d.port, name: `n${i}.example.com` });
    expect(d.daemon.cache.bytes).toBeLessThanOrEqual(4096);
    expect(d.daemon.cache.size).toBeLessThan(20);
    expect(d.daemon.cache.size).toBeGreaterThan(0);
    const again = await queryUdp({ port: d.port, name: 'n19.example.com' });
    expect(again.response.rcode).toBe('NXDOMAIN');
    expect(a.requests).toBe(20); // the newest one was still there
  });
});

describe('warm restart', () => {
  it('saves the cache on stop and answers from it at the next start with no upstream reachable', async () => {
    const file = join(tmp.path, 'warm.cache');
    d = await startDaemon({ upstreams: one(), cache: { file } });
    const wall = clock;
    await queryUdp({ port: d.port, name: 'example.com' });
    await queryUdp({ port: d.port, name: 'nope.example.com' });
    await d.stop();
    d = undefined;
    expect(existsSync(file)).toBe(true);
    wall.advance(1100);
    // Port 1 on loopback: nothing listens there, every upstream exchange fails.
    d = await pair.start({ upstreams: [{ url: 'https://127.0.0.1:1/dns-query' }], cache: { file }, timeoutMs: 1000 }, { clock: wall.now });
    expect(d.logs.find((l) => l.msg === 'cache loaded')).toMatchObject({ loaded: 2 });
    const r = await queryUdp({ port: d.port, name: 'example.com' });
    expect(r.response.answers.map((x) => x.data)).toEqual(['192.0.2.1']);
    // The time dohd was down counts against the TTL.
    expect(r.response.answers[0]!.ttl).toBeLessThanOrEqual(299);
    expect(r.response.answers[0]!.ttl).toBeGreaterThan(280);
    const nx = await queryUdp({ port: d.port, name: 'nope.example.com' });
    expect(nx.response.rcode).toBe('NXDOMAIN');
  });

  it('a cache file that cannot be written is logged, and stopping still succeeds', async () => {
    const sub = join(tmp.path, 'vanishing');
    mkdirSync(sub);
    d = await startDaemon({ upstreams: one(), cache: { file: join(sub, 'cache') } });
    await queryUdp({ port: d.port, name: 'example.com' });
    rmSync(sub, { recursive: true });
    await d.stop();
    expect(d.logs.find((l) => l.msg === 'could not save the cache')).toMatchObject({ err: 'ENOENT' });
    d = undefined;
  });

  it('a damaged cache file is logged and ignored', async () => {
    const file = join(tmp.path, 'bad.cache');
    writeFileSync(file, 'DOHDCAC1\x00\x00\x00\x05garbage');
    d = await startDaemon({ upstreams: one(), cache: { file } });
    expect(d.logs.some((l) => l.msg === 'saved cache unusable; starting empty')).toBe(true);
    const r = await queryUdp({ port: d.port, name: 'example.com' });
    expect(r.response.answers[0]!.data).toBe('192.0.2.1');
  });
});
