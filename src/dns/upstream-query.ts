/**
 * The query dohd sends upstream for a client's query: ID 0 (RFC 8484 §4.1, so HTTP caches
 * can share it), RD set, CD passed through, EDNS(0) with the DO bit passed through, and
 * padded to a multiple of 128 bytes (RFC 8467) so its size says little about the name.
 */
import { Flag } from './wire.js';
import type { Query } from './message.js';

export const PAD_BLOCK = 128;
export const ADVERTISED_UDP_SIZE = 1232;

export interface UpstreamQueryOptions {
  pad?: boolean;
  /** Extra EDNS options to forward (e.g. a client subnet the operator chose to keep). */
  ednsOptions?: { code: number; data: Buffer }[];
}

export function buildUpstreamQuery(q: Query, opts: UpstreamQueryOptions = {}): Buffer {
  const qname = q.question.subarray(0, q.question.length - 4);
  const extra = opts.ednsOptions ?? [];
  const extraLen = extra.reduce((n, o) => n + 4 + o.data.length, 0);
  const base = 12 + q.question.length + 11 + extraLen;
  const pad = opts.pad === false ? -1 : (PAD_BLOCK - ((base + 4) % PAD_BLOCK)) % PAD_BLOCK;
  const rdlen = extraLen + (pad >= 0 ? 4 + pad : 0);
  const out = Buffer.alloc(base + (pad >= 0 ? 4 + pad : 0));
  out.writeUInt16BE(0, 0);
  // AD asks a validating upstream to say whether it validated (RFC 6840 §5.7); the answer
  // step passes AD on only to clients that asked for it themselves.
  out.writeUInt16BE(Flag.RD | Flag.AD | (q.checkingDisabled ? Flag.CD : 0), 2);
  out.writeUInt16BE(1, 4);
  out.writeUInt16BE(1, 10);
  let off = 12;
  // Lower-case the name: upstream HTTP caches then see one key per name.
  for (let i = 0; i < qname.length; ) {
    const len = qname[i]!;
    // decodeQuery writes a compressed name out in full; a pointer or a label running past the
    // name here is a bug upstream of this function, said plainly rather than as a RangeError.
    if (len > 63 || i + 1 + len > qname.length) throw new Error(`question name is not plain labels (byte ${len} at ${i})`);
    out[off++] = len;
    for (let j = 1; j <= len; j++) {
      const c = qname[i + j]!;
      out[off++] = c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
    }
    i += len + 1;
    if (len === 0) break;
  }
  q.question.copy(out, off, q.question.length - 4);
  off += 4;
  out[off++] = 0; // OPT owner: root
  out.writeUInt16BE(41, off);
  out.writeUInt16BE(ADVERTISED_UDP_SIZE, off + 2);
  out.writeUInt32BE(q.edns?.dnssecOk ? 0x8000 : 0, off + 4);
  out.writeUInt16BE(rdlen, off + 8);
  off += 10;
  for (const o of extra) {
    out.writeUInt16BE(o.code, off);
    out.writeUInt16BE(o.data.length, off + 2);
    o.data.copy(out, off + 4);
    off += 4 + o.data.length;
  }
  if (pad >= 0) {
    out.writeUInt16BE(12, off); // EDNS(0) Padding option, RFC 7830
    out.writeUInt16BE(pad, off + 2);
  }
  return out;
}
