/**
 * Decoding client queries and building replies, as thin helpers over dns-packet.
 */
import { createRequire } from 'node:module';
import dnsPacket from 'dns-packet';
import { expandName, Flag, HEADER_LEN, headerOnlyReply, questionEnd, Rcode, readHeader, replyFlags, type Header } from './wire.js';

/** dns-packet's table of record type names and numbers. */
export const recordTypes = createRequire(import.meta.url)('dns-packet/types.js') as { toString(type: number): string; toType(name: string): number };

export type Packet = dnsPacket.Packet;
export type Answer = dnsPacket.Answer;

export interface Edns {
  udpSize: number;
  version: number;
  dnssecOk: boolean;
  options: { code: number; data?: Buffer }[];
}

/** A client's query, decoded once at the edge. */
export interface Query {
  header: Header;
  packet: Packet;
  /** The name as the client wrote it, without the trailing dot. */
  name: string;
  /** Lower-cased name: cache, pins and routing key on this. */
  lname: string;
  type: string;
  qtype: number;
  qclass: number;
  /** The raw question section (name, type, class) as received, to echo back byte for byte. */
  question: Buffer;
  edns: Edns | null;
  checkingDisabled: boolean;
  /** `cacheKey` of this question: the cache and query coalescing key on it (with a kept client subnet added). */
  key: string;
}

/**
 * What tells one question's answer from another's: the lower-cased name, type, class, and
 * the two bits that change what an upstream answers (DO, CD). The fast lane writes the same
 * string straight from the wire (dns/fast-query.ts).
 */
export function cacheKey(lname: string, qtype: number, qclass: number, dnssecOk = false, cd = false): string {
  return `${lname}|${qtype}|${qclass}|${dnssecOk ? 1 : 0}${cd ? 1 : 0}`;
}

export type DecodeResult =
  | { ok: true; query: Query }
  /** `reply` is null when nothing must be sent back (unreadable header, or a response packet). */
  | { ok: false; reply: Buffer | null; reason: string };

export function decodeQuery(raw: Buffer): DecodeResult {
  const header = readHeader(raw);
  if (!header) return { ok: false, reply: null, reason: 'short' };
  if (header.qr) return { ok: false, reply: null, reason: 'response' };
  if (header.opcode !== 0) return { ok: false, reply: headerOnlyReply(header, Rcode.NOTIMP), reason: 'opcode' };
  if (header.qdcount !== 1) return { ok: false, reply: headerOnlyReply(header, Rcode.FORMERR), reason: 'qdcount' };
  let packet: Packet;
  try {
    packet = dnsPacket.decode(raw);
  } catch {
    return { ok: false, reply: headerOnlyReply(header, Rcode.FORMERR), reason: 'malformed' };
  }
  const q = packet.questions?.[0];
  const qEnd = questionEnd(raw);
  if (!q || qEnd < 0) return { ok: false, reply: headerOnlyReply(header, Rcode.FORMERR), reason: 'malformed' };
  let edns: Edns | null = null;
  for (const rr of packet.additionals ?? []) {
    if (rr.type === 'OPT') {
      if (edns) return { ok: false, reply: headerOnlyReply(header, Rcode.FORMERR), reason: 'two-opt' };
      const opt = rr as dnsPacket.OptAnswer & { ednsVersion?: number; flags?: number; options?: { code: number; data?: Buffer }[] };
      edns = {
        udpSize: Math.max(512, opt.udpPayloadSize ?? 512),
        version: opt.ednsVersion ?? 0,
        dnssecOk: ((opt.flags ?? 0) & 0x8000) !== 0,
        options: opt.options ?? [],
      };
    }
  }
  const name = q.name.replace(/\.$/, '');
  const lname = name.toLowerCase();
  const qtype = raw.readUInt16BE(qEnd - 4);
  const qclass = raw.readUInt16BE(qEnd - 2);
  const checkingDisabled = (header.flags & Flag.CD) !== 0;
  // A compressed name (a pointer, even into the header) is kept written out in full: the
  // question echoed back and the one sent upstream then need no packet to point into.
  let question = Buffer.from(raw.subarray(HEADER_LEN, qEnd));
  if (hasPointer(raw, HEADER_LEN)) {
    const plain = expandName(raw, HEADER_LEN);
    if (!plain) return { ok: false, reply: headerOnlyReply(header, Rcode.FORMERR), reason: 'malformed' };
    question = Buffer.concat([plain, raw.subarray(qEnd - 4, qEnd)]);
  }
  return {
    ok: true,
    query: {
      header,
      packet,
      name,
      lname,
      type: q.type,
      qtype,
      qclass,
      question,
      edns,
      checkingDisabled,
      key: cacheKey(lname, qtype, qclass, edns?.dnssecOk ?? false, checkingDisabled),
    },
  };
}

/** The name at `off` holds a compression pointer (the name is known to be well formed). */
function hasPointer(raw: Buffer, off: number): boolean {
  for (let l = raw[off]!; l !== 0; l = raw[off]!) {
    if ((l & 0xc0) !== 0) return true;
    off += 1 + l;
  }
  return false;
}

/** A reply carrying only the question and an rcode (SERVFAIL, REFUSED, NOTIMP...). */
export function rcodeReply(q: Query, rcode: number): Buffer {
  const out = Buffer.alloc(HEADER_LEN + q.question.length);
  out.writeUInt16BE(q.header.id, 0);
  out.writeUInt16BE(replyFlags(q.header.flags, rcode & 0xf), 2);
  out.writeUInt16BE(1, 4);
  q.question.copy(out, HEADER_LEN);
  return out;
}

/** The A and AAAA records of these addresses that answer `q` (qtype A, AAAA or ANY), appended to `into`. */
export function addressAnswers(q: Query, v4: readonly string[], v6: readonly string[], ttl: number, into: Answer[] = []): Answer[] {
  if (q.type === 'A' || q.type === 'ANY') for (const ip of v4) into.push({ name: q.name, type: 'A', class: 'IN', ttl, data: ip });
  if (q.type === 'AAAA' || q.type === 'ANY') for (const ip of v6) into.push({ name: q.name, type: 'AAAA', class: 'IN', ttl, data: ip });
  return into;
}

/** A locally built NOERROR answer (pins, hosts): records carry their own TTL. */
export function localReply(q: Query, answers: Answer[], rcode: number = Rcode.NOERROR, authorities: Answer[] = []): Buffer {
  const wire = dnsPacket.encode({
    id: q.header.id,
    type: 'response',
    flags: replyFlags(q.header.flags, Flag.AA | (rcode & 0xf)),
    questions: [{ name: q.name, type: q.type as dnsPacket.RecordType, class: 'IN' }],
    answers,
    authorities,
  });
  // dns-packet owns the rcode bits only through `flags`; write them explicitly to be safe.
  wire.writeUInt16BE((wire.readUInt16BE(2) & ~0xf) | (rcode & 0xf), 2);
  return wire;
}
