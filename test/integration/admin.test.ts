/**
 * The admin listener against a real daemon: /healthz, /readyz (probe, pins, dead upstreams),
 * /metrics scraped and parsed after real traffic, every metric family checked to move.
 */
import { beforeAll, describe, expect, it, vi } from 'vitest';
import net from 'node:net';
import { queryTcp, queryUdp, sendRawUdp } from '../fixtures/dns-client.js';
import { memoryLog, type RunningDaemon } from '../fixtures/daemon.js';
import { useDohPair } from '../fixtures/doh-pair.js';
import type { DohServer } from '../fixtures/doh-server.js';
import { adminGet, parseProm } from '../fixtures/prom.js';
import { validateConfig } from '../../src/config/load.js';
import { Daemon } from '../../src/daemon/daemon.js';

const pair = useDohPair(['good', 'bad']);
let good: DohServer;
let bad: DohServer;

beforeAll(() => {
  [good, bad] = pair.servers;
});

const adminPort = (r: RunningDaemon) => Number(r.daemon.admin!.bound!.split(':').pop());

describe('admin listener', () => {
  it('/healthz answers, unknown paths are 404, other methods 405', async () => {
    const d = await pair.start({ upstreams: pair.upstreams(good), admin: { listen: '127.0.0.1:0' } });
    const port = adminPort(d);
    const h = await adminGet(port, '/healthz');
    expect(h).toMatchObject({ status: 200, body: 'ok\n' });
    expect((await adminGet(port, '/nope')).status).toBe(404);
    const post = await fetch(`http://127.0.0.1:${port}/metrics`, { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    await post.text();
    // The start-up log names the bound admin address.
    expect(d.logs.find((l) => l.msg === 'dohd listening')!.admin).toBe(`127.0.0.1:${port}`);
  });

  it('/readyz probes the upstreams when none has answered yet, and is ready once one does', async () => {
    const d = await pair.start({ upstreams: pair.upstreams(good), admin: { listen: '127.0.0.1:0' } });
    expect(good.requests).toBe(0);
    const r = await adminGet(adminPort(d), '/readyz');
    expect(r.status).toBe(200);
    expect(r.body).toMatch(/^ready: listening on 127\.0\.0\.1:\d+; upstream good answering/);
    expect(good.requests).toBe(1); // one probe query
    expect(good.lastRequest!.query!.questions![0]).toMatchObject({ name: '.', type: 'NS' });
    await adminGet(adminPort(d), '/readyz');
    expect(good.requests).toBe(1); // no probe once an upstream has answered
  });

  it('/readyz is 503 while no upstream answers and no pins are loaded, 200 with pins', async () => {
    bad.mode = 'http500';
    let d = await pair.start({ upstreams: pair.upstreams(bad), admin: { listen: '127.0.0.1:0' }, timeoutMs: 500 });
    const r = await adminGet(adminPort(d), '/readyz');
    expect(r.status).toBe(503);
    expect(r.body).toMatch(/^not ready: .*no upstream has answered yet/);
    await d.stop();
    d = await pair.start({
      upstreams: pair.upstreams(bad),
      admin: { listen: '127.0.0.1:0' },
      timeoutMs: 500,
      pins: { 'goproxy.cn': ['192.0.2.10'] },
    });
    const p = await adminGet(adminPort(d), '/readyz');
    expect(p.status).toBe(200);
    expect(p.body).toMatch(/1 pins loaded/);
  });

  it('/readyz says "shutting down" while draining, and the query in flight is still answered', async () => {
    good.delayMs = 400;
    const d = await pair.start({ upstreams: pair.upstreams(good), admin: { listen: '127.0.0.1:0' } });
    const port = adminPort(d);
    const inflight = queryUdp({ port: d.port, name: 'example.com', timeoutMs: 3000 });
    await vi.waitFor(() => expect(good.requests).toBe(1));
    const draining = d.daemon.drain();
    const r = await adminGet(port, '/readyz');
    expect(r).toMatchObject({ status: 503, body: 'not ready: shutting down\n' });
    expect((await inflight).response.answers[0]!.data).toBe('192.0.2.1');
    expect(await draining).toEqual({ unfinished: 0 });
  });
});

describe('/metrics', () => {
  it('serves every family in Prometheus text format, and the values follow the traffic', async () => {
    bad.mode = 'http500';
    good.delayMs = 50; // so the failing upstream's quick HTTP 500 arrives first and is counted
    const d = await pair.start({
      upstreams: [
        { url: good.url, ca: pair.pki.caFile, name: 'good' },
        { url: bad.url, ca: pair.pki.caFile, name: 'bad' },
      ],
      pins: { 'pinned.example.net': ['192.0.2.77'] },
      admin: { listen: '127.0.0.1:0' },
    });
    const port = adminPort(d);
    const before = await adminGet(port, '/metrics');
    expect(before.status).toBe(200);
    expect(before.type).toMatch(/^text\/plain; version=0\.0\.4/);
    const s0 = parseProm(before.body);
    for (const [name, type] of [
      ['dohd_queries_total', 'counter'],
      ['dohd_query_duration_seconds', 'histogram'],
      ['dohd_rejected_total', 'counter'],
      ['dohd_inflight_queries', 'gauge'],
      ['dohd_cache_events_total', 'counter'],
      ['dohd_cache_entries', 'gauge'],
      ['dohd_upstream_duration_seconds', 'histogram'],
      ['dohd_upstream_wins_total', 'counter'],
      ['dohd_upstream_failures_total', 'counter'],
      ['dohd_pin_up', 'gauge'],
      ['dohd_policy_drops_total', 'counter'],
      ['dohd_config_reloads_total', 'counter'],
      ['process_cpu_user_seconds_total', 'counter'],
    ]) {
      expect(s0.types.get(name!), name).toBe(type);
      expect(s0.help.get(name!), name).toBeTruthy();
    }
    expect(s0.value('dohd_queries_total')).toBe(0);
    expect(s0.value('dohd_cache_events_total', { event: 'hit' })).toBe(0);

    // Traffic: a miss, a hit, TCP AAAA, NXDOMAIN, a pinned name, a malformed packet.
    expect((await queryUdp({ port: d.port, name: 'example.com', type: 'A' })).response.rcode).toBe('NOERROR');
    expect((await queryUdp({ port: d.port, name: 'example.com', type: 'A' })).response.rcode).toBe('NOERROR');
    expect((await queryTcp({ port: d.port, name: 'example.com', type: 'AAAA' })).response.rcode).toBe('NOERROR');
    expect((await queryUdp({ port: d.port, name: 'nothing-here.example.net', type: 'A' })).response.rcode).toBe('NXDOMAIN');
    expect((await queryUdp({ port: d.port, name: 'pinned.example.net', type: 'A' })).response.answers[0]!.data).toBe('192.0.2.77');
    const garbage = Buffer.alloc(12, 0);
    garbage.writeUInt16BE(1, 4); // qdcount 1, no question bytes
    await sendRawUdp('127.0.0.1', d.port, garbage, 500);

    // The interface other stages call.
    d.daemon.metrics.cacheEvent('stale');
    d.daemon.metrics.cacheEvent('prefetch', 2);
    d.daemon.metrics.policyDrop('rate_limit');
    d.daemon.metrics.policyDrop('refused');
    d.daemon.metrics.pinProbe('goproxy.cn', '192.0.2.10', true);
    d.daemon.metrics.pinProbe('goproxy.cn', '192.0.2.11', false);

    const s = parseProm((await adminGet(port, '/metrics')).body);
    expect(s.value('dohd_queries_total', { transport: 'udp', type: 'A', rcode: 'NOERROR', source: 'upstream' })).toBe(1);
    expect(s.value('dohd_queries_total', { transport: 'udp', type: 'A', rcode: 'NOERROR', source: 'cache' })).toBe(1);
    expect(s.value('dohd_queries_total', { transport: 'tcp', type: 'AAAA', rcode: 'NOERROR', source: 'upstream' })).toBe(1);
    expect(s.value('dohd_queries_total', { transport: 'udp', rcode: 'NXDOMAIN' })).toBe(1);
    expect(s.value('dohd_queries_total', { source: 'pin' })).toBe(1);
    expect(s.value('dohd_queries_total')).toBe(5);
    expect(s.value('dohd_query_duration_seconds_count')).toBe(5);
    expect(s.value('dohd_query_duration_seconds_count', { source: 'cache' })).toBe(1);
    expect(s.value('dohd_rejected_total', { transport: 'udp', reason: 'malformed' })).toBe(1);
    expect(s.value('dohd_cache_events_total', { event: 'hit' })).toBe(1);
    expect(s.value('dohd_cache_events_total', { event: 'miss' })).toBe(3);
    expect(s.value('dohd_cache_events_total', { event: 'stale' })).toBe(1);
    expect(s.value('dohd_cache_events_total', { event: 'prefetch' })).toBe(2);
    expect(s.value('dohd_cache_entries')).toBe(3);
    expect(s.value('dohd_inflight_queries')).toBe(0);
    expect(s.value('dohd_upstream_wins_total', { upstream: 'good' })).toBe(3);
    expect(s.value('dohd_upstream_wins_total', { upstream: 'bad' })).toBe(0);
    expect(s.value('dohd_upstream_duration_seconds_count', { upstream: 'good' })).toBe(3);
    expect(s.value('dohd_upstream_duration_seconds_bucket', { upstream: 'good', le: '+Inf' })).toBe(3);
    expect(s.value('dohd_upstream_failures_total', { upstream: 'bad', reason: 'http_status' })).toBeGreaterThanOrEqual(1);
    expect(s.value('dohd_policy_drops_total', { reason: 'rate_limit' })).toBe(1);
    expect(s.value('dohd_policy_drops_total', { reason: 'refused' })).toBe(1);
    expect(s.find('dohd_pin_up', { name: 'goproxy.cn' }).map((x) => [x.labels.address, x.value])).toEqual([
      ['192.0.2.10', 1],
      ['192.0.2.11', 0],
    ]);

    // A cache hit counted before a cache resize (reload) is not lost.
    await queryUdp({ port: d.port, name: 'example.com', type: 'A' });
    const r = d.daemon.reload(validateConfig({ ...d.daemon.config, cache: { maxEntries: 50 } }));
    expect(r).toMatchObject({ ok: true, live: ['cache'], restart: [] });
    await queryUdp({ port: d.port, name: 'example.com', type: 'A' }); // miss in the new, empty cache
    await queryUdp({ port: d.port, name: 'example.com', type: 'A' }); // hit
    const s2 = parseProm((await adminGet(port, '/metrics')).body);
    expect(s2.value('dohd_cache_events_total', { event: 'hit' })).toBe(3);
    expect(s2.value('dohd_cache_events_total', { event: 'miss' })).toBe(4);
    expect(s2.value('dohd_cache_entries')).toBe(1);
    expect(s2.value('dohd_config_reloads_total', { result: 'ok' })).toBe(1);
  });

  it('the stages feed the families themselves: rate limiting and ACL refusals are counted as they happen', async () => {
    let d = await pair.start({
      upstreams: pair.upstreams(good),
      admin: { listen: '127.0.0.1:0' },
      rateLimit: { qps: 1, burst: 2, exempt: [] },
    });
    const results = await Promise.allSettled(Array.from({ length: 6 }, (_, i) => queryUdp({ port: d.port, name: `r${i}.example.com`, timeoutMs: 400 })));
    const dropped = results.filter((r) => r.status === 'rejected').length;
    expect(dropped).toBeGreaterThanOrEqual(3);
    const s = parseProm((await adminGet(adminPort(d), '/metrics')).body);
    expect(s.value('dohd_policy_drops_total', { reason: 'rate_limit' })).toBe(d.daemon.policy.counters.rateLimited);
    expect(d.daemon.policy.counters.rateLimited).toBeGreaterThanOrEqual(dropped);
    await d.stop();

    d = await pair.start({ upstreams: pair.upstreams(good), admin: { listen: '127.0.0.1:0' }, acl: { allow: ['10.0.0.0/8'] } });
    const r = await queryUdp({ port: d.port, name: 'example.com' });
    expect(r.response.rcode).toBe('REFUSED');
    const s2 = parseProm((await adminGet(adminPort(d), '/metrics')).body);
    expect(s2.value('dohd_policy_drops_total', { reason: 'acl' })).toBe(1);
    // A second scrape adds nothing new.
    const s3 = parseProm((await adminGet(adminPort(d), '/metrics')).body);
    expect(s3.value('dohd_policy_drops_total', { reason: 'acl' })).toBe(1);
  });

  it('label values stay bounded: unknown query types are "other"', async () => {
    const d = await pair.start({ upstreams: pair.upstreams(good), admin: { listen: '127.0.0.1:0' } });
    await queryUdp({ port: d.port, name: 'example.com', type: 'LOC' });
    const s = parseProm((await adminGet(adminPort(d), '/metrics')).body);
    expect(s.value('dohd_queries_total', { type: 'other' })).toBe(1);
    expect(s.find('dohd_queries_total', { type: 'LOC' })).toEqual([]);
  });
});

describe('query log', () => {
  it('is off by default, and logs one line per query when log.queries is on', async () => {
    let d = await pair.start({ upstreams: pair.upstreams(good) });
    await queryUdp({ port: d.port, name: 'example.com' });
    expect(d.logs.filter((l) => l.msg === 'query')).toEqual([]);
    await d.stop();
    d = await pair.start({ upstreams: pair.upstreams(good), log: { queries: true }, pins: { 'p.example.net': ['192.0.2.9'] } });
    await queryUdp({ port: d.port, name: 'example.com' });
    await queryUdp({ port: d.port, name: 'example.com' });
    await queryTcp({ port: d.port, name: 'p.example.net', type: 'AAAA' });
    const lines = d.logs.filter((l) => l.msg === 'query');
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatchObject({ level: 'info', name: 'dohd', client: '127.0.0.1', qname: 'example.com', qtype: 'A', rcode: 'NOERROR', source: 'upstream', cache: 'miss', upstream: 'good', transport: 'udp' });
    expect(typeof lines[0]!.ms).toBe('number');
    expect(lines[1]).toMatchObject({ source: 'cache', cache: 'hit' });
    expect(lines[1]!.upstream).toBeUndefined();
    expect(lines[2]).toMatchObject({ qname: 'p.example.net', qtype: 'AAAA', source: 'pin', cache: 'none', transport: 'tcp' });
  });

  it('writes every key once (a JSON parser keeps only one of two equal keys)', async () => {
    const d = await pair.start({ upstreams: pair.upstreams(good), log: { queries: true } });
    await queryUdp({ port: d.port, name: 'example.com' });
    const line = d.raw.find((l) => l.includes('"msg":"query"'))!;
    const keys = [...line.matchAll(/"([a-zA-Z]+)":/g)].map((m) => m[1]);
    expect(keys.length).toBeGreaterThan(8);
    expect(keys.filter((k, i) => keys.indexOf(k) !== i)).toEqual([]);
    for (const k of ['qname', 'qtype', 'rcode', 'upstream', 'ms', 'client', 'source']) expect(keys).toContain(k);
  });
});

describe('admin address', () => {
  it('an explicitly configured admin address that is taken stops start-up, naming it', async () => {
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const taken = (srv.address() as { port: number }).port;
    try {
      const { log } = memoryLog();
      const config = validateConfig({ listen: ['127.0.0.1:0'], upstreams: [{ url: good.url, ca: pair.pki.caFile }], admin: { listen: `127.0.0.1:${taken}` } });
      await expect(Daemon.start(config, log)).rejects.toThrow(`cannot listen on 127.0.0.1:${taken}/tcp: the address is already in use`);
    } finally {
      srv.close();
    }
  });

  it('the default admin address is best effort: taken, dohd still serves DNS and says why', async () => {
    const srv = net.createServer();
    // Port 9153 may already be held by another dohd of this suite: taken either way.
    await new Promise<void>((r) => {
      srv.once('error', () => r());
      srv.listen(9153, '127.0.0.1', () => r());
    });
    try {
      const d = await pair.start({ upstreams: pair.upstreams(good), admin: undefined });
      expect(d.daemon.admin).toBeNull();
      const warn = d.logs.find((l) => l.level === 'warn' && /admin listener .* not started/.test(l.msg));
      expect(warn).toMatchObject({ admin: '127.0.0.1:9153' });
      expect((await queryUdp({ port: d.port, name: 'example.com' })).response.rcode).toBe('NOERROR');
    } finally {
      srv.close();
    }
  });

  it('admin: false and bad admin values are configuration errors or off, never ignored', () => {
    expect(validateConfig({ admin: false }).admin).toBe(false);
    expect(validateConfig({ admin: {} }).admin).toEqual({ listen: '127.0.0.1:9153' });
    expect(() => validateConfig({ admin: { listen: 'localhost:9153' } })).toThrow(/admin\.listen: "localhost:9153" is not an IP address/);
    expect(() => validateConfig({ admin: true })).toThrow('admin: found boolean true; expected false (no admin listener), or { listen: "ADDR:PORT" }');
    expect(() => validateConfig({ admin: { port: 1 } })).toThrow(/admin/);
  });
});
