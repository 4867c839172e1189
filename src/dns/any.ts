/**
 * The minimal answer to qtype ANY (RFC 8482 §4.2): one synthesized HINFO record whose CPU
 * is "RFC8482" and whose OS is empty. Built from the client's question bytes (a compression
 * pointer names the owner), so no name is ever re-encoded.
 */
import type { Query } from './message.js';
import { Flag, HEADER_LEN } from './wire.js';

export const QTYPE_ANY = 255;
export const QTYPE_HINFO = 13;
export const ANY_HINFO_TTL = 3600;

const CPU = Buffer.from('RFC8482', 'ascii');

export function minimalAnyReply(q: Query, ttl = ANY_HINFO_TTL): Buffer {
  const rdata = 1 + CPU.length + 1; // <character-string CPU><character-string OS="">
  const out = Buffer.alloc(HEADER_LEN + q.question.length + 12 + rdata);
  out.writeUInt16BE(q.header.id, 0);
  out.writeUInt16BE(Flag.QR | (q.header.flags & Flag.RD) | Flag.RA, 2);
  out.writeUInt16BE(1, 4); // QDCOUNT
  out.writeUInt16BE(1, 6); // ANCOUNT
  q.question.copy(out, HEADER_LEN);
  let off = HEADER_LEN + q.question.length;
  out.writeUInt16BE(0xc000 | HEADER_LEN, off); // owner: the question's name
  out.writeUInt16BE(QTYPE_HINFO, off + 2);
  out.writeUInt16BE(q.qclass, off + 4);
  out.writeUInt32BE(ttl, off + 6);
  out.writeUInt16BE(rdata, off + 10);
  off += 12;
  out[off++] = CPU.length;
  CPU.copy(out, off);
  off += CPU.length;
  out[off] = 0;
  return out;
}
