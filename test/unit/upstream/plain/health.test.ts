/** The plain DNS upstream and the health tracker, against the fixture plain DNS server. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import dnsPacket from 'dns-packet';
import { decodeQuery, type Query } from '../../../../src/dns/message.js';
import { buildUpstreamQuery } from '../../../../src/dns/upstream-query.js';
import { UpstreamError } from '../../../../src/upstream/errors.js';
import { HealthTracker } from '../../../../src/upstream/health.js';
import { PlainUpstream } from '../../../../src/upstream/plain/plain.js';
import { startPlainDnsServer, type PlainDnsServer } from '../../../fixtures/plain-dns-server.js';
import { until } from '../../../fixtures/resources.js';

let server: PlainDnsServer;
beforeAll(async () => {
  server = await startPlainDnsServer();
});
afterAll(async () => {
  await server.close();
});

function query(name: string, type = 'A'): { wire: Buffer; q: Query } {
  const d = decodeQuery(dnsPacket.encode({ type: 'query', id: 7, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type: type as 'A', class: 'IN' }] }));
  if (!d.ok) throw new Error('bad query');
  return { wire: buildUpstreamQuery(d.query), q: d.query };
}

const target = () => ({ host: '127.0.0.1', port: server.port, family: 4 as const });

describe('PlainUpstream', () => {
  it('answers over UDP, retries over TCP when truncated, and checks the answer', async () => {
    const u = new PlainUpstream(target());
    const { wire, q } = query('example.com');
    const r = await u.exchange(wire, q, AbortSignal.timeout(2000));
    expect(r.rcode).toBe(0);
    expect(r.wire.readUInt16BE(0)).toBe(0); // canonical form: ID 0
    expect((r.packet.answers![0] as { data: string }).data).toBe('192.0.2.1');
    const big = query('big.example.net', 'TXT');
    const before = { udp: server.udpQueries, tcp: server.tcpQueries };
    const rb = await u.exchange(big.wire, big.q, AbortSignal.timeout(2000));
    expect(rb.packet.answers).toHaveLength(40);
    expect([server.udpQueries - before.udp, server.tcpQueries - before.tcp]).toEqual([1, 1]);
    expect(u.name).toBe(`udp://127.0.0.1:${server.port}`);
    await u.close();
  });

  it('sends no EDNS padding (the path is not encrypted)', async () => {
    const seen: dnsPacket.Packet[] = [];
    const s = await startPlainDnsServer();
    const orig = s.zone.answer.bind(s.zone);
    s.zone.answer = (p) => {
      seen.push(p);
      return orig(p);
    };
    const u = new PlainUpstream({ host: '127.0.0.1', port: s.port, family: 4 }, { tcpOnly: true });
    const { wire, q } = query('example.com');
    await u.exchange(wire, q, AbortSignal.timeout(2000));
    const opt = seen[0]!.additionals!.find((x) => x.type === 'OPT') as { options: { code: number }[] };
    expect(opt.options.some((o) => o.code === 12)).toBe(false);
    expect(s.udpQueries).toBe(0);
    await u.close();
    await s.close();
  });

  it('fails with a stable reason: connect when nothing listens, aborted on cancel', async () => {
    const dead = await startPlainDnsServer();
    const port = dead.port;
    await dead.close();
    const u = new PlainUpstream({ host: '127.0.0.1', port, family: 4 });
    const { wire, q } = query('example.com');
    const err = await u.exchange(wire, q, AbortSignal.timeout(2000)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UpstreamError);
    expect((err as UpstreamError).reason).toBe('connect');
    const tcp = new PlainUpstream({ host: '127.0.0.1', port, family: 4 }, { tcpOnly: true });
    expect(((await tcp.exchange(wire, q, AbortSignal.timeout(2000)).catch((e: unknown) => e)) as UpstreamError).reason).toBe('connect');

    server.mode = 'hang';
    try {
      const live = new PlainUpstream(target());
      const ctl = new AbortController();
      setTimeout(() => ctl.abort(), 100);
      const e2 = (await live.exchange(wire, q, ctl.signal).catch((e: unknown) => e)) as UpstreamError;
      expect(e2.reason).toBe('aborted');
      expect(live.stats.pending).toBe(0);
    } finally {
      server.mode = 'ok';
    }
  });
});

describe('HealthTracker', () => {
  it('takes an upstream out after N consecutive failures, probes it with growing backoff, brings it back', async () => {
    const s = await startPlainDnsServer({ mode: 'hang' });
    const u = new PlainUpstream({ host: '127.0.0.1', port: s.port, family: 4 });
    const other = new PlainUpstream(target());
    const h = new HealthTracker({ failures: 2, backoffMs: 50, maxBackoffMs: 150, probeTimeoutMs: 100 });
    try {
      h.success(u, 5);
      h.failure(u, new UpstreamError('timeout', 'x'), 100);
      expect(h.isUp(u)).toBe(true);
      h.failure(u, new UpstreamError('servfail', 'an answer, not a failure'), 1);
      h.failure(u, new UpstreamError('aborted', 'we cancelled'), 1);
      expect(h.isUp(u)).toBe(true);
      h.failure(u, new UpstreamError('connect', 'refused'), 1);
      expect(h.isUp(u)).toBe(false);
      expect(h.available([u, other])).toEqual([other]);
      expect(h.available([u])).toEqual([u]); // every one out: try them all
      expect(h.allDown([u])).toBe(true);
      // Probes fail (the server hangs): backoff doubles up to the max.
      await until(() => (h.snapshot().find((x) => x.name === u.name)?.probes ?? 0) >= 3, 5000, 'three probes').catch(() => {});
      const st = h.snapshot().find((x) => x.name === u.name)!;
      expect(st.probes).toBeGreaterThanOrEqual(3);
      expect(st.backoffMs).toBe(150);
      expect(st.errorRate).toBeCloseTo(2 / 3);
      s.mode = 'ok';
      await until(() => h.isUp(u), 3000, 'back up').catch(() => {});
      expect(h.isUp(u)).toBe(true);
      expect(h.snapshot().find((x) => x.name === u.name)!.backoffMs).toBe(50);
    } finally {
      h.close();
      await u.close();
      await other.close();
      await s.close();
    }
  });

  it('ranks by the mean of the recent latencies (unknown last; a late answer counts while it is in the window) and gives a p90 once there are enough samples', () => {
    const a = new PlainUpstream(target(), { name: 'a' });
    const b = new PlainUpstream(target(), { name: 'b' });
    const h = new HealthTracker({ failures: 3, backoffMs: 1000, maxBackoffMs: 1000, probeTimeoutMs: 100 });
    expect(h.score(a)).toBe(Infinity);
    for (const ms of [10, 12, 11, 9, 100]) h.success(a, ms);
    expect(h.p90(a)).toBe(100);
    expect(h.p90(b)).toBeUndefined();
    h.lost(b, 50);
    expect(h.score(b)).toBe(50);
    expect(h.score(a)).toBeCloseTo(142 / 5);
    // 27 more ordinary answers: the 100 ms one is still in a's window (32) and still counts.
    for (let i = 0; i < 27; i++) h.success(a, 10);
    expect(h.score(a)).toBeCloseTo((142 + 270) / 32);
    expect(h.score(a)).toBeGreaterThan(12);
    // Five more push the first five out, the late one with them.
    for (let i = 0; i < 5; i++) h.success(a, 10);
    expect(h.score(a)).toBe(10);
    h.close();
  });
});

describe('PlainUpstream against misbehaving servers', () => {
  it('ignores a datagram with another ID (spoofing) and takes the one with ours', async () => {
    const dgram = await import('node:dgram');
    const sock = dgram.createSocket('udp4');
    sock.on('message', (msg, rinfo) => {
      const q = dnsPacket.decode(msg);
      const reply = (id: number, data: string) =>
        dnsPacket.encode({ type: 'response', id, flags: 0x8180, questions: q.questions, answers: [{ name: 'example.com', type: 'A', ttl: 60, data }] });
      sock.send(reply((q.id! + 1) & 0xffff, '6.6.6.6'), rinfo.port, rinfo.address);
      setTimeout(() => sock.send(reply(q.id!, '192.0.2.1'), rinfo.port, rinfo.address), 20);
    });
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    const u = new PlainUpstream({ host: '127.0.0.1', port: sock.address().port, family: 4 });
    try {
      const { wire, q } = query('example.com');
      const r = await u.exchange(wire, q, AbortSignal.timeout(2000));
      expect((r.packet.answers![0] as { data: string }).data).toBe('192.0.2.1');
    } finally {
      await u.close();
      sock.close();
    }
  });

  it('a TCP connection closed before the answer is a reset', async () => {
    const net = await import('node:net');
    const srv = net.createServer((s) => s.destroy());
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const u = new PlainUpstream({ host: '127.0.0.1', port: (srv.address() as { port: number }).port, family: 4 }, { tcpOnly: true });
    try {
      const { wire, q } = query('example.com');
      const e = (await u.exchange(wire, q, AbortSignal.timeout(2000)).catch((x: unknown) => x)) as UpstreamError;
      expect(e).toBeInstanceOf(UpstreamError);
      expect(e.reason).toBe('reset');
    } finally {
      await u.close();
      await new Promise<void>((r) => srv.close(() => r()));
    }
  });
});
