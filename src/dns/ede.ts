/**
 * Extended DNS Errors (RFC 8914): why an answer is stale, refused or a SERVFAIL of dohd's
 * own, as EDNS option 15 (INFO-CODE and EXTRA-TEXT). Added by the answer step (server/handler.ts)
 * only for clients that sent OPT, and only while the answer still fits the client's size:
 * the text is cut first, then the option left out.
 */
import type { Packet } from './message.js';
import { appendEdnsOption } from './explain.js';

export const EDE_OPTION = 15;

export const EdeCode = {
  OTHER: 0,
  STALE_ANSWER: 3,
  NOT_READY: 14,
  PROHIBITED: 18,
  STALE_NXDOMAIN: 19,
  NO_REACHABLE_AUTHORITY: 22,
  NETWORK_ERROR: 23,
} as const;

/** INFO-CODE names (RFC 8914 §5 and the IANA registry), as dig prints them. */
export const EDE_NAMES: Record<number, string> = {
  0: 'Other',
  1: 'Unsupported DNSKEY Algorithm',
  2: 'Unsupported DS Digest Type',
  3: 'Stale Answer',
  4: 'Forged Answer',
  5: 'DNSSEC Indeterminate',
  6: 'DNSSEC Bogus',
  7: 'Signature Expired',
  8: 'Signature Not Yet Valid',
  9: 'DNSKEY Missing',
  10: 'RRSIGs Missing',
  11: 'No Zone Key Bit Set',
  12: 'NSEC Missing',
  13: 'Cached Error',
  14: 'Not Ready',
  15: 'Blocked',
  16: 'Censored',
  17: 'Filtered',
  18: 'Prohibited',
  19: 'Stale NXDOMAIN Answer',
  20: 'Not Authoritative',
  21: 'Not Supported',
  22: 'No Reachable Authority',
  23: 'Network Error',
  24: 'Invalid Data',
};

export interface Ede {
  code: number;
  text?: string;
}

/** Shared lists for the answers that always say the same (nothing allocated per query). */
export const EDE_STALE: readonly Ede[] = Object.freeze([Object.freeze({ code: EdeCode.STALE_ANSWER })]);
export const EDE_STALE_NXDOMAIN: readonly Ede[] = Object.freeze([Object.freeze({ code: EdeCode.STALE_NXDOMAIN })]);
export const EDE_PROHIBITED: readonly Ede[] = Object.freeze([Object.freeze({ code: EdeCode.PROHIBITED, text: 'source address not allowed (acl)' })]);
export const EDE_TIMED_OUT: readonly Ede[] = Object.freeze([Object.freeze({ code: EdeCode.NO_REACHABLE_AUTHORITY, text: 'all upstreams timed out' })]);
export const EDE_LOOP: readonly Ede[] = Object.freeze([Object.freeze({ code: EdeCode.OTHER, text: 'forwarding loop: an upstream sends queries back to dohd' })]);
export const EDE_OVERLOADED: readonly Ede[] = Object.freeze([Object.freeze({ code: EdeCode.OTHER, text: 'dohd overloaded: too many queries in progress' })]);

/** The EDE options of a decoded upstream answer, or undefined. */
export function edeOf(packet: Packet | undefined): Ede[] | undefined {
  let out: Ede[] | undefined;
  for (const rr of packet?.additionals ?? []) {
    if (rr.type !== 'OPT') continue;
    for (const o of (rr as { options?: { code: number; data?: Buffer }[] }).options ?? []) {
      if (o.code !== EDE_OPTION || !o.data || o.data.length < 2) continue;
      const code = o.data.readUInt16BE(0);
      const text = o.data.length > 2 ? o.data.toString('utf8', 2) : undefined;
      (out ??= []).push(text ? { code, text } : { code });
    }
  }
  return out;
}

/** The reason an upstream failure gives, as EXTRA-TEXT; `upstream` names who failed last. */
const FAILURE_TEXT: Record<string, string> = {
  timeout: 'timed out',
  aborted: 'timed out',
  connect: 'connection failed',
  tls: 'TLS handshake failed',
  // The connection race's verdicts (upstream/verdict.ts).
  intercepted: 'TLS handshake failed',
  blocked_sni: 'TLS handshake reset (blocked by SNI?)',
  unreachable: 'connection failed (no answer)',
  reset: 'connection reset',
  goaway: 'connection closed (GOAWAY)',
  http_status: 'HTTP error status',
  content_type: 'wrong content type',
  oversized: 'answer too large',
  malformed: 'malformed answer',
  wrong_question: 'answer for another question',
  overloaded: 'overloaded',
  loop: 'forwarding loop',
};

/**
 * The EDE for a SERVFAIL dohd makes itself because its upstreams failed: 22 (No Reachable
 * Authority) when every one timed out, else 23 (Network Error) naming the last failure.
 */
export function edeForFailure(err: unknown): Ede[] {
  const e = err as { reason?: string; upstream?: string; allTimedOut?: boolean; message?: string } | null;
  const reason = e?.reason ?? 'other';
  if (e?.allTimedOut || reason === 'timeout' || reason === 'aborted') return [{ code: EdeCode.NO_REACHABLE_AUTHORITY, text: 'all upstreams timed out' }];
  const what = FAILURE_TEXT[reason] ?? e?.message ?? 'failed';
  return [{ code: EdeCode.NETWORK_ERROR, text: e?.upstream ? `${e.upstream}: ${what}` : `upstreams failed: ${what}` }];
}

/**
 * Appends each EDE option to a finished answer whose OPT record is last, keeping it within
 * `limit` bytes: a text that does not fit is cut (at a character boundary), and an option
 * that does not fit even without text is left out.
 */
export function appendEde(reply: Buffer, list: readonly Ede[], limit: number): Buffer {
  let out = reply;
  for (const ede of list) {
    const room = limit - out.length - 4 - 2;
    if (room < 0) break;
    let text: Buffer = ede.text ? Buffer.from(ede.text, 'utf8') : EMPTY;
    if (text.length > room) text = cutUtf8(text, room);
    const data = Buffer.allocUnsafe(2 + text.length);
    data.writeUInt16BE(ede.code & 0xffff, 0);
    text.copy(data, 2);
    out = appendEdnsOption(out, EDE_OPTION, data, limit);
  }
  return out;
}

const EMPTY = Buffer.alloc(0);

/** The first `max` bytes of UTF-8 text, never splitting a character. */
function cutUtf8(b: Buffer, max: number): Buffer {
  let end = max;
  while (end > 0 && (b[end]! & 0xc0) === 0x80) end--;
  return b.subarray(0, end);
}
