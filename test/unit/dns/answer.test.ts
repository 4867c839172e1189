/** Unit tests of the query sanity checks (decode) and the answer step (EDNS, truncation, BADVERS, RFC 8482). */
import { describe, expect, it } from 'vitest';
import dnsPacket from 'dns-packet';
import { finalizeAnswer, udpLimit } from '../../../src/dns/answer.js';
import { minimalAnyReply } from '../../../src/dns/any.js';
import { decodeQuery, localReply, rcodeReply, type Query } from '../../../src/dns/message.js';
import { buildUpstreamQuery } from '../../../src/dns/upstream-query.js';
import { Flag } from '../../../src/dns/wire.js';

type Opt = { udpSize?: number; do?: boolean; version?: number; options?: { code: number; data: Buffer }[] } | false;

function wireQuery(name: string, type = 'A', edns: Opt = {}, flags = dnsPacket.RECURSION_DESIRED, id = 0x1234): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id,
    flags,
    questions: [{ name, type: type as dnsPacket.RecordType, class: 'IN' }],
    additionals:
      edns === false
        ? []
        : [{ name: '.', type: 'OPT', udpPayloadSize: edns.udpSize ?? 1232, extendedRcode: 0, ednsVersion: edns.version ?? 0, flags: edns.do ? dnsPacket.DNSSEC_OK : 0, options: edns.options ?? [] } as dnsPacket.Answer],
  });
}

function query(name: string, type = 'A', edns: Opt = {}, flags?: number): Query {
  const d = decodeQuery(wireQuery(name, type, edns, flags));
  if (!d.ok) throw new Error(d.reason);
  return d.query;
}

/** An upstream-style answer with n TXT records of 100 bytes each. */
function bigAnswer(q: Query, n: number): Buffer {
  return localReply(
    q,
    Array.from({ length: n }, (_, i) => ({ name: q.name, type: 'TXT' as const, ttl: 60, data: `r${i}`.padEnd(100, 'x') })),
  );
}

function withFlags(wire: Buffer, flags: number): Buffer {
  wire.writeUInt16BE(wire.readUInt16BE(2) | flags, 2);
  return wire;
}

const decode = (b: Buffer) => dnsPacket.decode(b) as dnsPacket.DecodedPacket & { rcode: string };

describe('query sanity (decodeQuery)', () => {
  it('drops responses (QR=1) and packets shorter than a header, without reply', () => {
    const resp = wireQuery('example.com');
    resp.writeUInt16BE(resp.readUInt16BE(2) | Flag.QR, 2);
    expect(decodeQuery(resp)).toMatchObject({ ok: false, reply: null, reason: 'response' });
    expect(decodeQuery(Buffer.alloc(11))).toMatchObject({ ok: false, reply: null, reason: 'short' });
  });

  it('answers NOTIMP to opcodes other than QUERY, with the opcode and ID echoed', () => {
    for (const opcode of [1, 2, 4, 5, 15]) {
      const w = wireQuery('example.com');
      w.writeUInt16BE((w.readUInt16BE(2) & ~0x7800) | (opcode << 11), 2);
      const d = decodeQuery(w);
      expect(d.ok).toBe(false);
      if (d.ok) continue;
      expect(d.reason).toBe('opcode');
      const r = d.reply!;
      expect(r.readUInt16BE(0)).toBe(0x1234);
      expect(r.readUInt16BE(2) & Flag.QR).toBe(Flag.QR);
      expect((r.readUInt16BE(2) >> 11) & 0xf).toBe(opcode);
      expect(r.readUInt16BE(2) & 0xf).toBe(4);
    }
  });

  it('answers FORMERR to QDCOUNT other than 1, two OPT records, or a cut question', () => {
    const zero = dnsPacket.encode({ type: 'query', id: 7, flags: 0, questions: [] });
    const two = dnsPacket.encode({ type: 'query', id: 7, flags: 0, questions: [{ name: 'a.example.net', type: 'A' }, { name: 'b.example.net', type: 'A' }] });
    const opt = { name: '.', type: 'OPT', udpPayloadSize: 1232, extendedRcode: 0, ednsVersion: 0, flags: 0, options: [] } as unknown as dnsPacket.Answer;
    const twoOpt = dnsPacket.encode({ type: 'query', id: 7, flags: 0, questions: [{ name: 'a.example.net', type: 'A' }], additionals: [opt, opt] });
    const cut = wireQuery('example.com', 'A', false).subarray(0, 20);
    for (const [w, reason] of [[zero, 'qdcount'], [two, 'qdcount'], [twoOpt, 'two-opt'], [cut, 'malformed']] as const) {
      const d = decodeQuery(w);
      expect(d.ok).toBe(false);
      if (d.ok) continue;
      expect(d.reason).toBe(reason);
      expect(decode(d.reply!).rcode).toBe('FORMERR');
    }
  });

  it('reads EDNS: UDP size, version, DO, CD and options', () => {
    const q = query('example.com', 'A', { udpSize: 4096, do: true, version: 1, options: [{ code: 8, data: Buffer.from([0, 1, 24, 0, 192, 0, 2]) }] }, Flag.RD | Flag.CD);
    expect(q.edns).toMatchObject({ udpSize: 4096, version: 1, dnssecOk: true });
    expect(q.edns!.options.map((o) => o.code)).toEqual([8]);
    expect(q.checkingDisabled).toBe(true);
    expect(query('example.com', 'A', false).edns).toBeNull();
  });
});

describe('answer step (finalizeAnswer)', () => {
  it('UDP limit: 512 without EDNS, the client size capped at 1232 with it, never below 512', () => {
    expect(udpLimit(query('a.example.net', 'A', false))).toBe(512);
    expect(udpLimit(query('a.example.net', 'A', { udpSize: 4096 }))).toBe(1232);
    expect(udpLimit(query('a.example.net', 'A', { udpSize: 1000 }))).toBe(1000);
    expect(udpLimit(query('a.example.net', 'A', { udpSize: 100 }))).toBe(512);
  });

  it('adds our OPT (1232, DO echoed) only when the client sent one', () => {
    const q = query('a.example.net', 'A', { udpSize: 4096, do: true });
    const out = decode(finalizeAnswer(q, rcodeReply(q, 0), 'udp'));
    const opt = out.additionals!.find((a) => a.type === 'OPT') as dnsPacket.OptAnswer;
    expect(opt.udpPayloadSize).toBe(1232);
    expect(opt.flag_do).toBe(true);
    expect((opt as unknown as { ednsVersion: number }).ednsVersion).toBe(0);
    const plain = query('a.example.net', 'A', false);
    expect(decode(finalizeAnswer(plain, rcodeReply(plain, 0), 'udp')).additionals).toEqual([]);
  });

  it('truncates over UDP with TC=1 and the answer records that fit, whole; TCP gets it whole', () => {
    for (const [edns, limit] of [[false, 512], [{ udpSize: 512 }, 512], [{ udpSize: 1232 }, 1232], [{ udpSize: 65000 }, 1232]] as const) {
      const q = query('big.example.net', 'TXT', edns);
      const full = bigAnswer(q, 20); // ~2.3 KB
      const udp = finalizeAnswer(q, full, 'udp');
      expect(udp.length).toBeLessThanOrEqual(limit);
      const t = decode(udp);
      expect(t.flags! & Flag.TC).toBe(Flag.TC);
      expect(t.id).toBe(0x1234);
      const kept = t.answers!.length;
      expect(kept).toBeGreaterThan(0);
      expect(kept).toBeLessThan(20);
      // As many as fit: one more record would not.
      const one = decode(finalizeAnswer(q, full, 'tcp')).answers!;
      expect(t.answers).toEqual(one.slice(0, kept));
      expect(udp.length + (udp.length - (12 + q.question.length + (edns ? 11 : 0))) / kept).toBeGreaterThan(limit);
      expect(t.questions).toEqual([{ name: 'big.example.net', type: 'TXT', class: 'IN' }]);
      expect(t.additionals!.some((a) => a.type === 'OPT')).toBe(edns !== false);
      const tcp = decode(finalizeAnswer(q, full, 'tcp'));
      expect(tcp.flags! & Flag.TC).toBe(0);
      expect(tcp.answers!.length).toBe(20);
    }
  });

  it('over TCP an answer that would not fit the 2-byte length (65535) is truncated too', () => {
    const q = query('huge.example.net', 'TXT', { udpSize: 1232 });
    const huge = Buffer.alloc(65_530);
    rcodeReply(q, 0).copy(huge);
    const out = finalizeAnswer(q, huge, 'tcp');
    expect(out.length).toBeLessThan(100);
    expect(out.readUInt16BE(2) & Flag.TC).toBe(Flag.TC);
    expect(finalizeAnswer(query('huge.example.net', 'TXT', false), huge, 'tcp').length).toBe(65_530);
  });

  it('an answer that fits the client\'s EDNS size is not truncated', () => {
    const q = query('mid.example.net', 'TXT', { udpSize: 1232 });
    const mid = bigAnswer(q, 8); // ~900 bytes: over 512, under 1232
    expect(mid.length).toBeGreaterThan(512);
    const out = decode(finalizeAnswer(q, mid, 'udp'));
    expect(out.flags! & Flag.TC).toBe(0);
    expect(out.answers!.length).toBe(8);
    const small = query('mid.example.net', 'TXT', { udpSize: 512 });
    expect(decode(finalizeAnswer(small, bigAnswer(small, 8), 'udp')).flags! & Flag.TC).toBe(Flag.TC);
  });

  it('keeps the AD bit of the upstream answer, and sets the client RD', () => {
    const q = query('a.example.net', 'A', { do: true });
    const out = finalizeAnswer(q, withFlags(rcodeReply(q, 0), Flag.AD), 'udp');
    expect(out.readUInt16BE(2) & Flag.AD).toBe(Flag.AD);
    expect(out.readUInt16BE(2) & Flag.RD).toBe(Flag.RD);
    const nord = query('a.example.net', 'A', {}, 0);
    expect(finalizeAnswer(nord, rcodeReply(q, 0), 'udp').readUInt16BE(2) & Flag.RD).toBe(0);
  });

  it('BADVERS: header rcode 0, OPT extended rcode 1 (= 16), version 0', () => {
    const q = query('a.example.net', 'A', { version: 1 });
    const out = finalizeAnswer(q, rcodeReply(q, 0), 'udp', 1);
    expect(out.readUInt16BE(2) & 0xf).toBe(0);
    const d = decode(out);
    const opt = d.additionals!.find((a) => a.type === 'OPT') as unknown as { extendedRcode: number; ednsVersion: number };
    expect(opt.extendedRcode).toBe(1);
    expect(opt.ednsVersion).toBe(0);
  });
});

describe('RFC 8482 minimal ANY answer', () => {
  it('is one HINFO "RFC8482" "" for the question name, class as asked', () => {
    const q = query('Example.COM', 'ANY');
    const d = decode(finalizeAnswer(q, minimalAnyReply(q), 'udp'));
    expect(d.rcode).toBe('NOERROR');
    expect(d.id).toBe(0x1234);
    expect(d.answers).toHaveLength(1);
    const rr = d.answers![0] as dnsPacket.StringAnswer & { data: { cpu: string; os: string } };
    expect(rr).toMatchObject({ name: 'Example.COM', type: 'HINFO', class: 'IN', ttl: 3600 });
    expect(rr.data).toEqual({ cpu: 'RFC8482', os: '' });
  });
});

describe('the query sent upstream', () => {
  it('passes DO and CD, pads to 128, carries only the options asked for', () => {
    const q = query('example.com', 'A', { do: true, options: [{ code: 8, data: Buffer.from([0, 1, 24, 0, 192, 0, 2]) }, { code: 10, data: Buffer.alloc(8) }] }, Flag.RD | Flag.CD);
    const plain = buildUpstreamQuery(q);
    expect(plain.length % 128).toBe(0);
    const p = decode(plain);
    expect(p.id).toBe(0);
    expect(p.flags! & Flag.CD).toBe(Flag.CD);
    const opt = p.additionals!.find((a) => a.type === 'OPT') as dnsPacket.OptAnswer;
    expect(opt.flag_do).toBe(true);
    expect(opt.options.map((o) => o.code)).toEqual([12]);
    const withEcs = buildUpstreamQuery(q, { ednsOptions: [{ code: 8, data: Buffer.from([0, 1, 24, 0, 192, 0, 2]) }] });
    expect(withEcs.length % 128).toBe(0);
    const e = decode(withEcs).additionals!.find((a) => a.type === 'OPT') as dnsPacket.OptAnswer;
    expect(e.options.map((o) => o.code)).toEqual([8, 12]);
    const nodo = decode(buildUpstreamQuery(query('example.com', 'A', false)));
    expect((nodo.additionals!.find((a) => a.type === 'OPT') as dnsPacket.OptAnswer).flag_do).toBe(false);
    expect(nodo.flags! & Flag.CD).toBe(0);
  });
});
