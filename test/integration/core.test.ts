import { beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import { queryTcp, queryUdp, sendRawUdp, TcpDnsClient } from '../fixtures/dns-client.js';
import { manualClock } from '../fixtures/clock.js';
import { useDohPair } from '../fixtures/doh-pair.js';
import type { DohServer } from '../fixtures/doh-server.js';
import { until } from '../fixtures/resources.js';

const pair = useDohPair(['fast', 'slow']);
let fast: DohServer;
let slow: DohServer;

beforeAll(() => {
  [fast, slow] = pair.servers;
});

const upstreams = () => pair.upstreams(fast, slow);

describe('resolve path over DoH', () => {
  it('answers A over UDP with the client ID and question case, through the faster upstream', async () => {
    slow.mode = 'slow';
    slow.delayMs = 400;
    const d = await pair.start({ upstreams: upstreams() });
    const r = await queryUdp({ port: d.port, name: 'ExAmPle.CoM', type: 'A', id: 4242 });
    expect(r.response.id).toBe(4242);
    expect(r.response.rcode).toBe('NOERROR');
    expect(r.response.questions[0]!.name).toBe('ExAmPle.CoM');
    expect(r.response.answers.map((a) => a.data)).toEqual(['192.0.2.1']);
    expect(r.ms).toBeLessThan(400);
    expect(fast.requests).toBe(1);
    // RFC 8484: ID 0, POST application/dns-message, padded to 128 bytes.
    expect(fast.lastRequest!.headers['content-type']).toBe('application/dns-message');
    expect(fast.lastRequest!.headers[':method']).toBe('POST');
    expect(fast.lastRequest!.body.readUInt16BE(0)).toBe(0);
    expect(fast.lastRequest!.body.length % 128).toBe(0);
  });

  it('the race survives a dead upstream', async () => {
    slow.mode = 'hang';
    const d = await pair.start({ upstreams: upstreams(), timeoutMs: 1500 });
    const r = await queryUdp({ port: d.port, name: 'example.com', type: 'AAAA' });
    expect(r.response.answers.map((a) => a.data)).toEqual(['2001:db8::1']);
  });

  it('a fast SERVFAIL or garbage does not beat a slower good answer', async () => {
    for (const mode of ['servfail', 'refused', 'garbage', 'http500', 'wrongQuestion'] as const) {
      fast.mode = mode;
      slow.mode = 'slow';
      slow.delayMs = 150;
      const d = await pair.start({ upstreams: upstreams(), timeoutMs: 2000 });
      const r = await queryUdp({ port: d.port, name: 'www.example.com' });
      expect(r.response.rcode, mode).toBe('NOERROR');
      expect(r.response.answers.map((a) => a.data), mode).toEqual(['192.0.2.3']);
      await d.stop();
    }
  });

  it('answers SERVFAIL within the deadline when every upstream is down', async () => {
    fast.mode = 'hang';
    slow.mode = 'http500';
    const d = await pair.start({ upstreams: upstreams(), timeoutMs: 600 });
    const r = await queryUdp({ port: d.port, name: 'example.com', timeoutMs: 3000 });
    expect(r.response.rcode).toBe('SERVFAIL');
    expect(r.ms).toBeGreaterThanOrEqual(550);
    expect(r.ms).toBeLessThan(1500);
    expect(d.logs.some((l) => l.msg === 'upstream failed' && l.reason === 'http_status')).toBe(true);
  });

  it('all upstreams answering SERVFAIL gives the client SERVFAIL at once, not after the deadline', async () => {
    fast.mode = 'servfail';
    slow.mode = 'servfail';
    const d = await pair.start({ upstreams: upstreams(), timeoutMs: 2000 });
    const r = await queryUdp({ port: d.port, name: 'example.com' });
    expect(r.response.rcode).toBe('SERVFAIL');
    expect(r.ms).toBeLessThan(1000);
  });

  it('serves a repeated query from the cache, TTL counting down, without asking upstream', async () => {
    const clock = manualClock();
    const d = await pair.start({ upstreams: [{ url: fast.url, ca: pair.pki.caFile }] }, { clock: clock.now });
    const first = await queryUdp({ port: d.port, name: 'example.com' });
    expect(first.response.answers[0]!.ttl).toBe(300);
    expect(fast.requests).toBe(1);
    clock.advance(1100);
    const second = await queryUdp({ port: d.port, name: 'EXAMPLE.com' });
    expect(fast.requests).toBe(1);
    expect(second.response.questions[0]!.name).toBe('EXAMPLE.com');
    expect(second.response.answers[0]!.ttl).toBeLessThan(300);
    expect(second.response.answers[0]!.ttl).toBeGreaterThanOrEqual(298);
    expect(second.response.answers[0]!.data).toBe('192.0.2.1');
  });

  it('caches NXDOMAIN for the SOA minimum', async () => {
    const d = await pair.start({ upstreams: [{ url: fast.url, ca: pair.pki.caFile }] });
    const a = await queryUdp({ port: d.port, name: 'nope.example.com' });
    const b = await queryUdp({ port: d.port, name: 'nope.example.com' });
    expect(a.response.rcode).toBe('NXDOMAIN');
    expect(b.response.rcode).toBe('NXDOMAIN');
    expect(fast.requests).toBe(1);
  });

  it('answers pinned names locally, with no upstream at all', async () => {
    fast.mode = 'hang';
    const d = await pair.start({
      upstreams: [{ url: fast.url, ca: pair.pki.caFile }],
      pins: { 'goproxy.cn': ['192.0.2.10', '2001:db8::10'], 'proxy.golang.org': { addresses: ['192.0.2.11'], ttl: 30 } },
    });
    const a = await queryUdp({ port: d.port, name: 'GoProxy.cn', type: 'A' });
    expect(a.response.answers.map((x) => [x.type, x.data, x.ttl])).toEqual([['A', '192.0.2.10', 60]]);
    expect(a.response.questions[0]!.name).toBe('GoProxy.cn');
    const aaaa = await queryTcp({ port: d.port, name: 'goproxy.cn', type: 'AAAA' });
    expect(aaaa.response.answers.map((x) => x.data)).toEqual(['2001:db8::10']);
    const mx = await queryUdp({ port: d.port, name: 'goproxy.cn', type: 'MX' });
    expect(mx.response.rcode).toBe('NOERROR');
    expect(mx.response.answers).toEqual([]);
    const p = await queryUdp({ port: d.port, name: 'proxy.golang.org', type: 'A' });
    expect(p.response.answers.map((x) => x.ttl)).toEqual([30]);
    expect(fast.requests).toBe(0);
  });

  it('TCP: several queries on one connection, answered by ID', async () => {
    const d = await pair.start({ upstreams: [{ url: fast.url, ca: pair.pki.caFile }] });
    const c = await TcpDnsClient.connect('127.0.0.1', d.port);
    try {
      const [a, b, big] = await Promise.all([
        c.query({ port: d.port, name: 'example.com', type: 'A' }),
        c.query({ port: d.port, name: 'example.com', type: 'AAAA' }),
        c.query({ port: d.port, name: 'big.example.net', type: 'TXT' }),
      ]);
      expect(a.response.answers[0]!.data).toBe('192.0.2.1');
      expect(b.response.answers[0]!.data).toBe('2001:db8::1');
      expect(big.response.answers.length).toBe(40);
      const again = await c.query({ port: d.port, name: 'short.example.net' });
      expect(again.response.answers[0]!.data).toBe('192.0.2.2');
    } finally {
      c.close();
    }
  });

  it('malformed packets never stop the daemon: FORMERR when the header is readable, else dropped', async () => {
    const d = await pair.start({ upstreams: [{ url: fast.url, ca: pair.pki.caFile }] });
    expect(await sendRawUdp('127.0.0.1', d.port, Buffer.from([1, 2, 3]), 300)).toBeNull();
    const junk = Buffer.from('abcd0100000100000000000003', 'hex'); // header ok, question cut short
    const formerr = await sendRawUdp('127.0.0.1', d.port, junk, 1000);
    expect(formerr).not.toBeNull();
    expect(formerr!.readUInt16BE(0)).toBe(0xabcd);
    expect(formerr!.readUInt16BE(2) & 0x8000).toBe(0x8000);
    expect(formerr!.readUInt16BE(2) & 0xf).toBe(1);
    // Garbage over TCP: a frame of junk, then a valid query on the same connection.
    const c = await TcpDnsClient.connect('127.0.0.1', d.port);
    c.sendRaw(Buffer.concat([Buffer.from([0, 5]), Buffer.from('hello')]));
    const ok = await c.query({ port: d.port, name: 'example.com' });
    expect(ok.response.answers[0]!.data).toBe('192.0.2.1');
    c.close();
    // A TCP stream of pure garbage is dropped without taking the daemon down.
    const raw = net.connect(d.port, '127.0.0.1');
    await new Promise((r) => raw.once('connect', r));
    raw.end(Buffer.from([0xff, 0xff, 1, 2, 3]));
    raw.destroy();
    const after = await queryUdp({ port: d.port, name: 'www.example.com' });
    expect(after.response.answers[0]!.data).toBe('192.0.2.3');
  });

  it('connects to the bootstrap IP with the URL host as TLS server name and :authority', async () => {
    const d = await pair.start({
      upstreams: [{ url: fast.urlFor('doh.test'), bootstrap: ['127.0.0.1'], ca: pair.pki.caFile }],
    });
    const r = await queryUdp({ port: d.port, name: 'example.com' });
    expect(r.response.answers[0]!.data).toBe('192.0.2.1');
    expect(fast.lastRequest!.servername).toBe('doh.test');
    expect(fast.lastRequest!.headers[':authority']).toBe(`doh.test:${fast.port}`);
  });

  it('multiplexes concurrent queries on the one HTTP/2 connection instead of queueing them', async () => {
    fast.mode = 'slow';
    fast.delayMs = 500;
    const d = await pair.start({ upstreams: [{ url: fast.url, ca: pair.pki.caFile }] });
    await queryUdp({ port: d.port, name: 'warm.example.com', timeoutMs: 2000 }); // connection up
    const before = fast.requests;
    const answered = fast.answered;
    const pending = Array.from({ length: 8 }, (_, i) => queryUdp({ port: d.port, name: `m${i}.example.com`, timeoutMs: 2500 }));
    // All eight reached the upstream while the first of them was still unanswered.
    await until(() => fast.requests - before === 8, 2000, 'eight requests');
    expect(fast.answered).toBe(answered);
    await Promise.all(pending);
    expect(fast.handshakes).toBe(1);
  });

  it('reuses one HTTP/2 connection across queries', async () => {
    const d = await pair.start({ upstreams: [{ url: fast.url, ca: pair.pki.caFile }] });
    await Promise.all(['a', 'b', 'c', 'd', 'e'].map((n) => queryUdp({ port: d.port, name: `${n}.example.com` })));
    await queryUdp({ port: d.port, name: 'example.com' });
    expect(fast.requests).toBe(6);
    expect(fast.handshakes).toBe(1);
  });
});
