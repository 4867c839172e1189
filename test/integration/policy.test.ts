/**
 * Abuse handling over real sockets: the access control list (REFUSED outside it, no error
 * replies either) and the per-prefix rate limit (UDP dropped and counted, TCP REFUSED).
 */
import { describe, expect, it } from 'vitest';
import dnsPacket from 'dns-packet';
import { queryTcp, queryUdp, sendRawUdp } from '../fixtures/dns-client.js';
import { useDohUpstream } from '../fixtures/doh-pair.js';
import type { ConfigInput } from '../../src/config/schema.js';

const up = useDohUpstream();

/** A daemon on the one upstream, with `extra` on top; stopped after the test. */
const start = (extra: ConfigInput) => up.start({ upstreams: [up.upstream], ...extra });

/** A header that reads, a question that does not: FORMERR for an allowed client. */
const JUNK = Buffer.from('abcd0100000100000000000003', 'hex');

describe('access control', () => {
  it('answers loopback by default', async () => {
    const d = await start({});
    expect((await queryUdp({ port: d.port, name: 'example.com' })).response.rcode).toBe('NOERROR');
    expect(d.daemon.policy.counters.refused).toBe(0);
  });

  it('a source outside the allow list gets REFUSED over UDP and TCP, and no upstream is asked', async () => {
    const d = await start({ acl: { allow: ['10.0.0.0/8', 'fc00::/7'] } });
    const u = await queryUdp({ port: d.port, name: 'example.com', id: 77 });
    expect(u.response.rcode).toBe('REFUSED');
    expect(u.response.id).toBe(77);
    expect(u.response.answers).toEqual([]);
    expect((await queryTcp({ port: d.port, name: 'example.com' })).response.rcode).toBe('REFUSED');
    expect(up.doh.requests).toBe(0);
    expect(d.daemon.policy.counters.refused).toBe(2);
    // Not even a FORMERR goes back to it.
    expect(await sendRawUdp('127.0.0.1', d.port, JUNK, 300)).toBeNull();
    expect(d.daemon.policy.counters.dropped.acl).toBe(1);
  });

  it('IPv6 sources are matched too', async () => {
    let d = await start({ listen: ['[::1]:0'], acl: { allow: ['127.0.0.0/8'] } });
    expect((await queryUdp({ host: '::1', port: d.port, name: 'example.com' })).response.rcode).toBe('REFUSED');
    await d.stop();
    d = await start({ listen: ['[::1]:0'], acl: { allow: ['::1'] } });
    expect((await queryUdp({ host: '::1', port: d.port, name: 'example.com' })).response.rcode).toBe('NOERROR');
  });
});

describe('rate limit', () => {
  // qps 0.01: the bucket does not refill during the test; loopback is not exempt here.
  const limited = { rateLimit: { qps: 0.01, burst: 5, exempt: [] } };

  it('over the limit, UDP queries are dropped and counted', async () => {
    const d = await start(limited);
    // Sent at once (a dropped query costs its client the 250 ms timeout; one after another they would add up).
    const results = await Promise.all(
      Array.from({ length: 12 }, () => queryUdp({ port: d.port, name: 'example.com', timeoutMs: 250 }).then((r) => r.response.rcode, () => 'dropped')),
    );
    expect(results.filter((r) => r === 'NOERROR')).toHaveLength(5);
    expect(results.filter((r) => r === 'dropped')).toHaveLength(7);
    expect(d.daemon.policy.counters.rateLimited).toBe(7);
    expect(d.daemon.policy.counters.dropped.ratelimit).toBe(7);
    // Error replies count against the same bucket: no FORMERR either.
    expect(await sendRawUdp('127.0.0.1', d.port, JUNK, 250)).toBeNull();
    expect(d.daemon.policy.counters.dropped.ratelimit).toBe(8);
  });

  it('over the limit, TCP queries get REFUSED (the source is proven; silence would hold the connection)', async () => {
    const d = await start(limited);
    const rcodes = [];
    for (let i = 0; i < 7; i++) rcodes.push((await queryTcp({ port: d.port, name: 'example.com' })).response.rcode);
    expect(rcodes).toEqual(['NOERROR', 'NOERROR', 'NOERROR', 'NOERROR', 'NOERROR', 'REFUSED', 'REFUSED']);
    expect(d.daemon.policy.counters.rateLimited).toBe(2);
    expect(d.daemon.policy.counters.dropped.ratelimit).toBe(0);
  });

  it('loopback is exempt by default, and qps 0 turns the limit off', async () => {
    let d = await start({ rateLimit: { qps: 0.01, burst: 1 } });
    for (let i = 0; i < 10; i++) expect((await queryUdp({ port: d.port, name: 'example.com' })).response.rcode).toBe('NOERROR');
    await d.stop();
    d = await start({ rateLimit: { qps: 0, exempt: [] } });
    for (let i = 0; i < 10; i++) expect((await queryUdp({ port: d.port, name: 'example.com' })).response.rcode).toBe('NOERROR');
    expect(d.daemon.policy.counters.rateLimited).toBe(0);
    expect(d.daemon.policy.limiter.size).toBe(0);
  });

  it('a response packet flood is dropped without spending the bucket', async () => {
    const d = await start(limited);
    const resp = dnsPacket.encode({ type: 'response', id: 1, flags: 0x8000, questions: [{ name: 'a.example.net', type: 'A' }] });
    for (let i = 0; i < 20; i++) await sendRawUdp('127.0.0.1', d.port, resp, 20);
    expect(d.daemon.policy.counters.dropped.response).toBe(20);
    expect((await queryUdp({ port: d.port, name: 'example.com' })).response.rcode).toBe('NOERROR');
  });
});
