/**
 * Extended DNS Errors (RFC 8914): stale answers (3, 19), dohd's own SERVFAILs (22 all
 * timed out, 23 naming the upstream that failed), the ACL's REFUSED (18), upstream EDE
 * passed through; only for clients that sent OPT; never past the client's size. Read with
 * dns-packet (dig and `dohd query` read them in test/e2e/query-output.test.ts).
 */
import { describe, expect, it } from 'vitest';
import dnsPacket from 'dns-packet';
import { edes, queryTcp, queryUdp } from '../fixtures/dns-client.js';
import { manualClock } from '../fixtures/clock.js';
import type { RunningDaemon } from '../fixtures/daemon.js';
import { useDohUpstream } from '../fixtures/doh-pair.js';
import { Zone, defaultZone } from '../fixtures/zone.js';
import { appendEde } from '../../src/dns/ede.js';
import { finalizeAnswer } from '../../src/dns/answer.js';
import { decodeQuery, rcodeReply } from '../../src/dns/message.js';

const up = useDohUpstream({ name: 'main' }, (doh) => {
  doh.mode = 'ok';
  doh.zone = defaultZone();
});
let d: RunningDaemon | undefined;

describe('Extended DNS Errors', () => {
  it("dohd's SERVFAIL when every upstream times out: 22 \"all upstreams timed out\"; none without OPT", async () => {
    up.doh.mode = 'hang';
    d = await up.start({ upstreams: [{ url: up.doh.url, ca: up.pki.caFile, name: 'main' }], timeoutMs: 400 });
    const r = await queryUdp({ port: d.port, name: 'example.com' });
    expect(r.response.rcode).toBe('SERVFAIL');
    expect(edes(r.response)).toEqual([[22, 'all upstreams timed out']]);
    const plain = await queryUdp({ port: d.port, name: 'example.org', edns: false });
    expect(plain.response.rcode).toBe('SERVFAIL');
    expect(plain.response.additionals).toEqual([]);
  });

  it("dohd's SERVFAIL when the upstream's TLS fails: 23 naming the upstream", async () => {
    // No CA given: the fixture's certificate is not trusted.
    d = await up.start({ upstreams: [{ url: up.doh.url, name: 'main' }], timeoutMs: 2000 });
    const r = await queryTcp({ port: d.port, name: 'example.com' });
    expect(r.response.rcode).toBe('SERVFAIL');
    expect(edes(r.response)).toEqual([[23, 'main: TLS handshake failed']]);
  });

  it('the same through the sequential strategies (failover, hedged): 23 naming the upstream that failed last', async () => {
    for (const strategy of ['failover', 'hedged'] as const) {
      d = await up.start({ upstreams: [{ url: up.doh.url, name: 'first' }, { url: up.doh.url, name: 'second' }], strategy, timeoutMs: 2000 });
      const r = await queryUdp({ port: d.port, name: `${strategy}.example.com` });
      expect(r.response.rcode).toBe('SERVFAIL');
      const [[code, text]] = edes(r.response) as [[number, string]];
      expect(code).toBe(23);
      // Failover tries the second after the first; hedged may have both in flight (the last to fail is named).
      expect(text).toMatch(strategy === 'failover' ? /^second: TLS handshake failed$/ : /^(first|second): TLS handshake failed$/);
      await d.stop();
      d = undefined;
    }
  });

  it('a stale answer carries 3, a stale NXDOMAIN 19', async () => {
    up.doh.zone = new Zone([...defaultZone().lookup('short.example.net')], { soaMinimum: 1 });
    const clock = manualClock();
    d = await up.start(
      {
        upstreams: [{ url: up.doh.url, ca: up.pki.caFile, name: 'main' }],
        timeoutMs: 2000,
        cache: { staleClientTimeoutMs: 300, staleRecheckMs: 300 },
      },
      { clock: clock.now },
    );
    expect(edes((await queryUdp({ port: d.port, name: 'short.example.net' })).response)).toEqual([]);
    expect((await queryUdp({ port: d.port, name: 'gone.example.net' })).response.rcode).toBe('NXDOMAIN');
    clock.advance(2200); // both expired (TTL 2, SOA minimum 1)
    up.doh.mode = 'hang';
    const stale = await queryUdp({ port: d.port, name: 'short.example.net', timeoutMs: 3000 });
    expect(stale.response.answers.map((a) => a.data)).toEqual(['192.0.2.2']);
    expect(edes(stale.response)).toEqual([[3, '']]);
    const nx = await queryUdp({ port: d.port, name: 'gone.example.net', timeoutMs: 3000 });
    expect(nx.response.rcode).toBe('NXDOMAIN');
    expect(edes(nx.response)).toEqual([[19, '']]);
    expect(d.daemon.cacheStage.staleServed).toBe(2);
  });

  it("the ACL's REFUSED carries 18 (Prohibited)", async () => {
    d = await up.start({ upstreams: [{ url: up.doh.url, ca: up.pki.caFile }], acl: { allow: ['10.0.0.0/8'] } });
    const r = await queryTcp({ port: d.port, name: 'example.com' });
    expect(r.response.rcode).toBe('REFUSED');
    expect(edes(r.response)).toEqual([[18, 'source address not allowed (acl)']]);
    expect(up.doh.requests).toBe(0);
  });

  it("the upstream's own EDE options are passed through", async () => {
    const zone = defaultZone();
    const answer = zone.answer.bind(zone);
    zone.answer = (q) => {
      const a = answer(q);
      const opt = a.additionals?.find((r) => r.type === 'OPT') as { options: { code: number; data: Buffer }[] } | undefined;
      opt?.options.push({ code: 15, data: Buffer.concat([Buffer.from([0, 17]), Buffer.from('filtered by policy')]) });
      return a;
    };
    up.doh.zone = zone;
    d = await up.start({ upstreams: [{ url: up.doh.url, ca: up.pki.caFile }] });
    const r = await queryUdp({ port: d.port, name: 'example.com' });
    expect(r.response.answers.map((a) => a.data)).toEqual(['192.0.2.1']);
    expect(edes(r.response)).toEqual([[17, 'filtered by policy']]);
  });

  it('never makes an answer larger than the client allows: the text is cut first, then the option left out', () => {
    const q = decodeQuery(
      dnsPacket.encode({ type: 'query', id: 1, questions: [{ name: 'example.com', type: 'A', class: 'IN' }], additionals: [{ name: '.', type: 'OPT', udpPayloadSize: 512 } as dnsPacket.Answer] }),
    );
    if (!q.ok) throw new Error(q.reason);
    const base = finalizeAnswer(q.query, rcodeReply(q.query, 2), 'udp');
    const long = 'x'.repeat(600);
    const cut = appendEde(base, [{ code: 23, text: long }], 512);
    expect(cut.length).toBe(512);
    const opt = (dnsPacket.decode(cut).additionals![0] as unknown as { options: { code: number; data: Buffer }[] }).options[0]!;
    expect(opt.data.readUInt16BE(0)).toBe(23);
    expect(opt.data.length - 2).toBe(512 - base.length - 6);
    expect(appendEde(base, [{ code: 23, text: long }], base.length + 5)).toBe(base); // not even the code fits
    expect(appendEde(base, [{ code: 3 }], base.length + 6).length).toBe(base.length + 6);
  });
});
