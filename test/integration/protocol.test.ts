/**
 * DNS by the book, over real sockets against an in-process dohd and the fixture DoH server:
 * EDNS(0) (RFC 6891), truncation, DO/CD/AD, BADVERS, client subnet stripping, padding,
 * RFC 8482 ANY, NOTIMP/FORMERR/QR=1, and the same with the real `dig`.
 */
import { describe, expect, it } from 'vitest';
import dnsPacket from 'dns-packet';
import { queryTcp, queryUdp, sendRawUdp, TcpDnsClient } from '../fixtures/dns-client.js';
import type { RunningDaemon } from '../fixtures/daemon.js';
import { dig, HAVE_DIG } from '../fixtures/dig.js';
import { useDohUpstream } from '../fixtures/doh-pair.js';
import { ecsOption, optOf, rawQuery, type Decoded } from '../fixtures/raw-query.js';
import { frame } from '../fixtures/tcp-frames.js';
import { defaultZone, findOpt, Zone } from '../fixtures/zone.js';
import type { ConfigInput } from '../../src/config/schema.js';

/** The default zone, plus a ~900-byte answer, and AD set on answers to AD or DO queries (a validating upstream, RFC 6840 §5.7). */
class ValidatingZone extends Zone {
  override answer(query: dnsPacket.Packet): dnsPacket.Packet {
    const r = super.answer(query);
    const opt = findOpt(query);
    if ((opt && (opt.flags ?? 0) & dnsPacket.DNSSEC_OK) || (query.flags ?? 0) & dnsPacket.AUTHENTIC_DATA) r.flags = (r.flags ?? 0) | dnsPacket.AUTHENTIC_DATA;
    return r;
  }
}

function zone(): Zone {
  const z = new ValidatingZone();
  for (const name of ['example.com', 'www.example.com', 'big.example.net']) for (const r of defaultZone().lookup(name)) z.add(r);
  for (let i = 0; i < 8; i++) z.add({ name: 'mid.example.net', type: 'TXT', ttl: 300, data: `mid-${i}-`.padEnd(100, 'm') });
  return z;
}

const up = useDohUpstream({ zone: zone() });
/** The daemon of the test (the helpers below ask it); stopped after the test by useDohUpstream. */
let d: RunningDaemon | undefined;

async function start(extra: ConfigInput = {}): Promise<RunningDaemon> {
  d = await up.start({ upstreams: [up.upstream], ...extra });
  return d;
}

async function udpRaw(wire: Buffer, timeoutMs = 2000): Promise<Decoded | null> {
  const r = await sendRawUdp('127.0.0.1', d!.port, wire, timeoutMs);
  return r ? (dnsPacket.decode(r) as Decoded) : null;
}

async function tcpRaw(wire: Buffer): Promise<Decoded> {
  const c = await TcpDnsClient.connect('127.0.0.1', d!.port);
  try {
    const got = new Promise<Buffer>((resolve, reject) => {
      const t = setInterval(() => {
        if (c.unmatched.length) {
          clearInterval(t);
          resolve(c.unmatched[0]!);
        } else if (c.isClosed) {
          clearInterval(t);
          reject(new Error('closed without answer'));
        }
      }, 5);
    });
    c.sendRaw(frame(wire));
    return dnsPacket.decode(await got) as Decoded;
  } finally {
    c.close();
  }
}

/** The OPT record of the last query the DoH server received. */
function upstreamOpt() {
  return optOf(up.doh.lastRequest!.query!)!;
}

const TC = dnsPacket.TRUNCATED_RESPONSE;
const AD = dnsPacket.AUTHENTIC_DATA;
const CD = dnsPacket.CHECKING_DISABLED;

describe('EDNS(0)', () => {
  it('answers with an OPT advertising 1232 when the client sent one, none when it did not', async () => {
    await start();
    const e = await queryUdp({ port: d!.port, name: 'example.com', edns: { udpSize: 4096 } });
    expect(optOf(e.response)?.udpPayloadSize).toBe(1232);
    expect(optOf(e.response)?.ednsVersion).toBe(0);
    const n = await queryUdp({ port: d!.port, name: 'example.com', edns: false });
    expect(n.response.rcode).toBe('NOERROR');
    expect(optOf(n.response)).toBeUndefined();
    // The upstream always gets EDNS(0) with our size, whatever the client sent.
    expect(upstreamOpt().udpPayloadSize).toBe(1232);
  });

  it('honours the client UDP size: over it TC=1 with the answer records that fit, whole; under it the whole answer', async () => {
    await start();
    const mid1232 = await queryUdp({ port: d!.port, name: 'mid.example.net', type: 'TXT', edns: { udpSize: 1232 } });
    expect(mid1232.raw.length).toBeGreaterThan(512);
    expect(mid1232.response.flags! & TC).toBe(0);
    expect(mid1232.response.answers).toHaveLength(8);
    for (const edns of [false, { udpSize: 512 }] as const) {
      const mid = await queryUdp({ port: d!.port, name: 'mid.example.net', type: 'TXT', edns });
      expect(mid.raw.length).toBeLessThanOrEqual(512);
      expect(mid.response.flags! & TC).toBe(TC);
      expect(mid.response.answers.length).toBeGreaterThan(0);
      expect(mid.response.answers.length).toBeLessThan(8);
      expect(mid.response.answers).toEqual(mid1232.response.answers.slice(0, mid.response.answers.length));
      expect(mid.response.authorities).toEqual([]);
      expect(mid.response.questions).toEqual([{ name: 'mid.example.net', type: 'TXT', class: 'IN' }]);
    }
    const big = await queryUdp({ port: d!.port, name: 'big.example.net', type: 'TXT', edns: { udpSize: 65000 } });
    expect(big.raw.length).toBeLessThanOrEqual(1232);
    expect(big.response.flags! & TC).toBe(TC);
    // The same over TCP: whole, no TC.
    const tcp = await queryTcp({ port: d!.port, name: 'big.example.net', type: 'TXT', edns: false });
    expect(tcp.response.flags! & TC).toBe(0);
    expect(tcp.response.answers).toHaveLength(40);
    expect(up.doh.requests).toBe(2); // one upstream answer per name, cached, then served each way
  });

  it('passes DO and CD to the upstream and the AD bit back', async () => {
    await start();
    const r = await queryUdp({ port: d!.port, name: 'example.com', edns: { do: true } });
    expect(upstreamOpt().flag_do).toBe(true);
    expect(r.response.flags! & AD).toBe(AD);
    expect(optOf(r.response)?.flag_do).toBe(true);
    const plain = await queryUdp({ port: d!.port, name: 'www.example.com' });
    expect(upstreamOpt().flag_do).toBe(false);
    expect(up.doh.lastRequest!.query!.flags! & AD).toBe(AD); // dohd asks with AD: the upstream says whether it validated
    expect(plain.response.flags! & AD).toBe(0); // but this client did not ask
    // AD comes back to a client that set AD itself (RFC 6840 §5.7), from the same cached answer.
    const withAd = await udpRaw(rawQuery({ name: 'www.example.com', ad: true }));
    expect(withAd!.flag_ad).toBe(true);
    // CD=1 reaches the upstream, and is its own cache entry.
    const cd = await udpRaw(rawQuery({ name: 'www.example.com', cd: true }));
    expect(cd!.rcode).toBe('NOERROR');
    expect(up.doh.lastRequest!.query!.flags! & CD).toBe(CD);
    expect(up.doh.requests).toBe(3);
  });

  it('answers BADVERS to an EDNS version above 0, without asking upstream', async () => {
    await start();
    for (const wire of [rawQuery({ name: 'example.com', edns: { version: 1 } }), rawQuery({ name: 'example.com', edns: { version: 255, do: true } })]) {
      const raw = await sendRawUdp('127.0.0.1', d!.port, wire);
      expect(raw!.readUInt16BE(2) & 0xf).toBe(0); // header rcode: low 4 bits of 16
      const p = dnsPacket.decode(raw!);
      expect(p.id).toBe(0x2b2b);
      const opt = optOf(p)!;
      expect(opt.extendedRcode).toBe(1); // high 8 bits: 16 >> 4
      expect(opt.ednsVersion).toBe(0); // the version we speak
      expect(p.answers).toEqual([]);
      const overTcp = await tcpRaw(wire);
      expect(optOf(overTcp)!.extendedRcode).toBe(1);
    }
    expect(up.doh.requests).toBe(0);
    expect(d!.daemon.policy.counters.badvers).toBe(4);
  });
});

describe('privacy toward the upstream', () => {
  it('pads every DoH query to a multiple of 128 bytes (RFC 8467)', async () => {
    await start();
    for (const name of ['a.example.net', 'example.com', `${'x'.repeat(60)}.${'y'.repeat(60)}.example.net`]) {
      await queryUdp({ port: d!.port, name, type: 'AAAA' });
      expect(up.doh.lastRequest!.body.length % 128).toBe(0);
      expect(upstreamOpt().options.map((o) => o.code)).toContain(12);
    }
  });

  it('strips the client subnet by default, and forwards it with ecs.keep', async () => {
    await start();
    const wire = rawQuery({ name: 'example.com', edns: { options: [ecsOption(198, 51, 100)] } });
    expect((await udpRaw(wire))!.rcode).toBe('NOERROR');
    expect(upstreamOpt().options.map((o) => o.code)).toEqual([12]);
    expect(d!.daemon.policy.counters.ecsStripped).toBe(1);
    await d!.stop();
    up.doh.reset();
    await start({ ecs: { keep: true } });
    expect((await udpRaw(wire))!.rcode).toBe('NOERROR');
    const ecs = upstreamOpt().options.find((o) => o.code === 8)!;
    expect(Buffer.from(ecs.data!)).toEqual(Buffer.from([0, 1, 24, 0, 198, 51, 100]));
    // Kept subnets are part of the cache key: another subnet asks upstream again.
    await udpRaw(rawQuery({ name: 'example.com', edns: { options: [ecsOption(203, 0, 113)] } }));
    await udpRaw(wire);
    expect(up.doh.requests).toBe(2);
  });
});

describe('query sanity', () => {
  it('ANY: the minimal RFC 8482 HINFO by default, over UDP and TCP, without asking upstream', async () => {
    await start();
    const r = await queryUdp({ port: d!.port, name: 'Example.Com', type: 'ANY' });
    expect(r.response.rcode).toBe('NOERROR');
    expect(r.response.answers).toHaveLength(1);
    expect(r.response.answers![0]).toMatchObject({ name: 'Example.Com', type: 'HINFO', data: { cpu: 'RFC8482', os: '' } });
    const t = await queryTcp({ port: d!.port, name: 'example.com', type: 'ANY' });
    expect(t.response.answers![0]).toMatchObject({ type: 'HINFO' });
    expect(up.doh.requests).toBe(0);
  });

  it('ANY: `refuse` answers REFUSED, `forward` asks the upstream', async () => {
    await start({ any: 'refuse' });
    expect((await queryUdp({ port: d!.port, name: 'example.com', type: 'ANY' })).response.rcode).toBe('REFUSED');
    await d!.stop();
    await start({ any: 'forward' });
    const f = await queryUdp({ port: d!.port, name: 'example.com', type: 'ANY' });
    expect(f.response.answers!.map((a) => a.type).sort()).toEqual(['A', 'AAAA']);
    expect(up.doh.requests).toBe(1);
  });

  it('NOTIMP for opcodes other than QUERY, FORMERR for QDCOUNT other than 1, over UDP and TCP', async () => {
    await start();
    for (const opcode of [1, 2, 4, 5]) {
      const wire = rawQuery({ name: 'example.com', opcode });
      expect((await udpRaw(wire))!.rcode).toBe('NOTIMP');
      expect((await tcpRaw(wire)).rcode).toBe('NOTIMP');
    }
    const none = dnsPacket.encode({ type: 'query', id: 9, flags: 0, questions: [] });
    const two = dnsPacket.encode({ type: 'query', id: 9, flags: 0, questions: [{ name: 'a.example.net', type: 'A' }, { name: 'b.example.net', type: 'A' }] });
    for (const wire of [none, two]) {
      const u = (await udpRaw(wire))!;
      expect(u.rcode).toBe('FORMERR');
      expect(u.id).toBe(9);
      expect((await tcpRaw(wire)).rcode).toBe('FORMERR');
    }
    expect(up.doh.requests).toBe(0);
    expect(d!.daemon.policy.counters.rejected).toMatchObject({ opcode: 8, qdcount: 4 });
  });

  it('never answers a response (QR=1): dropped and counted', async () => {
    await start();
    const resp = rawQuery({ name: 'example.com' });
    resp.writeUInt16BE(resp.readUInt16BE(2) | 0x8000, 2);
    expect(await sendRawUdp('127.0.0.1', d!.port, resp, 300)).toBeNull();
    expect(d!.daemon.policy.counters.dropped.response).toBe(1);
    // Still alive and answering.
    expect((await queryUdp({ port: d!.port, name: 'example.com' })).response.rcode).toBe('NOERROR');
  });
});

describe.skipIf(!HAVE_DIG)('real client: dig', () => {
  it('dig +tcp', async () => {
    await start();
    const out = await dig(d!.port, '+tcp', 'example.com', 'A');
    expect(out).toMatch(/status: NOERROR/);
    expect(out).toMatch(/^example\.com\.\s+\d+\s+IN\s+A\s+192\.0\.2\.1$/m);
  });

  it('dig +bufsize=512 on a large answer: TC over UDP, then the whole answer over TCP', async () => {
    await start();
    const out = await dig(d!.port, '+bufsize=512', 'big.example.net', 'TXT');
    expect(out).toMatch(/Truncated, retrying in TCP mode/);
    expect(out.match(/^big\.example\.net\.\s+\d+\s+IN\s+TXT/gm)?.length).toBe(40);
    expect(out).toMatch(/udp: 1232/);
  });

  it('dig +dnssec: DO reaches the upstream, AD and DO come back', async () => {
    await start();
    const out = await dig(d!.port, '+dnssec', 'example.com', 'A');
    expect(upstreamOpt().flag_do).toBe(true);
    expect(up.doh.queries.at(-1)!.questions![0]!.name).toBe('example.com');
    expect(out).toMatch(/flags: qr rd ra ad;/);
    expect(out).toMatch(/EDNS: version: 0, flags: do; udp: 1232/);
  });

  it('dig +noedns: a plain answer with no OPT record', async () => {
    await start();
    const out = await dig(d!.port, '+noedns', 'example.com', 'A');
    expect(out).toMatch(/status: NOERROR/);
    expect(out).not.toMatch(/OPT PSEUDOSECTION/);
    expect(out).toMatch(/192\.0\.2\.1/);
  });

  it('dig +edns=1 +noednsneg: BADVERS', async () => {
    await start();
    const out = await dig(d!.port, '+edns=1', '+noednsneg', 'example.com', 'A');
    expect(out).toMatch(/status: BADVERS/);
    expect(out).toMatch(/EDNS: version: 0,/);
    expect(up.doh.requests).toBe(0);
  });
});
