/**
 * The fast lane's decoder against the full one: whenever parseQueryFast returns a query,
 * decodeQuery (dns-packet) must accept the packet and read the same query from it; the
 * common shapes of a query must take the fast lane.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import dnsPacket from 'dns-packet';
import { parseQueryFast } from '../../../src/dns/fast-query.js';
import { decodeQuery, type Query } from '../../../src/dns/message.js';
import { buildUpstreamQuery } from '../../../src/dns/upstream-query.js';

const RUNS = Number(process.env.FC_RUNS ?? 3000);

/** The parts of a query the pipeline reads, in a comparable form. */
function view(q: Query) {
  return {
    header: q.header,
    name: q.name,
    lname: q.lname,
    type: q.type,
    qtype: q.qtype,
    qclass: q.qclass,
    question: q.question.toString('hex'),
    edns: q.edns && {
      udpSize: q.edns.udpSize,
      version: q.edns.version,
      dnssecOk: q.edns.dnssecOk,
      options: q.edns.options.map((o) => ({ code: o.code, data: o.data?.toString('hex') })),
    },
    checkingDisabled: q.checkingDisabled,
    key: q.key,
  };
}

function agree(raw: Buffer): 'fast' | 'slow' {
  const fast = parseQueryFast(raw);
  if (!fast) return 'slow';
  const full = decodeQuery(raw);
  expect(full.ok, `fast lane took a packet decodeQuery rejects: ${raw.toString('hex')}`).toBe(true);
  if (!full.ok) return 'fast';
  expect(view(fast)).toEqual(view(full.query));
  expect(fast.packet).toEqual(full.query.packet);
  return 'fast';
}

// ---- generators: packets built byte by byte, so that every odd corner can occur ----------

const anyLabel = fc.uint8Array({ minLength: 1, maxLength: 63 });
const dnsLabel = fc.stringMatching(/^[A-Za-z0-9_-]{1,20}$/).map((s) => Buffer.from(s, 'latin1'));
const longLabel = fc.stringMatching(/^[a-z0-9]{55,63}$/).map((s) => Buffer.from(s, 'latin1'));
const labels = fc.oneof(
  { weight: 5, arbitrary: fc.array(fc.oneof({ weight: 5, arbitrary: dnsLabel }, { weight: 1, arbitrary: anyLabel }), { maxLength: 8 }) },
  // Names around dns-packet's 254-byte limit.
  { weight: 1, arbitrary: fc.tuple(fc.array(longLabel, { minLength: 3, maxLength: 4 }), fc.array(fc.stringMatching(/^[a-z]{1,4}$/).map((s) => Buffer.from(s)), { maxLength: 4 })).map(([a, b]) => [...a, ...b]) },
);

function nameWire(ls: Uint8Array[]): Buffer {
  return Buffer.concat([...ls.flatMap((l) => [Buffer.from([l.length]), Buffer.from(l)]), Buffer.from([0])]);
}

const option = fc.record({
  code: fc.oneof(fc.constantFrom(8, 10, 11, 12, 14, 15), fc.integer({ min: 0, max: 0xffff })),
  data: fc.uint8Array({ maxLength: 24 }),
});

const opt = fc.record({
  owner: fc.oneof({ weight: 8, arbitrary: fc.constant(Buffer.from([0])) }, { weight: 1, arbitrary: labels.map(nameWire) }),
  type: fc.oneof({ weight: 8, arbitrary: fc.constant(41) }, { weight: 1, arbitrary: fc.constantFrom(1, 16, 28) }),
  udpSize: fc.integer({ min: 0, max: 0xffff }),
  extRcode: fc.integer({ min: 0, max: 255 }),
  version: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 255 })),
  flags: fc.integer({ min: 0, max: 0xffff }),
  options: fc.array(option, { maxLength: 4 }),
  rdlenDelta: fc.oneof({ weight: 8, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: -6, max: 6 }) }),
});

function optWire(o: typeof opt extends fc.Arbitrary<infer T> ? T : never): Buffer {
  const opts = Buffer.concat(
    o.options.map((x) => {
      const h = Buffer.alloc(4);
      h.writeUInt16BE(x.code, 0);
      h.writeUInt16BE(x.data.length, 2);
      return Buffer.concat([h, Buffer.from(x.data)]);
    }),
  );
  const fixed = Buffer.alloc(10);
  fixed.writeUInt16BE(o.type, 0);
  fixed.writeUInt16BE(o.udpSize, 2);
  fixed[4] = o.extRcode;
  fixed[5] = o.version;
  fixed.writeUInt16BE(o.flags, 6);
  fixed.writeUInt16BE(Math.max(0, Math.min(0xffff, opts.length + o.rdlenDelta)), 8);
  return Buffer.concat([o.owner, fixed, opts]);
}

const packet = fc
  .record({
    id: fc.integer({ min: 0, max: 0xffff }),
    flags: fc.oneof({ weight: 4, arbitrary: fc.constantFrom(0x0100, 0x0110, 0x0120, 0, 0x0130) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xffff }) }),
    counts: fc.oneof(
      { weight: 6, arbitrary: fc.constant(null) },
      { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 3 })) },
    ),
    name: labels,
    qtype: fc.oneof(fc.constantFrom(1, 28, 16, 15, 255, 65, 0), fc.integer({ min: 0, max: 0xffff })),
    qclass: fc.oneof({ weight: 6, arbitrary: fc.constant(1) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 0xffff }) }),
    opt: fc.option(opt, { nil: null }),
    trailing: fc.oneof({ weight: 8, arbitrary: fc.constant(new Uint8Array()) }, { weight: 1, arbitrary: fc.uint8Array({ maxLength: 12 }) }),
  })
  .map((p) => {
    const h = Buffer.alloc(12);
    h.writeUInt16BE(p.id, 0);
    h.writeUInt16BE(p.flags, 2);
    const [qd, an, ns, ar] = p.counts ?? [1, 0, 0, p.opt ? 1 : 0];
    h.writeUInt16BE(qd, 4);
    h.writeUInt16BE(an, 6);
    h.writeUInt16BE(ns, 8);
    h.writeUInt16BE(ar, 10);
    const tq = Buffer.alloc(4);
    tq.writeUInt16BE(p.qtype, 0);
    tq.writeUInt16BE(p.qclass, 2);
    return Buffer.concat([h, nameWire(p.name), tq, p.opt ? optWire(p.opt) : Buffer.alloc(0), Buffer.from(p.trailing)]);
  });

const mutated = fc.tuple(packet, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), fc.option(fc.nat(), { nil: null })).map(([wire, sets, cut]) => {
  const b = Buffer.from(wire);
  for (const [at, v] of sets) if (b.length) b[at % b.length] = v;
  return cut === null || b.length === 0 ? b : b.subarray(0, cut % (b.length + 1));
});

describe('parseQueryFast', () => {
  it('agrees with decodeQuery on arbitrary packets', () => {
    let fast = 0;
    fc.assert(
      fc.property(packet, (raw) => {
        if (agree(raw) === 'fast') fast++;
      }),
      { numRuns: RUNS },
    );
    // The generator mostly makes ordinary queries: most of them must take the fast lane.
    expect(fast).toBeGreaterThan(RUNS / 4);
  });

  it('agrees with decodeQuery on mutated and truncated packets', () => {
    fc.assert(
      fc.property(mutated, (raw) => {
        agree(raw);
      }),
      { numRuns: RUNS },
    );
  });

  it('agrees with decodeQuery on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 80 }), (bytes) => {
        agree(Buffer.from(bytes));
      }),
      { numRuns: RUNS },
    );
  });

  it('takes the fast lane for queries as dig, dnsperf and stub resolvers send them', () => {
    const cases: dnsPacket.Packet[] = [
      { type: 'query', id: 1, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name: 'example.com', type: 'A', class: 'IN' }] },
      { type: 'query', id: 2, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name: 'WwW.ExAmPlE.cOm', type: 'AAAA', class: 'IN' }] },
      {
        type: 'query',
        id: 3,
        flags: dnsPacket.RECURSION_DESIRED | dnsPacket.AUTHENTIC_DATA,
        questions: [{ name: 'go.dev', type: 'HTTPS' as 'TXT', class: 'IN' }],
        // dig: EDNS 1232 with DO and a client cookie.
        additionals: [{ name: '.', type: 'OPT', udpPayloadSize: 1232, flags: dnsPacket.DNSSEC_OK, options: [{ code: 10, data: Buffer.alloc(8, 7) }] } as never],
      },
      { type: 'query', id: 4, flags: 0, questions: [{ name: '.', type: 'NS', class: 'IN' }], additionals: [{ name: '.', type: 'OPT', udpPayloadSize: 4096 } as never] },
    ];
    for (const p of cases) {
      const raw = dnsPacket.encode(p);
      expect(agree(raw)).toBe('fast');
    }
    const q = parseQueryFast(dnsPacket.encode(cases[1]!))!;
    expect(q.name).toBe('WwW.ExAmPlE.cOm');
    expect(q.lname).toBe('www.example.com');
    expect(q.type).toBe('AAAA');
    const root = parseQueryFast(dnsPacket.encode(cases[3]!))!;
    expect(root.name).toBe('');
    expect(root.edns).toEqual({ udpSize: 4096, version: 0, dnssecOk: false, options: [] });
  });

  it('leaves what it does not read exactly to decodeQuery', () => {
    const base = dnsPacket.encode({ type: 'query', id: 9, flags: 0x100, questions: [{ name: 'a.example', type: 'A', class: 'IN' }] });
    const response = Buffer.from(base);
    response[2]! |= 0x80;
    const notify = Buffer.from(base);
    notify[2] = (4 << 3) | 1;
    const twoQuestions = Buffer.from(base);
    twoQuestions[5] = 2;
    const dotted = Buffer.from([...base.subarray(0, 12), 3, 0x61, 0x2e, 0x62, 0, 0, 1, 0, 1]);
    const utf8 = Buffer.from([...base.subarray(0, 12), 2, 0xc3, 0xa9, 0, 0, 1, 0, 1]);
    const pointer = Buffer.from([...base.subarray(0, 12), 0xc0, 0x00, 0, 1, 0, 1]);
    for (const raw of [response, notify, twoQuestions, dotted, utf8, pointer, base.subarray(0, 20)]) expect(parseQueryFast(raw)).toBeNull();
  });
});

// ---- against dns-packet: every query decodes the same on both paths, or is answered FORMERR ----

/** Names that use compression: labels, then a pointer anywhere (the header, the name itself, past the end). */
const compressed = fc
  .tuple(packet, fc.array(dnsLabel, { maxLength: 3 }), fc.oneof(fc.integer({ min: 0, max: 11 }), fc.integer({ min: 0, max: 0x3fff })), fc.integer({ min: 0, max: 0xffff }))
  .map(([wire, ls, to, qtype]) => {
    const h = Buffer.from(wire.subarray(0, 12));
    h.writeUInt16BE(1, 4);
    const tq = Buffer.alloc(4);
    tq.writeUInt16BE(qtype, 0);
    tq.writeUInt16BE(1, 2);
    return Buffer.concat([h, ...ls.flatMap((l) => [Buffer.from([l.length]), l]), Buffer.from([0xc0 | (to >> 8), to & 0xff]), tq]);
  });

/** The outcome the three readers must agree on: dns-packet's, the full decoder's, the fast lane's, and the query sent upstream. */
function againstDnsPacket(raw: Buffer): 'ok' | 'formerr' | 'other' {
  const full = decodeQuery(raw);
  const fast = parseQueryFast(raw);
  if (!full.ok) {
    expect(fast, `fast lane took a packet decodeQuery rejects: ${raw.toString('hex')}`).toBeNull();
    if (full.reply === null) return 'other';
    const rcode = full.reply.readUInt16BE(2) & 0xf;
    return rcode === 1 ? 'formerr' : 'other';
  }
  const q = full.query;
  // dns-packet reads the same question.
  const ref = dnsPacket.decode(raw);
  expect(q.name).toBe(ref.questions![0]!.name.replace(/\.$/, ''));
  expect(q.type).toBe(ref.questions![0]!.type);
  if (fast) expect(view(fast)).toEqual(view(q));
  // The question kept is plain labels (no pointer) naming the same thing, and the query sent
  // upstream (both paths' query objects) decodes to the lower-cased question.
  const again = dnsPacket.decode(Buffer.concat([Buffer.from([0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]), q.question]));
  expect(again.questions![0]!.name).toBe(ref.questions![0]!.name);
  for (const which of fast ? [q, fast] : [q]) {
    const up = dnsPacket.decode(buildUpstreamQuery(which));
    expect(up.questions![0]!.name).toBe(upperAsciiLowered(ref.questions![0]!.name));
    expect(up.questions![0]!.type).toBe(q.type);
  }
  return 'ok';
}

/** dns-packet's name with ASCII letters lower-cased (what the upstream query carries). */
function upperAsciiLowered(s: string): string {
  return s.replace(/[A-Z]/g, (c) => c.toLowerCase());
}

describe('every query decodes the same on the fast and full paths (and as dns-packet reads it), or is answered FORMERR', () => {
  it('compressed question names, pointers anywhere', () => {
    const seen = { ok: 0, formerr: 0, other: 0 };
    fc.assert(
      fc.property(compressed, (raw) => {
        seen[againstDnsPacket(raw)]++;
      }),
      // A fixed seed: the share of each outcome below is a property of the generator, not of luck.
      { numRuns: RUNS, seed: 0x5eed },
    );
    // Both outcomes must occur: pointers into the header decode, pointers forward do not.
    expect(seen.ok).toBeGreaterThan(RUNS / 20);
    expect(seen.formerr).toBeGreaterThan(RUNS / 20);
  });

  it('arbitrary, mutated and random packets', () => {
    fc.assert(
      fc.property(fc.oneof(packet, mutated, fc.uint8Array({ maxLength: 80 }).map((b) => Buffer.from(b))), (raw) => {
        againstDnsPacket(raw);
      }),
      { numRuns: RUNS },
    );
  });

  it('the packet from issue 18: abc with a pointer to offset 4', () => {
    const raw = Buffer.from('12340100000100000000000003616263c00400010001', 'hex');
    expect(againstDnsPacket(raw)).toBe('ok');
    const full = decodeQuery(raw);
    expect(full.ok && full.query.question.toString('hex')).toBe('036162630000010001');
  });
});
