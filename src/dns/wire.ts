/**
 * Byte-level helpers on DNS messages (RFC 1035 §4.1), for the few things that are
 * cheaper and safer done in place than by decoding: reading the header of a packet
 * that does not parse, finding the question, and finding every TTL to count it down.
 */
export const HEADER_LEN = 12;

export interface Header {
  id: number;
  flags: number;
  qr: boolean;
  opcode: number;
  rcode: number;
  qdcount: number;
  ancount: number;
  nscount: number;
  arcount: number;
}

export const Flag = {
  QR: 0x8000,
  AA: 0x0400,
  TC: 0x0200,
  RD: 0x0100,
  RA: 0x0080,
  AD: 0x0020,
  CD: 0x0010,
} as const;

export const Rcode = {
  NOERROR: 0,
  FORMERR: 1,
  SERVFAIL: 2,
  NXDOMAIN: 3,
  NOTIMP: 4,
  REFUSED: 5,
} as const;

export function readHeader(buf: Buffer): Header | null {
  if (buf.length < HEADER_LEN) return null;
  const flags = u16(buf, 2);
  return {
    id: u16(buf, 0),
    flags,
    qr: (flags & Flag.QR) !== 0,
    opcode: (flags >> 11) & 0xf,
    rcode: flags & 0xf,
    qdcount: u16(buf, 4),
    ancount: u16(buf, 6),
    nscount: u16(buf, 8),
    arcount: u16(buf, 10),
  };
}

/**
 * Big-endian 16-bit read and write, and a 32-bit read, at an offset the caller has checked:
 * byte operations, without the argument checks of Buffer's readUInt16BE/writeUInt16BE (which
 * cost as much as the read itself on the cache-hit path).
 */
export function u16(buf: Uint8Array, at: number): number {
  return (buf[at]! << 8) | buf[at + 1]!;
}

export function u32(buf: Uint8Array, at: number): number {
  return buf[at]! * 0x1000000 + ((buf[at + 1]! << 16) | (buf[at + 2]! << 8) | buf[at + 3]!);
}

export function setU16(buf: Uint8Array, at: number, v: number): void {
  buf[at] = v >>> 8;
  buf[at + 1] = v;
}

/** Offset just past the name starting at `off`, or -1 when it runs off the end or is malformed. */
export function skipName(buf: Buffer, off: number): number {
  let hops = 0;
  while (off < buf.length) {
    const len = buf[off]!;
    if (len === 0) return off + 1;
    if ((len & 0xc0) === 0xc0) return off + 2 <= buf.length ? off + 2 : -1;
    if ((len & 0xc0) !== 0) return -1;
    off += 1 + len;
    if (++hops > 127) return -1;
  }
  return -1;
}

/**
 * The name starting at `off` written out without compression, by dns-packet's rules (a
 * pointer may only go back, before where the name being read started; at most 254 bytes of
 * labels): the same name dns-packet decodes, its label bytes unchanged. Null where
 * dns-packet would fail. A client may compress its question's name, even into the header
 * (`c0 04`); everything after the decoder then works on this plain form.
 */
export function expandName(buf: Buffer, off: number): Buffer | null {
  const out: number[] = [];
  let limit = off;
  let total = 0;
  for (;;) {
    if (off >= buf.length) return null;
    const len = buf[off]!;
    if (len === 0) {
      out.push(0);
      return Buffer.from(out);
    }
    if ((len & 0xc0) === 0xc0) {
      if (off + 1 >= buf.length) return null;
      const to = ((len & 0x3f) << 8) | buf[off + 1]!;
      if (to >= limit) return null;
      off = limit = to;
      continue;
    }
    if ((len & 0xc0) !== 0) return null;
    if (off + 1 + len > buf.length) return null;
    total += len + 1;
    if (total > 254) return null;
    for (let i = off; i <= off + len; i++) out.push(buf[i]!);
    off += 1 + len;
  }
}

/** Offset just past the (single) question, or -1. */
export function questionEnd(buf: Buffer): number {
  const end = skipName(buf, HEADER_LEN);
  if (end < 0 || end + 4 > buf.length) return -1;
  return end + 4;
}

/** Where each TTL lives in the message, skipping the OPT pseudo-record (whose TTL field holds flags). */
export function ttlOffsets(buf: Buffer): number[] | null {
  const h = readHeader(buf);
  if (!h) return null;
  let off = HEADER_LEN;
  for (let i = 0; i < h.qdcount; i++) {
    off = skipName(buf, off);
    if (off < 0 || off + 4 > buf.length) return null;
    off += 4;
  }
  const out: number[] = [];
  const rrs = h.ancount + h.nscount + h.arcount;
  for (let i = 0; i < rrs; i++) {
    off = skipName(buf, off);
    if (off < 0 || off + 10 > buf.length) return null;
    const type = buf.readUInt16BE(off);
    if (type !== 41) out.push(off + 4);
    const rdlen = buf.readUInt16BE(off + 8);
    off += 10 + rdlen;
    if (off > buf.length) return null;
  }
  return out;
}

export function setId(buf: Buffer, id: number): void {
  buf.writeUInt16BE(id & 0xffff, 0);
}

/**
 * Removes the OPT pseudo-record when it is the last record (where every server puts it),
 * so stored answers carry no EDNS state of their own. Returns the buffer unchanged otherwise.
 */
export function stripTrailingOpt(buf: Buffer): Buffer {
  const h = readHeader(buf);
  if (!h || h.arcount === 0) return buf;
  const lastStart = trailingOptStart(buf, h);
  if (lastStart < 0) return buf;
  const out = Buffer.from(buf.subarray(0, lastStart));
  out.writeUInt16BE(h.arcount - 1, 10);
  return out;
}

/**
 * Where the message's last record starts when it is an OPT pseudo-record that ends the message
 * exactly (every record well-formed), or -1.
 */
export function trailingOptStart(buf: Buffer, h: Header): number {
  let off = HEADER_LEN;
  for (let i = 0; i < h.qdcount; i++) {
    off = skipName(buf, off);
    if (off < 0) return -1;
    off += 4;
  }
  const rrs = h.ancount + h.nscount + h.arcount;
  let lastStart = -1;
  let lastType = -1;
  for (let i = 0; i < rrs; i++) {
    lastStart = off;
    off = skipName(buf, off);
    if (off < 0 || off + 10 > buf.length) return -1;
    lastType = buf.readUInt16BE(off);
    off += 10 + buf.readUInt16BE(off + 8);
    if (off > buf.length) return -1;
  }
  return lastType === 41 && off === buf.length ? lastStart : -1;
}

/**
 * The flags of a reply: QR and RA set, RD copied from the query's flags (RFC 1035 §4.1.1), the
 * rest (opcode, AA, TC, rcode...) from `rest`.
 */
export function replyFlags(queryFlags: number, rest: number): number {
  return (rest & ~Flag.RD) | Flag.QR | Flag.RA | (queryFlags & Flag.RD);
}

/** Builds a 12-byte reply to a packet whose header was readable but whose body was not. */
export function headerOnlyReply(h: Header, rcode: number): Buffer {
  const out = Buffer.alloc(HEADER_LEN);
  out.writeUInt16BE(h.id, 0);
  out.writeUInt16BE(replyFlags(h.flags, (h.opcode << 11) | (rcode & 0xf)), 2);
  return out;
}

/** Bytes of an OPT pseudo-record without options. */
export const OPT_LEN = 11;

/** Writes an OPT record without options (RFC 6891 §6.1.2) at `at`: the root name, type 41 and its fields. */
export function writeOpt(out: Uint8Array, at: number, udpSize: number, dnssecOk: boolean, extendedRcode = 0): void {
  out[at] = 0; // root name
  setU16(out, at + 1, 41);
  setU16(out, at + 3, udpSize);
  out[at + 5] = extendedRcode;
  out[at + 6] = 0; // version
  setU16(out, at + 7, dnssecOk ? 0x8000 : 0);
  setU16(out, at + 9, 0); // no options
}

/** A message as sent over TCP (RFC 1035 §4.2.2): a 2-byte length, then the message. */
export function tcpFrame(msg: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(2 + msg.length);
  frame.writeUInt16BE(msg.length, 0);
  msg.copy(frame, 2);
  return frame;
}
