/**
 * The fast lane's decoder: reads a client query straight from the wire — the header, the
 * one question and an optional OPT record — without dns-packet, for the shape nearly every
 * query has. Anything else (name compression, labels holding dots or non-ASCII bytes,
 * answer or authority records, an additional record that is not a plain OPT, EDNS options
 * dns-packet decodes specially and might choke on) gives null, and the caller falls back to
 * `decodeQuery`, which decides as it always did.
 *
 * Whenever this returns a query, `decodeQuery` returns an equal one (property-tested): the
 * same name, lower-cased name, type, class, question bytes, EDNS and flags. The dns-packet
 * form (`packet`) and the type's name are only worked out when something asks for them.
 */
import dnsPacket from 'dns-packet';
import { recordTypes, type Edns, type Packet, type Query } from './message.js';
import { Flag, HEADER_LEN, readHeader, type Header } from './wire.js';

/** OPT pseudo-record type (RFC 6891). */
const OPT = 41;
/** dns-packet's own limit on a name: the label bytes and their length bytes, at most 254. */
const MAX_NAME_WIRE = 254;
/** The cache key is written here: the name (at most 253 characters) and `|65535|65535|11`. */
const scratch = Buffer.allocUnsafe(MAX_NAME_WIRE + 16);
const PIPE = 0x7c;
const ZERO = 0x30;

/** A query read from the wire; its name's text, `packet` and `type` are worked out on first use. */
export class WireQuery implements Query {
  private decoded: Packet | undefined;
  private typeName: string | undefined;
  private questionBytes: Buffer | undefined;
  private lower: string | undefined;
  private text: string | undefined;

  constructor(
    /** The client's packet: its question is raw[HEADER_LEN, questionEnd). */
    readonly raw: Buffer,
    readonly header: Header,
    /** `cacheKey(lname, qtype, qclass, dnssecOk, cd)`, written straight from the wire in one piece. */
    readonly key: string,
    /** Characters of the lower-cased name at the start of `key`. */
    readonly nameLength: number,
    /** The name as written holds upper-case letters. */
    private readonly mixedCase: boolean,
    readonly qtype: number,
    readonly qclass: number,
    readonly questionEnd: number,
    public edns: Edns | null,
    readonly checkingDisabled: boolean,
  ) {}

  get lname(): string {
    return (this.lower ??= this.key.slice(0, this.nameLength));
  }

  get name(): string {
    return (this.text ??= this.mixedCase ? nameText(this.raw, this.nameLength) : this.lname);
  }

  get question(): Buffer {
    return (this.questionBytes ??= this.raw.subarray(HEADER_LEN, this.questionEnd));
  }

  get packet(): Packet {
    if (this.decoded === undefined) {
      // dns-packet reports the bytes it read in a global: whoever decoded last must still find theirs.
      const decode = dnsPacket.decode as { bytes?: number };
      const bytes = decode.bytes;
      this.decoded = dnsPacket.decode(this.raw);
      decode.bytes = bytes;
    }
    return this.decoded;
  }

  get type(): string {
    return (this.typeName ??= recordTypes.toString(this.qtype));
  }
}

/**
 * The query, or null when this packet needs the full decoder (`decodeQuery`).
 *
 * A cache hit needs nothing of the name but the cache key, so the key is all that is built
 * here: the lower-cased name and the rest of `cacheKey` written into one buffer and read out
 * as one flat string (a key built by concatenation is a tree of pieces that every Map lookup
 * would first have to flatten). The name's own text is read again only if a stage asks.
 */
export function parseQueryFast(raw: Buffer): Query | null {
  const len = raw.length;
  if (len < HEADER_LEN + 5) return null;
  // QR=0 and OPCODE=0 (QUERY); exactly one question; no answer or authority records.
  if ((raw[2]! & 0xf8) !== 0) return null;
  if (raw[4] !== 0 || raw[5] !== 1 || raw[6] !== 0 || raw[7] !== 0 || raw[8] !== 0 || raw[9] !== 0 || raw[10] !== 0) return null;
  const arcount = raw[11]!;
  if (arcount > 1) return null;

  // The name: plain labels only (no pointers), bytes below 0x80 and no dots inside a label,
  // so that its text is exactly what dns-packet's UTF-8 decoding gives.
  let off = HEADER_LEN;
  let n = 0;
  let total = 0;
  let upper = false;
  for (;;) {
    if (off >= len) return null;
    const l = raw[off]!;
    if (l === 0) break;
    if (l > 63) return null;
    total += l + 1;
    if (total > MAX_NAME_WIRE || off + 1 + l > len) return null;
    if (n > 0) scratch[n++] = 0x2e;
    for (let i = off + 1, end = off + 1 + l; i < end; i++) {
      const c = raw[i]!;
      if (c >= 0x80 || c === 0x2e) return null;
      if (c >= 0x41 && c <= 0x5a) {
        upper = true;
        scratch[n++] = c | 0x20;
      } else scratch[n++] = c;
    }
    off += 1 + l;
  }
  off += 1;
  if (off + 4 > len) return null;
  const qtype = (raw[off]! << 8) | raw[off + 1]!;
  const qclass = (raw[off + 2]! << 8) | raw[off + 3]!;
  const qEnd = off + 4;

  let edns: Edns | null = null;
  if (arcount === 1) {
    edns = readOpt(raw, qEnd);
    if (!edns) return null;
  }
  const header = readHeader(raw)!;
  const cd = (header.flags & Flag.CD) !== 0;
  // The rest of cacheKey(lname, qtype, qclass, dnssecOk, cd): `|qtype|qclass|<do><cd>`.
  let k = n;
  scratch[k++] = PIPE;
  k = writeDecimal(qtype, k);
  scratch[k++] = PIPE;
  k = writeDecimal(qclass, k);
  scratch[k++] = PIPE;
  scratch[k++] = edns?.dnssecOk ? ZERO + 1 : ZERO;
  scratch[k++] = cd ? ZERO + 1 : ZERO;
  const key = scratch.toString('latin1', 0, k);
  return new WireQuery(raw, header, key, n, upper, qtype, qclass, qEnd, edns, cd);
}

/** Writes `v` (0-65535) in decimal into scratch at `at`; returns the offset after it. */
function writeDecimal(v: number, at: number): number {
  let digits = 1;
  for (let x = v; x >= 10; x = (x / 10) | 0) digits++;
  for (let i = at + digits - 1, x = v; i >= at; i--, x = (x / 10) | 0) scratch[i] = ZERO + (x % 10);
  return at + digits;
}

/** The text of the name at the start of a question parseQueryFast accepted (`length` characters), letter case kept. */
function nameText(raw: Buffer, length: number): string {
  const out = Buffer.allocUnsafe(length);
  let off = HEADER_LEN;
  let n = 0;
  for (let l = raw[off]!; l !== 0; l = raw[off]!) {
    if (n > 0) out[n++] = 0x2e;
    raw.copy(out, n, off + 1, off + 1 + l);
    n += l;
    off += 1 + l;
  }
  return out.toString('latin1', 0, n);
}

/** An OPT record owned by the root starting at `off`, its options exactly filling its data; else null. */
function readOpt(raw: Buffer, off: number): Edns | null {
  const len = raw.length;
  if (off + 11 > len || raw[off] !== 0) return null;
  if (((raw[off + 1]! << 8) | raw[off + 2]!) !== OPT) return null;
  const udpSize = (raw[off + 3]! << 8) | raw[off + 4]!;
  const version = raw[off + 6]!;
  const flags = (raw[off + 7]! << 8) | raw[off + 8]!;
  const rdlen = (raw[off + 9]! << 8) | raw[off + 10]!;
  let p = off + 11;
  const end = p + rdlen;
  if (end > len) return null;
  const options: { code: number; data?: Buffer }[] = [];
  while (p < end) {
    if (p + 4 > end) return null;
    const code = (raw[p]! << 8) | raw[p + 1]!;
    const olen = (raw[p + 2]! << 8) | raw[p + 3]!;
    if (p + 4 + olen > end) return null;
    // Options dns-packet decodes field by field, read here only where that cannot fail.
    if (code === 8 && olen < 4) return null;
    if (code === 11 && olen === 1) return null;
    if (code === 14 && olen % 2 !== 0) return null;
    options.push({ code, data: raw.subarray(p + 4, p + 4 + olen) });
    p += 4 + olen;
  }
  return { udpSize: Math.max(512, udpSize), version, dnssecOk: (flags & 0x8000) !== 0, options };
}
