/**
 * dohd against a simulated censor (test/fixtures/censor.ts), never a real address:
 * (a) a black-holed bootstrap IP (veth + permanent neighbour entry: packets vanish),
 * (b) a TLS front that resets handshakes naming cloudflare-dns.com or dns.google,
 * (c) a DoH server whose certificate comes from a CA dohd does not trust,
 * and an address with no route at all (ENETUNREACH). With each in front of a provider's
 * first path, answers keep coming through the next path, the log and /metrics say why
 * ("blocked", not "failed"), and once the ladder has learned, queries go straight to the
 * working path; the better path is used again once it works.
 */
import { spawnSync } from 'node:child_process';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { blackHole, canMakeLinks, clientHelloSni, startSniFilter, type BlackHole, type SniFilter } from '../fixtures/censor.js';
import { startDaemon, type RunningDaemon } from '../fixtures/daemon.js';
import { queryUdp } from '../fixtures/dns-client.js';
import { startDohServer, type DohServer } from '../fixtures/doh-server.js';
import { startDotServer, type DotServer } from '../fixtures/dot-server.js';
import { makePki, type Pki } from '../fixtures/pki.js';
import { DohUpstream } from '../../src/upstream/doh/doh.js';
import { LadderUpstream } from '../../src/upstream/ladder.js';
import { buildStatus } from '../../src/server/status.js';
import { buildClientQuery } from '../../src/dns/client.js';
import { decodeQuery } from '../../src/dns/message.js';
import { buildUpstreamQuery } from '../../src/dns/upstream-query.js';
import { performance } from 'node:perf_hooks';

const HOLE = '192.0.2.1';
const NO_ROUTE = '198.51.100.7';
const links = canMakeLinks();
if (!links) console.warn('censor.test: not root in a private network namespace; the black-hole cases are skipped (CI runs them under unshare -n)');
const noRoute = spawnSync('ip', ['route', 'get', NO_ROUTE]).status !== 0;

let pki: Pki;
let roguePki: Pki;
let doh: DohServer;
let rogue: DohServer;
let dot: DotServer;
let rogueDot: DotServer;
let front: SniFilter;
let hole: BlackHole | undefined;
let d: RunningDaemon | undefined;

beforeAll(async () => {
  pki = await makePki({ dnsNames: ['cloudflare-dns.com', 'dns.google', 'doh.test'], ips: ['127.0.0.1', '127.0.0.2'] });
  roguePki = await makePki({ dnsNames: ['cloudflare-dns.com'], ips: [] });
  doh = await startDohServer({ pki, name: 'provider' });
  rogue = await startDohServer({ pki: roguePki, name: 'rogue' });
  dot = await startDotServer({ pki });
  rogueDot = await startDotServer({ pki: roguePki });
  // (b): the provider's address as the censor shows it: the same server behind an SNI filter.
  front = await startSniFilter({ host: '127.0.0.2', port: doh.port, target: { host: '127.0.0.1', port: doh.port } });
  if (links) hole = blackHole([HOLE]);
});
afterAll(async () => {
  hole?.close();
  await Promise.all([doh.close(), rogue.close(), dot.close(), rogueDot.close(), front.close()]);
  await Promise.all([pki.cleanup(), roguePki.cleanup()]);
});
afterEach(async () => {
  await d?.stop();
  d = undefined;
  doh.reset();
  dot.reset();
});

const dotPath = () => ({ url: `tls://dns.google:${dot.port}`, bootstrap: ['127.0.0.1'] });
const ladderOf = (d: RunningDaemon) => d.daemon.upstreams[0] as LadderUpstream;
const ask = (d: RunningDaemon, name: string) => queryUdp({ port: d.port, name, timeoutMs: 5000 });
const data = (r: Awaited<ReturnType<typeof ask>>) => r.response.answers?.map((a) => a.data);

async function metric(d: RunningDaemon, upstream: string, reason: string): Promise<number> {
  const text = await d.daemon.metrics.registry.metrics();
  const m = text.match(new RegExp(`dohd_upstream_failures_total\\{upstream="${upstream.replace(/[[\]]/g, '\\$&')}",reason="${reason}"\\} (\\d+)`));
  return m ? Number(m[1]) : 0;
}

describe('happy eyeballs across a provider’s bootstrap IPs', () => {
  it.skipIf(!links)('(a) first bootstrap IP black-holed: the first query after start is answered within the connection race, not the deadline', async () => {
    d = await startDaemon({ upstreams: [{ url: doh.urlFor('doh.test'), bootstrap: [HOLE, '127.0.0.1'], ca: pki.caFile, name: 'p' }], timeoutMs: 2500, loopProbe: false });
    const r = await ask(d, 'example.com');
    expect(r.response.rcode).toBe('NOERROR');
    expect(data(r)).toEqual(['192.0.2.1']);
    // ~250 ms stagger + one loopback handshake; the deadline is 2500 and the connect timeout 5000.
    expect(r.ms).toBeLessThan(2000);
    const u = d.daemon.upstreams[0] as DohUpstream;
    expect(u.lastAttempts.map((a) => [a.address, a.outcome])).toEqual([
      [HOLE, 'lost'],
      ['127.0.0.1', 'ok'],
    ]);
    // The address that worked goes first next time.
    expect(u.currentAddress).toBe('127.0.0.1');
    expect(d.logs.filter((l) => l.reason === 'ip_unreachable')).toMatchObject([{ upstream: 'p', address: HOLE, via: '127.0.0.1' }]);
    expect(await metric(d, 'p', 'ip_unreachable')).toBe(1);
  });

  it.skipIf(!noRoute)('first bootstrap IP unreachable at once (ENETUNREACH): the second is tried in the same query', async () => {
    d = await startDaemon({ upstreams: [{ url: doh.urlFor('doh.test'), bootstrap: [NO_ROUTE, '127.0.0.1'], ca: pki.caFile, name: 'p' }], loopProbe: false });
    const r = await ask(d, 'example.com');
    expect(r.response.rcode).toBe('NOERROR');
    const u = d.daemon.upstreams[0] as DohUpstream;
    expect(u.lastAttempts.map((a) => [a.address, a.outcome])).toEqual([
      [NO_ROUTE, 'ENETUNREACH'],
      ['127.0.0.1', 'ok'],
    ]);
  });
});

describe('the ladder within a provider, against the censor', () => {
  it.skipIf(!links)('(a) DoH black-holed: answered through DoT; then straight to DoT; reported "unreachable"', async () => {
    d = await startDaemon({
      upstreams: [{ url: doh.urlFor('dns.google'), bootstrap: [HOLE], ca: pki.caFile, name: 'google', alternates: [dotPath()] }],
      ladder: { stepMs: 300, reprobeMs: 3_600_000 },
      timeoutMs: 2500,
      loopProbe: false,
    });
    const r1 = await ask(d, 'example.com');
    expect(data(r1)).toEqual(['192.0.2.1']);
    expect(r1.ms).toBeLessThan(2000);
    const ladder = ladderOf(d);
    expect(ladder.working).toBe(1);
    const doh0 = ladder.rungs[0] as DohUpstream;
    const before = doh0.stats.requests;
    const r2 = await ask(d, 'www.example.com');
    expect(data(r2)).toEqual(['192.0.2.3']);
    // Learned: the blocked path is not asked again (no step wait on top of the DoT round trip).
    expect(doh0.stats.requests).toBe(before);
    expect(dot.queries.map((q) => q.questions?.[0]?.name)).toEqual(['example.com', 'www.example.com']);
    const changed = d.logs.find((l) => l.msg === 'upstream path changed: an earlier path looks blocked');
    expect(changed).toMatchObject({ upstream: 'google', from: 'google [doh]', to: 'google [dot]' });
  });

  it('(b) SNI filter on the provider’s address: the IP-literal URL (no SNI) to the same address answers; "blocked_sni" in the log and /metrics', async () => {
    const resetsBefore = front.resets;
    d = await startDaemon({
      upstreams: [
        {
          url: `https://cloudflare-dns.com:${doh.port}/dns-query`,
          bootstrap: ['127.0.0.2'],
          ca: pki.caFile,
          name: 'cf',
          alternates: [{ url: `https://127.0.0.2:${doh.port}/dns-query` }, dotPath()],
        },
      ],
      ladder: { stepMs: 700, reprobeMs: 3_600_000 },
      loopProbe: false,
    });
    for (let i = 0; i < 3; i++) {
      const r = await ask(d, `n${i}.example.com`);
      expect(r.response.rcode).toBe('NXDOMAIN');
    }
    expect(front.resets).toBeGreaterThan(resetsBefore);
    expect(front.seen).toContain('cloudflare-dns.com');
    expect(front.seen).toContain('');
    const ladder = ladderOf(d);
    expect(ladder.working).toBe(1);
    expect(ladder.lastFailure[0]?.reason).toBe('blocked_sni');
    expect(dot.queries).toEqual([]);
    const changed = d.logs.find((l) => l.msg === 'upstream path changed: an earlier path looks blocked');
    expect(changed).toMatchObject({ upstream: 'cf', from: 'cf [doh]', to: 'cf [doh-ip]', reason: 'blocked_sni' });
    expect(String(changed?.verdict)).toMatch(/^blocked by SNI/);
    expect(await metric(d, 'cf [doh]', 'blocked_sni')).toBeGreaterThanOrEqual(1);
    // dohd status shows the path queries go to now.
    const st = await buildStatus(d.daemon, d.daemon.stats, Date.now());
    expect(st.upstreams.find((u) => u.name === 'cf')).toMatchObject({ kind: 'doh', state: 'in', path: `https://127.0.0.2:${doh.port}/dns-query via 127.0.0.2 (path 2 of 3: cf [doh-ip])` });
  });

  it('(c) a certificate from an unknown CA: "intercepted", naming the issuer; answered through DoT', async () => {
    d = await startDaemon({
      upstreams: [{ url: `https://cloudflare-dns.com:${rogue.port}/dns-query`, bootstrap: ['127.0.0.1'], ca: pki.caFile, name: 'cf', alternates: [dotPath()] }],
      loopProbe: false,
    });
    for (let i = 0; i < 3; i++) expect(data(await ask(d, 'example.com'))).toEqual(['192.0.2.1']);
    const ladder = ladderOf(d);
    expect(ladder.working).toBe(1);
    expect(ladder.lastFailure[0]?.reason).toBe('intercepted');
    expect((await buildStatus(d.daemon, d.daemon.stats, Date.now())).upstreams.find((u) => u.name === 'cf')).toMatchObject({ kind: 'dot', path: `tls://dns.google:${dot.port} via 127.0.0.1 (path 2 of 2: cf [dot])` });
    expect(ladder.lastFailure[0]?.message).toMatch(/issued by "dohd test CA"/);
    expect(rogue.requests).toBe(0);
    expect(await metric(d, 'cf [doh]', 'intercepted')).toBeGreaterThanOrEqual(1);

    // Learned: a miss costs the working path's round trip plus at most 50 ms (medians of 15, distinct names).
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const time = async (u: { exchange: LadderUpstream['exchange'] }, name: string) => {
      const dq = decodeQuery(buildClientQuery(name, 'A').wire);
      if (!dq.ok) throw new Error('query');
      const t0 = performance.now();
      await u.exchange(buildUpstreamQuery(dq.query), dq.query, AbortSignal.timeout(5000));
      return performance.now() - t0;
    };
    const viaLadder: number[] = [];
    const direct: number[] = [];
    for (let i = 0; i < 15; i++) {
      viaLadder.push(await time(ladder, `l${i}.example.com`));
      direct.push(await time(ladder.rungs[1]!, `r${i}.example.com`));
    }
    expect(median(viaLadder) - median(direct)).toBeLessThanOrEqual(50);
    expect(ladder.working).toBe(1);
  });

  it('the better path is probed again and used again once it works', async () => {
    front.blocked.add('doh.test');
    try {
      d = await startDaemon({
        upstreams: [{ url: `https://doh.test:${doh.port}/dns-query`, bootstrap: ['127.0.0.2'], ca: pki.caFile, name: 'p', alternates: [dotPath()] }],
        ladder: { stepMs: 700, reprobeMs: 150, maxReprobeMs: 300 },
        loopProbe: false,
      });
      expect(data(await ask(d, 'example.com'))).toEqual(['192.0.2.1']);
      const ladder = ladderOf(d);
      expect(ladder.working).toBe(1);
      front.blocked.delete('doh.test'); // the filter lifts
      const end = Date.now() + 5000;
      while (ladder.working !== 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      expect(ladder.working).toBe(0);
      expect(d.logs.some((l) => l.msg === 'upstream path restored')).toBe(true);
      const n = doh.requests;
      expect(data(await ask(d, 'www.example.com'))).toEqual(['192.0.2.3']);
      expect(doh.requests).toBe(n + 1);
    } finally {
      front.blocked.delete('doh.test');
    }
  });

  it('every path failing is one failure of the provider, with the last path’s reason', async () => {
    d = await startDaemon({
      upstreams: [{ url: `https://cloudflare-dns.com:${rogue.port}/dns-query`, bootstrap: ['127.0.0.1'], ca: pki.caFile, name: 'cf', alternates: [{ url: `tls://cloudflare-dns.com:${rogueDot.port}`, bootstrap: ['127.0.0.1'] }] }],
      loopProbe: false,
    });
    const r = await ask(d, 'example.com');
    expect(r.response.rcode).toBe('SERVFAIL');
    expect(d.daemon.upstreams).toHaveLength(1);
    expect(await metric(d, 'cf', 'intercepted')).toBe(1);
  });
});

describe('the default never switches country on its own, but says that `cn` exists', () => {
  // The default preset's URLs, reached at a loopback address where nothing listens: nothing leaves the namespace.
  const defaults = (port: number) => [
    { url: 'https://cloudflare-dns.com/dns-query', bootstrap: ['127.0.0.1'], alternates: [{ url: `https://127.0.0.1:${port}/dns-query` }] },
    { url: 'https://dns.google/dns-query', bootstrap: ['127.0.0.1'] },
  ];

  it('every default upstream out: one log line naming the cn preset and why; no query goes anywhere else', async () => {
    d = await startDaemon({ upstreams: defaults(1), health: { failures: 1, backoffMs: 60_000 }, loopProbe: false });
    for (let i = 0; i < 3; i++) expect((await ask(d, `n${i}.example.com`)).response.rcode).toBe('SERVFAIL');
    const hints = d.logs.filter((l) => String(l.msg).includes("the 'cn' preset may help"));
    expect(hints).toHaveLength(1);
    expect(String(hints[0]!.hint)).toMatch(/upstreams: cn.*--preset cn.*never switches to another country's resolvers by itself/);
    expect(d.daemon.upstreams.map((u) => u.name)).toEqual(['cloudflare-dns.com', 'dns.google']);
  });

  it('upstreams of the user’s own choosing get no such hint', async () => {
    d = await startDaemon({ upstreams: [{ url: 'https://doh.test/dns-query', bootstrap: ['127.0.0.1'] }], health: { failures: 1, backoffMs: 60_000 }, loopProbe: false });
    for (let i = 0; i < 2; i++) expect((await ask(d, `n${i}.example.com`)).response.rcode).toBe('SERVFAIL');
    expect(d.logs.filter((l) => String(l.msg).includes("'cn' preset"))).toEqual([]);
  });
});

describe('the SNI parser of the censor fixture', () => {
  it('reads the server name of a real ClientHello, and none from other bytes', async () => {
    const tls = await import('node:tls');
    const net = await import('node:net');
    const got = await new Promise<string | null>((resolve) => {
      const srv = net.createServer((s) => {
        s.once('data', (b: Buffer) => {
          resolve(clientHelloSni(b));
          s.destroy();
          srv.close();
        });
      });
      srv.listen(0, '127.0.0.1', () => {
        const c = tls.connect({ host: '127.0.0.1', port: (srv.address() as { port: number }).port, servername: 'dns.google' });
        c.on('error', () => {});
      });
    });
    expect(got).toBe('dns.google');
    expect(clientHelloSni(Buffer.from('GET / HTTP/1.1\r\n'))).toBe('');
    expect(clientHelloSni(Buffer.from([0x16, 3, 1]))).toBeNull();
  });
});
