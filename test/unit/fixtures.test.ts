import { X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import http2 from 'node:http2';
import { setTimeout as sleep } from 'node:timers/promises';
import dnsPacket from 'dns-packet';
import { Client } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TcpDnsClient, buildQuery, queryTcp, queryUdp, sendRawUdp } from '../fixtures/dns-client.js';
import { type DohMode, type DohServer, startDohServer } from '../fixtures/doh-server.js';
import { type Pki, makePki } from '../fixtures/pki.js';
import { type PlainDnsServer, startPlainDnsServer } from '../fixtures/plain-dns-server.js';
import { until } from '../fixtures/resources.js';
import { Zone, defaultZone } from '../fixtures/zone.js';

type Decoded = dnsPacket.DecodedPacket & { rcode?: string };

function dnsQuery(name: string, type: dnsPacket.RecordType = 'A', id = 0): Buffer {
  return dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type, class: 'IN' }] });
}

function h2Client(server: DohServer, pki: Pki): Client {
  return new Client(new URL(server.url).origin, { allowH2: true, connect: { ca: pki.caPem, servername: 'doh.test' } });
}

async function post(client: Client, body: Buffer, signal?: AbortSignal) {
  const res = await client.request({
    path: '/dns-query',
    method: 'POST',
    headers: { 'content-type': 'application/dns-message', accept: 'application/dns-message' },
    body,
    signal,
  });
  const bytes = Buffer.from(await res.body.arrayBuffer());
  return { status: res.statusCode, headers: res.headers, body: bytes };
}

describe('pki', () => {
  it('makes a fresh CA and a server cert with the default SANs, fast', async () => {
    const started = performance.now();
    const [a, b] = await Promise.all([makePki(), makePki()]);
    expect(performance.now() - started).toBeLessThan(1000);
    try {
      const ca = new X509Certificate(a.caPem);
      const cert = new X509Certificate(a.certPem);
      expect(ca.ca).toBe(true);
      expect(cert.ca).toBe(false);
      expect(cert.verify(ca.publicKey)).toBe(true);
      expect(cert.verify(new X509Certificate(b.caPem).publicKey)).toBe(false); // no cache: a new CA each call
      expect(cert.checkHost('doh.test')).toBe('doh.test');
      expect(cert.checkHost('localhost')).toBe('localhost');
      expect(cert.checkIP('127.0.0.1')).toBe('127.0.0.1');
      expect(cert.checkIP('::1')).toBe('::1');
      expect(cert.checkHost('other.example.net')).toBeUndefined();
      expect(cert.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
      expect(existsSync(a.caFile) && existsSync(a.certFile) && existsSync(a.keyFile)).toBe(true);
    } finally {
      await Promise.all([a.cleanup(), b.cleanup()]);
    }
    expect(existsSync(a.dir)).toBe(false);
  });

  it('honours custom SANs', async () => {
    const pki = await makePki({ dnsNames: ['resolver.example'], ips: ['127.0.0.2'] });
    try {
      const cert = new X509Certificate(pki.certPem);
      expect(cert.checkHost('resolver.example')).toBe('resolver.example');
      expect(cert.checkHost('doh.test')).toBeUndefined();
      expect(cert.checkIP('127.0.0.2')).toBe('127.0.0.2');
    } finally {
      await pki.cleanup();
    }
  });
});

describe('zone', () => {
  const zone = defaultZone();
  const ask = (name: string, type: dnsPacket.RecordType, extra: Partial<dnsPacket.Packet> = {}) =>
    dnsPacket.decode(dnsPacket.encode(zone.answer({ ...dnsPacket.decode(dnsQuery(name, type, 77)), ...extra }))) as Decoded;

  it('answers with the question echoed byte for byte', () => {
    const r = ask('ExAmPlE.CoM', 'A');
    expect(r.id).toBe(77);
    expect(r.flag_qr && r.flag_rd && r.flag_ra).toBe(true);
    expect(r.rcode).toBe('NOERROR');
    expect(r.questions).toEqual([{ name: 'ExAmPlE.CoM', type: 'A', class: 'IN' }]);
    expect(r.answers).toEqual([{ name: 'ExAmPlE.CoM', type: 'A', class: 'IN', flush: false, ttl: 300, data: '192.0.2.1' }]);
  });

  it('gives NODATA and NXDOMAIN with an SOA carrying soaMinimum', () => {
    const nodata = ask('example.com', 'MX');
    expect(nodata.rcode).toBe('NOERROR');
    expect(nodata.answers).toEqual([]);
    expect(nodata.authorities?.[0]).toMatchObject({ type: 'SOA', ttl: 60 });
    const nx = ask('nope.example.net', 'A');
    expect(nx.rcode).toBe('NXDOMAIN');
    expect(nx.authorities?.[0]).toMatchObject({ type: 'SOA', ttl: 60 });
    const custom = new Zone([{ name: 'a.example.net', type: 'A', data: '192.0.2.9' }], { soaMinimum: 5 });
    expect(custom.answer(dnsPacket.decode(dnsQuery('b.example.net'))).authorities?.[0]).toMatchObject({ ttl: 5 });
  });

  it('chases CNAMEs, serves big and short records, echoes EDNS DO', () => {
    const c = ask('cname.example.net', 'A');
    expect(c.answers?.map((a) => a.type)).toEqual(['CNAME', 'A']);
    const big = dnsPacket.encode(zone.answer(dnsPacket.decode(dnsQuery('big.example.net', 'TXT'))));
    expect(big.length).toBeGreaterThan(1232);
    expect(dnsPacket.decode(big).answers).toHaveLength(40);
    expect(ask('short.example.net', 'A').answers?.[0]).toMatchObject({ ttl: 2, data: '192.0.2.2' });
    expect(ask('goproxy.cn', 'A').answers?.[0]).toMatchObject({ data: '192.0.2.53' });
    expect(ask('www.example.com', 'A').answers?.[0]).toMatchObject({ data: '192.0.2.3' });

    const withDo = dnsPacket.decode(buildQuery({ name: 'example.com', edns: { do: true } }).wire);
    const opt = dnsPacket.decode(dnsPacket.encode(zone.answer(withDo))).additionals?.[0] as dnsPacket.OptAnswer;
    expect(opt).toMatchObject({ type: 'OPT', udpPayloadSize: 1232, flag_do: true });
    expect(ask('example.com', 'A').additionals).toEqual([]); // no OPT asked, none given
    const noRd = dnsPacket.decode(dnsPacket.encode(zone.answer({ ...dnsPacket.decode(dnsQuery('example.com')), flags: 0 })));
    expect(noRd.flag_rd).toBe(false);
  });
});

describe('DoH server', () => {
  let pki: Pki;
  let server: DohServer;
  const clients: Client[] = [];
  const client = () => {
    const c = h2Client(server, pki);
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    pki = await makePki();
    server = await startDohServer({ pki });
  });
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.destroy()));
    server.reset();
    server.idleCloseMs = undefined;
    await until(() => server.sessions === 0);
  });
  afterAll(async () => {
    await server.close();
    await pki.cleanup();
  });

  it('answers an RFC 8484 POST over TLS + HTTP/2', async () => {
    expect(server.url).toBe(`https://127.0.0.1:${server.port}/dns-query`);
    expect(server.urlFor('doh.test')).toBe(`https://doh.test:${server.port}/dns-query`);
    const res = await post(client(), dnsQuery('example.com'));
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/dns-message');
    expect(res.headers['cache-control']).toBe('max-age=300');
    const answer = dnsPacket.decode(res.body);
    expect(answer.id).toBe(0);
    expect(answer.answers?.[0]).toMatchObject({ type: 'A', data: '192.0.2.1' });

    expect(server.requests).toBe(1);
    expect(server.handshakes).toBe(1);
    expect(server.sessions).toBe(1);
    expect(server.lastRequest?.headers[':authority']).toBe(`127.0.0.1:${server.port}`);
    expect(server.lastRequest?.headers[':method']).toBe('POST');
    expect(server.lastRequest?.headers[':scheme']).toBe('https'); // pseudo-headers only exist in HTTP/2
    expect(server.lastRequest?.servername).toBe('doh.test');
    expect(server.lastRequest?.query?.questions?.[0]?.name).toBe('example.com');
    expect(server.queries).toHaveLength(1);
  });

  it('answers GET ?dns= and rejects bad requests', async () => {
    const c = client();
    const dns = dnsQuery('example.com', 'AAAA').toString('base64url');
    const get = await c.request({ path: `/dns-query?dns=${dns}`, method: 'GET' });
    const body = Buffer.from(await get.body.arrayBuffer());
    expect(get.statusCode).toBe(200);
    expect(dnsPacket.decode(body).answers?.[0]).toMatchObject({ type: 'AAAA', data: '2001:db8::1' });

    const wrongPath = await c.request({ path: '/other', method: 'GET' });
    await wrongPath.body.dump();
    expect(wrongPath.statusCode).toBe(404);
    const wrongType = await c.request({ path: '/dns-query', method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'x' });
    await wrongType.body.dump();
    expect(wrongType.statusCode).toBe(415);
  });

  it('counts handshakes per connection and reuses a session', async () => {
    const a = client();
    await post(a, dnsQuery('example.com'));
    await post(a, dnsQuery('example.com'));
    expect(server.handshakes).toBe(1);
    await post(client(), dnsQuery('example.com'));
    expect(server.handshakes).toBe(2);
    expect(server.sessions).toBe(2);
    expect(server.requests).toBe(3);
  });

  it('calls onQuery and applies delayMs', async () => {
    const seen: string[] = [];
    server.onQuery = (q) => seen.push(q.questions?.[0]?.name ?? '');
    server.delayMs = 150;
    try {
      const started = performance.now();
      await post(client(), dnsQuery('short.example.net'));
      expect(performance.now() - started).toBeGreaterThanOrEqual(140);
      expect(seen).toEqual(['short.example.net']);
    } finally {
      server.onQuery = undefined;
    }
  });

  it('http500 and garbage modes', async () => {
    const c = client();
    server.mode = 'http500';
    const err = await post(c, dnsQuery('example.com'));
    expect(err.status).toBe(500);
    expect(err.headers['content-type']).toBe('text/plain');

    server.mode = 'garbage';
    const garbage = await post(c, dnsQuery('example.com'));
    expect(garbage.status).toBe(200);
    expect(garbage.headers['content-type']).toBe('application/dns-message');
    expect(garbage.body).toHaveLength(64);
    expect(server.requests).toBe(2);
  });

  it.each<[DohMode, (r: { status: number; headers: Record<string, unknown>; body: Buffer }) => void]>([
    ['http429', (r) => expect(r.status).toBe(429)],
    ['http404', (r) => expect(r.status).toBe(404)],
    ['truncated', (r) => expect([r.status, r.body.length]).toEqual([200, 7])],
    ['oversized', (r) => expect([r.status, r.body.length]).toEqual([200, 70000])],
    ['wrongContentType', (r) => {
      expect(r.headers['content-type']).toBe('text/html');
      expect(dnsPacket.decode(r.body).answers).toHaveLength(1);
    }],
    ['wrongQuestion', (r) => expect(dnsPacket.decode(r.body).questions?.[0]?.name).toBe('other.example.net')],
    ['servfail', (r) => expect((dnsPacket.decode(r.body) as Decoded).rcode).toBe('SERVFAIL')],
    ['refused', (r) => expect((dnsPacket.decode(r.body) as Decoded).rcode).toBe('REFUSED')],
    ['wrongId', (r) => expect(dnsPacket.decode(r.body).id).toBe(1234)],
  ])('mode %s', async (mode, check) => {
    server.mode = mode;
    check(await post(client(), dnsQuery('example.com')));
  });

  it('reset mode fails the response mid-body', async () => {
    server.mode = 'reset';
    await expect(post(client(), dnsQuery('big.example.net', 'TXT'))).rejects.toThrow();
    expect(server.requests).toBe(1);
  });

  it('hang mode never answers; an AbortSignal ends the wait', async () => {
    server.mode = 'hang';
    const started = performance.now();
    await expect(post(client(), dnsQuery('example.com'), AbortSignal.timeout(200))).rejects.toThrow();
    expect(performance.now() - started).toBeGreaterThanOrEqual(190);
    expect(server.requests).toBe(1);
  });

  it('goaway mode refuses the request and closes the session', async () => {
    const c = client();
    await post(c, dnsQuery('example.com'));
    expect(server.sessions).toBe(1);
    server.mode = 'goaway';
    await expect(post(c, dnsQuery('example.com'))).rejects.toThrow();
    await until(() => server.sessions === 0);
    server.mode = 'ok';
    expect((await post(c, dnsQuery('example.com'))).status).toBe(200); // client reconnects
    expect(server.handshakes).toBe(2);
  });

  it('idleCloseMs destroys idle sessions silently (no GOAWAY)', async () => {
    const session = http2.connect(new URL(server.url).origin, { ca: pki.caPem, servername: 'doh.test' });
    let goaway = false;
    session.on('goaway', () => (goaway = true));
    session.on('error', () => {});
    const closed = new Promise<void>((resolve) => session.once('close', resolve));
    try {
      const req = session.request({ ':method': 'POST', ':path': '/dns-query', 'content-type': 'application/dns-message' });
      req.end(dnsQuery('example.com'));
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      await new Promise((resolve) => req.once('end', resolve));
      expect(dnsPacket.decode(Buffer.concat(chunks)).answers).toHaveLength(1);

      server.idleCloseMs = 100; // applies to already idle sessions too
      await closed;
      expect(goaway).toBe(false);
      await until(() => server.sessions === 0);
    } finally {
      session.destroy();
    }
  });

  it('close() resolves with hanging streams and delayed answers pending', async () => {
    const own = await startDohServer({ pki, mode: 'hang' });
    const c = h2Client(own, pki);
    const hung = post(c, dnsQuery('example.com')).catch((e: unknown) => e);
    await until(() => own.requests === 1);
    own.mode = 'slow';
    own.delayMs = 60_000;
    const c2 = h2Client(own, pki); // a second connection: one Client sends one request at a time
    const slow = post(c2, dnsQuery('example.com')).catch((e: unknown) => e);
    await until(() => own.requests === 2);
    expect(own.sessions).toBe(2);
    await own.close();
    expect(own.sessions).toBe(0);
    expect(await hung).toBeInstanceOf(Error);
    expect(await slow).toBeInstanceOf(Error);
    await Promise.all([c.destroy(), c2.destroy()]);
  });
});

describe('plain DNS server', () => {
  let dns: PlainDnsServer;
  beforeAll(async () => {
    dns = await startPlainDnsServer();
  });
  afterEach(() => {
    dns.mode = 'ok';
    dns.delayMs = 0;
  });
  afterAll(() => dns.close());

  it('answers over UDP and TCP on the same port', async () => {
    const udp = await queryUdp({ port: dns.port, name: 'example.com', id: 4242 });
    expect(udp.response.id).toBe(4242);
    expect(udp.response.answers?.[0]).toMatchObject({ data: '192.0.2.1' });
    const tcp = await queryTcp({ port: dns.port, name: 'example.com', type: 'AAAA' });
    expect(tcp.response.answers?.[0]).toMatchObject({ data: '2001:db8::1' });
    expect(tcp.response.additionals?.[0]).toMatchObject({ type: 'OPT' });
    expect([dns.udpQueries, dns.tcpQueries]).toEqual([1, 1]);
    const nx = await queryUdp({ port: dns.port, name: 'nope.example.net', edns: false });
    expect(nx.response.rcode).toBe('NXDOMAIN');
    expect(nx.response.additionals).toEqual([]);
  });

  it('serves several in-flight queries on one TCP connection', async () => {
    const conn = await TcpDnsClient.connect('127.0.0.1', dns.port);
    try {
      dns.delayMs = 30;
      const results = await Promise.all([
        conn.query({ name: 'example.com' }),
        conn.query({ name: 'short.example.net' }),
        conn.query({ name: 'big.example.net', type: 'TXT' }),
      ]);
      expect(results.map((r) => r.response.answers?.length)).toEqual([1, 1, 40]);
      expect(results[1]!.response.answers?.[0]).toMatchObject({ data: '192.0.2.2' });
    } finally {
      conn.close();
      await conn.closed;
    }
  });

  it('truncates big UDP answers (and everything in truncate mode); TCP is complete', async () => {
    const big = await queryUdp({ port: dns.port, name: 'big.example.net', type: 'TXT' });
    expect(big.response.flag_tc).toBe(true);
    expect(big.response.answers).toEqual([]);

    dns.mode = 'truncate';
    const small = await queryUdp({ port: dns.port, name: 'example.com' });
    expect(small.response.flag_tc).toBe(true);
    expect(small.response.answers).toEqual([]);
    const full = await queryTcp({ port: dns.port, name: 'example.com' });
    expect(full.response.flag_tc).toBe(false);
    expect(full.response.answers).toHaveLength(1);
  });

  it('hang and servfail modes; raw UDP', async () => {
    dns.mode = 'hang';
    await expect(queryUdp({ port: dns.port, name: 'example.com', timeoutMs: 150 })).rejects.toThrow(/timed out after 150 ms/);
    expect(await sendRawUdp('127.0.0.1', dns.port, dnsQuery('example.com'), 150)).toBeNull();
    dns.mode = 'servfail';
    expect((await queryTcp({ port: dns.port, name: 'example.com' })).response.rcode).toBe('SERVFAIL');
    dns.mode = 'ok';
    const raw = await sendRawUdp('127.0.0.1', dns.port, dnsQuery('example.com', 'A', 9), 1000);
    expect(raw && dnsPacket.decode(raw).id).toBe(9);
  });
});

describe('IPv6 loopback', () => {
  it('serves DoH and plain DNS on ::1', async () => {
    const pki = await makePki();
    const doh = await startDohServer({ pki, host: '::1' });
    const dns = await startPlainDnsServer({ host: '::1' });
    const c = h2Client(doh, pki);
    try {
      expect(doh.url).toBe(`https://[::1]:${doh.port}/dns-query`);
      const res = await post(c, dnsQuery('example.com'));
      expect(dnsPacket.decode(res.body).answers).toHaveLength(1);
      expect((await queryUdp({ host: '::1', port: dns.port, name: 'example.com' })).response.answers).toHaveLength(1);
      expect((await queryTcp({ host: '::1', port: dns.port, name: 'example.com' })).response.answers).toHaveLength(1);
    } finally {
      await c.destroy();
      await Promise.all([doh.close(), dns.close()]);
      await pki.cleanup();
    }
  });
});

describe('fixtures leave nothing behind', () => {
  const countByType = () => {
    const counts = new Map<string, number>();
    for (const r of process.getActiveResourcesInfo()) counts.set(r, (counts.get(r) ?? 0) + 1);
    return counts;
  };

  it('closing servers and clients releases every handle and timer', async () => {
    const before = countByType();
    const pki = await makePki();
    const doh = await startDohServer({ pki, idleCloseMs: 5_000, delayMs: 30_000 });
    const dns = await startPlainDnsServer({ delayMs: 30_000 });
    const c = h2Client(doh, pki);
    const pending = post(c, dnsQuery('example.com')).catch(() => undefined);
    const conn = await TcpDnsClient.connect('127.0.0.1', dns.port);
    const tcpPending = conn.query({ name: 'example.com', timeoutMs: 200 }).catch(() => undefined);
    await until(() => doh.requests === 1 && dns.tcpQueries === 1);
    expect(countByType().get('Timeout') ?? 0).toBeGreaterThan(before.get('Timeout') ?? 0);

    await Promise.all([doh.close(), dns.close()]);
    await Promise.all([pending, tcpPending, c.destroy(), conn.closed]);
    await pki.cleanup();
    await sleep(20);

    const after = countByType();
    for (const [type, n] of after) expect({ type, n }).toEqual({ type, n: Math.min(n, before.get(type) ?? 0) });
  });
});
