/**
 * The answer step: turn a stage's result into the bytes the client gets.
 * Sets the client's ID, echoes its question byte for byte (case included), adds our
 * OPT record when the client spoke EDNS, and truncates (TC=1) what does not fit in UDP.
 */
import { WireQuery } from './fast-query.js';
import type { Query } from './message.js';
import { ADVERTISED_UDP_SIZE } from './upstream-query.js';
import { Flag, HEADER_LEN, OPT_LEN, questionEnd, replyFlags, setU16, skipName, u16, writeOpt } from './wire.js';

export const CLASSIC_UDP_SIZE = 512;
export const MAX_MESSAGE = 0xffff;

/** Largest UDP answer this client may get: 512 without EDNS, else its size capped at 1232 (DNS Flag Day 2020). */
export function udpLimit(q: Query): number {
  if (!q.edns) return CLASSIC_UDP_SIZE;
  return Math.min(Math.max(q.edns.udpSize, CLASSIC_UDP_SIZE), ADVERTISED_UDP_SIZE);
}

/**
 * `owned`: `wire` is a copy made for this answer alone (a cache rendering), so when nothing
 * has to be appended it is patched in place instead of copied once more.
 */
export function finalizeAnswer(q: Query, wire: Buffer, transport: 'udp' | 'tcp', extendedRcode = 0, owned = false): Buffer {
  const edns = q.edns;
  const total = wire.length + (edns ? OPT_LEN : 0);
  // Over TCP the 2-byte length prefix caps a message at 65535 bytes.
  if (total > (transport === 'udp' ? udpLimit(q) : MAX_MESSAGE)) return truncated(q, wire, transport, extendedRcode);
  if (owned && !edns) {
    patchHeader(wire, q, wire);
    return wire;
  }
  const out = Buffer.allocUnsafe(total);
  out.set(wire);
  patchHeader(out, q, wire);
  if (edns) {
    writeOpt(out, wire.length, ADVERTISED_UDP_SIZE, edns.dnssecOk, extendedRcode);
    setU16(out, 10, u16(out, 10) + 1);
  }
  return out;
}

/**
 * The reply's flags: RD echoed, QR and RA set, and AD kept only for a client that set AD or
 * DO in its query (RFC 6840 §5.7-5.8; dohd always asks its upstreams with AD).
 */
function clientFlags(q: Query, answerFlags: number): number {
  const f = replyFlags(q.header.flags, answerFlags);
  return (q.header.flags & Flag.AD) !== 0 || q.edns?.dnssecOk === true ? f : f & ~Flag.AD;
}

function patchHeader(out: Buffer, q: Query, original: Buffer): void {
  setU16(out, 0, q.header.id);
  setU16(out, 2, clientFlags(q, u16(out, 2)));
  // Same question, same length: copy the client's bytes so its letter case comes back (0x20 randomisation).
  // A query read by the fast lane still has its question in the client's packet: no slice of it is made.
  let src: Buffer;
  let start: number;
  let end: number;
  if (q instanceof WireQuery) {
    src = q.raw;
    start = HEADER_LEN;
    end = q.questionEnd;
  } else {
    src = q.question;
    start = 0;
    end = src.length;
  }
  const qlen = end - start;
  if (original.length >= HEADER_LEN + qlen && original[4] === 0 && original[5] === 1 && compareQuestion(original, src, start, end) === CASE_DIFFERS) {
    src.copy(out, HEADER_LEN, start, end);
  }
}

const DIFFERENT = 0;
const SAME = 1;
const CASE_DIFFERS = 2;

/** How a[HEADER_LEN, ...) compares with b[start, end): different, the same, or the same but for ASCII letter case. */
function compareQuestion(a: Buffer, b: Buffer, start: number, end: number): number {
  let result = SAME;
  for (let i = start, j = HEADER_LEN; i < end; i++, j++) {
    const x = a[j]!;
    const y = b[i]!;
    if (x === y) continue;
    if ((x | 0x20) !== (y | 0x20)) return DIFFERENT;
    result = CASE_DIFFERS;
  }
  return result;
}

/**
 * What fits of an answer too large for the client, with TC=1: the header, the question and
 * the answer section's first records, whole (the addresses, for a client such as musl that
 * never retries over TCP), then our OPT. Authority and additional records are left out.
 * Clients that can retry over TCP do so on TC.
 */
function truncated(q: Query, wire: Buffer, transport: 'udp' | 'tcp', extendedRcode: number): Buffer {
  const limit = (transport === 'udp' ? udpLimit(q) : MAX_MESSAGE) - (q.edns ? OPT_LEN : 0);
  let end = questionEnd(wire);
  let kept = 0;
  if (end < 0 || end > limit || u16(wire, 4) !== 1) return emptyTruncated(q, wire, extendedRcode);
  const ancount = u16(wire, 6);
  for (let i = 0; i < ancount; i++) {
    let off = skipName(wire, end);
    if (off < 0 || off + 10 > wire.length) break;
    off += 10 + u16(wire, off + 8);
    if (off > limit || off > wire.length) break;
    end = off;
    kept++;
  }
  const out = Buffer.allocUnsafe(end + (q.edns ? OPT_LEN : 0));
  wire.copy(out, 0, 0, end);
  patchHeader(out, q, wire);
  setU16(out, 2, u16(out, 2) | Flag.TC);
  setU16(out, 6, kept);
  setU16(out, 8, 0);
  setU16(out, 10, 0);
  if (q.edns) {
    writeOpt(out, end, ADVERTISED_UDP_SIZE, q.edns.dnssecOk, extendedRcode);
    setU16(out, 10, 1);
  }
  return out;
}

/** Header, question and OPT only, with TC=1 (an answer whose own question cannot be read). */
function emptyTruncated(q: Query, wire: Buffer, extendedRcode: number): Buffer {
  const qlen = q.question.length;
  const out = Buffer.alloc(HEADER_LEN + qlen + (q.edns ? OPT_LEN : 0));
  setU16(out, 0, q.header.id);
  setU16(out, 2, clientFlags(q, u16(wire, 2) | Flag.TC));
  setU16(out, 4, 1);
  q.question.copy(out, HEADER_LEN);
  if (q.edns) {
    writeOpt(out, HEADER_LEN + qlen, ADVERTISED_UDP_SIZE, q.edns.dnssecOk, extendedRcode);
    setU16(out, 10, 1);
  }
  return out;
}
