/**
 * Daemon.reload and Daemon.drain in-process: what changes live, what waits for a restart,
 * that replaced upstreams are closed once their queries are done, and the shutdown hooks.
 */
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { copyFileSync, readFileSync, unlinkSync } from 'node:fs';
import { edes, queryUdp } from '../fixtures/dns-client.js';
import type { RunningDaemon } from '../fixtures/daemon.js';
import { useDohPair } from '../fixtures/doh-pair.js';
import type { DohServer } from '../fixtures/doh-server.js';
import { validateConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { effectiveConfig, LIVE_KEYS, planReload, stableJson } from '../../src/daemon/reload.js';
import { EDE_OVERLOADED } from '../../src/dns/ede.js';

const pair = useDohPair(['a', 'b']);
let a: DohServer;
let b: DohServer;

beforeAll(() => {
  [a, b] = pair.servers;
});

const next = (r: RunningDaemon, change: Record<string, unknown>): Config => validateConfig({ ...r.daemon.config, ...change });

describe('Daemon.reload', () => {
  it('swaps upstreams live; the old ones finish their query in flight, then are closed', async () => {
    const d = await pair.start({ upstreams: pair.upstreams(a), timeoutMs: 1000 });
    a.delayMs = 300;
    const inflight = queryUdp({ port: d.port, name: 'example.com', timeoutMs: 3000 });
    await vi.waitFor(() => expect(a.requests).toBe(1));
    const r = d.daemon.reload(next(d, { upstreams: pair.upstreams(b) }));
    expect(r).toEqual({ ok: true, live: ['upstreams'], restart: [] });
    expect((await inflight).response.answers[0]!.data).toBe('192.0.2.1'); // answered by the old upstream
    expect((await queryUdp({ port: d.port, name: 'www.example.com' })).response.answers[0]!.data).toBe('192.0.2.3');
    expect(b.requests).toBe(1);
    expect(a.sessions).toBe(1);
    // Closed after the old timeout plus a second: no connection left behind.
    await vi.waitFor(() => expect(a.sessions).toBe(0), { timeout: 4000 });
    expect(b.sessions).toBe(1);
  });

  it('pins, timeout, log level and cache change live; listen and admin wait for a restart', async () => {
    const d = await pair.start({ upstreams: pair.upstreams(a), log: { level: 'info' } });
    const running = d.daemon.config;
    const r = d.daemon.reload(
      next(d, { pins: { 'p.example.net': ['192.0.2.8'] }, timeoutMs: 900, log: { level: 'debug', queries: true }, cache: { maxEntries: 10 }, listen: ['127.0.0.1:1'], admin: { listen: '127.0.0.1:2' } }),
    );
    expect(r).toEqual({ ok: true, live: ['cache', 'log', 'pins', 'timeoutMs'], restart: ['admin', 'listen'] });
    expect(d.daemon.config.listen).toEqual(running.listen);
    expect(d.daemon.config.admin).toBe(false);
    expect(d.daemon.config.timeoutMs).toBe(900);
    expect(d.daemon.log.level).toBe('debug');
    expect(d.daemon.cache.size).toBe(0);
    expect((await queryUdp({ port: d.port, name: 'p.example.net' })).response.answers[0]!.data).toBe('192.0.2.8');
    expect(d.logs.filter((l) => l.msg === 'query')).toMatchObject([{ qname: 'p.example.net', source: 'pin' }]); // log.queries took effect
  });

  it('a new timeoutMs alone rebuilds the upstream groups (their strategies let losers run until the deadline)', async () => {
    const d = await pair.start({ upstreams: pair.upstreams(a, b), timeoutMs: 2500 });
    const before = d.daemon.groups;
    expect(d.daemon.reload(next(d, { timeoutMs: 900 }))).toEqual({ ok: true, live: ['timeoutMs'], restart: [] });
    expect(d.daemon.groups).not.toBe(before);
    expect((await queryUdp({ port: d.port, name: 'goproxy.cn' })).response.rcode).toBe('NOERROR');
  });

  it('maxInflight bounds the queries waiting on an upstream (the rest get SERVFAIL at once), and changes live', async () => {
    const d = await pair.start({ upstreams: pair.upstreams(a), maxInflight: 1 });
    a.delayMs = 300;
    const slow = queryUdp({ port: d.port, name: 'example.com', timeoutMs: 3000 });
    await vi.waitFor(() => expect(a.requests).toBe(1));
    const over = await queryUdp({ port: d.port, name: 'www.example.com', timeoutMs: 3000 });
    expect(over.response.rcode).toBe('SERVFAIL');
    expect(edes(over.response)).toEqual(EDE_OVERLOADED.map((e) => [e.code, e.text]));
    expect((await slow).response.rcode).toBe('NOERROR');
    expect(a.requests).toBe(1); // the refused query never reached the upstream

    expect(d.daemon.reload(next(d, { maxInflight: 2 }))).toEqual({ ok: true, live: ['maxInflight'], restart: [] });
    const both = await Promise.all(['example.net', 'www.example.net'].map((name) => queryUdp({ port: d.port, name, timeoutMs: 3000 })));
    expect(both.map((r) => r.response.rcode)).toEqual(['NOERROR', 'NXDOMAIN']); // as the upstream answered both
    expect(a.requests).toBe(3);
  });

  it('a new ladder timing rebuilds the upstream groups', async () => {
    const d = await pair.start({ upstreams: pair.upstreams(a) });
    const before = d.daemon.groups;
    expect(d.daemon.reload(next(d, { ladder: { stepMs: 300 } }))).toEqual({ ok: true, live: ['ladder'], restart: [] });
    expect(d.daemon.groups).not.toBe(before);
    expect(d.daemon.config.ladder.stepMs).toBe(300);
  });

  it('a reload that cannot be applied changes nothing and says why', async () => {
    const d = await pair.start({ upstreams: pair.upstreams(a) });
    // Valid when read, gone when applied: the new upstream cannot be built.
    const ca = `${pair.pki.dir}/soon-gone.pem`;
    copyFileSync(pair.pki.caFile, ca);
    const bad = next(d, { upstreams: [{ url: b.url, ca }], timeoutMs: 700 });
    unlinkSync(ca);
    const r = d.daemon.reload(bad);
    expect(r.ok).toBe(false);
    expect(r.error).toMatch(/gone\.pem/);
    expect(d.daemon.upstreams.map((u) => u.name)).toEqual(['a']);
    expect(d.daemon.config.timeoutMs).toBe(2500);
    expect((await queryUdp({ port: d.port, name: 'example.com' })).response.rcode).toBe('NOERROR');
  });
});

describe('Daemon.drain', () => {
  it('runs the shutdown hooks after the queries in flight are answered', async () => {
    const d = await pair.start({ upstreams: pair.upstreams(a) });
    a.delayMs = 300;
    const calls: { inflight: number }[] = [];
    d.daemon.onShutdown(() => {
      calls.push({ inflight: d.daemon.handler.inflight });
    });
    d.daemon.onShutdown(() => {
      throw new Error('disk full');
    });
    const q = queryUdp({ port: d.port, name: 'example.com', timeoutMs: 3000 });
    await vi.waitFor(() => expect(a.requests).toBe(1));
    const drained = await d.daemon.drain();
    expect(drained).toEqual({ unfinished: 0 });
    expect((await q).response.rcode).toBe('NOERROR');
    expect(calls).toEqual([{ inflight: 0 }]);
    expect(d.logs.find((l) => l.msg === 'shutdown step failed')).toBeDefined();
  });

  it('is bounded: a query that outlives the bound is counted, and shutdown goes on', async () => {
    const d = await pair.start({ upstreams: pair.upstreams(a), timeoutMs: 2000 });
    a.mode = 'hang';
    const q = queryUdp({ port: d.port, name: 'example.com', timeoutMs: 1000 }).catch((e: Error) => e);
    await vi.waitFor(() => expect(a.requests).toBe(1));
    expect(await d.daemon.drain(100)).toEqual({ unfinished: 1 });
    expect(await q).toBeInstanceOf(Error); // the socket closed before its SERVFAIL was due
  });
});

describe('clean stop', () => {
  it('logs no upstream failure for a raced request that lost and is still lingering at stop, and stops quickly', async () => {
    const d = await pair.start({ upstreams: pair.upstreams(a, b) });
    b.delayMs = 2000; // b loses every race and its request lingers (up to the deadline) after the answer
    const r = await queryUdp({ port: d.port, name: 'example.com' });
    expect(r.response.rcode).toBe('NOERROR');
    await vi.waitFor(() => expect(b.requests).toBe(1));
    const logs = d.logs;
    const t0 = performance.now();
    await d.daemon.drain();
    const ms = performance.now() - t0;
    await new Promise((res) => setTimeout(res, 50)); // let the destroyed streams settle
    expect(ms).toBeLessThan(1000); // the lingering loser does not hold the stop up (typically ~10 ms)
    expect(logs.filter((l) => l.msg === 'upstream failed')).toEqual([]);
  });
});

describe('reload plan', () => {
  const base = validateConfig({});
  it('unchanged or reordered mappings are not changes', () => {
    const reordered = JSON.parse(stableJson(base)) as Config;
    expect(planReload(base, reordered)).toEqual({ live: [], restart: [] });
    expect(stableJson({ b: 1, a: { d: 1, c: 2 } })).toBe(stableJson({ a: { c: 2, d: 1 }, b: 1 }));
  });

  it('docs/operations.md names every key that reloads live', () => {
    const docs = readFileSync(new URL('../../docs/operations.md', import.meta.url), 'utf8');
    const live = docs.slice(docs.indexOf('**Live**'), docs.indexOf('**Restart needed**'));
    for (const key of LIVE_KEYS) expect(live, key).toContain(`\`${key}\``);
  });

  it('an option it does not know (added later) is treated as needing a restart, never ignored', () => {
    const withNew = { ...base, someFutureOption: { qps: 5 } } as unknown as Config;
    const plan = planReload(base, withNew);
    expect(plan).toEqual({ live: [], restart: ['someFutureOption'] });
    expect('someFutureOption' in effectiveConfig(base, withNew, plan)).toBe(false);
  });
});
