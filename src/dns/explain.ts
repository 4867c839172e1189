/**
 * "Which upstream answered, and how fast?" for `dohd query`: a client on loopback that puts
 * the EDNS option EXPLAIN_OPTION (empty, from the local/experimental range 65001-65534,
 * RFC 6891 §9) in its query gets the same option back in the answer's OPT record, holding
 * `source=upstream upstream=NAME ms=12.3` (or source=cache, pin, ...). Nobody else ever sees it.
 */
import { isIP } from 'node:net';
import type { Query } from './message.js';
import { readHeader, skipName, trailingOptStart } from './wire.js';

export const EXPLAIN_OPTION = 65431;

export function wantsExplain(q: Query): boolean {
  return q.edns?.options.some((o) => o.code === EXPLAIN_OPTION) ?? false;
}

/** `local` (why a local zone answered, "RFC 6761 localhost") travels with its spaces as underscores. */
export function explainText(info: { source: string; upstream?: string; local?: string; ms: number }): string {
  return [
    `source=${info.source}`,
    ...(info.upstream ? [`upstream=${info.upstream}`] : []),
    ...(info.local ? [`local=${info.local.replaceAll(' ', '_')}`] : []),
    `ms=${info.ms.toFixed(1)}`,
  ].join(' ');
}

/** Parses the option's text back into fields. */
export function parseExplain(data: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of data.toString('utf8').split(' ')) {
    const i = part.indexOf('=');
    if (i > 0) out[part.slice(0, i)] = part.slice(i + 1);
  }
  return out;
}

/**
 * Appends an EDNS option to the OPT record of a finished answer, when the OPT record is the
 * last record (where the answer step puts it) and the result stays within `limit` bytes.
 * Returns the answer unchanged otherwise.
 */
export function appendEdnsOption(wire: Buffer, code: number, data: Buffer, limit = 65535): Buffer {
  const h = readHeader(wire);
  if (!h || h.arcount === 0) return wire;
  const optStart = trailingOptStart(wire, h);
  if (optStart < 0) return wire;
  const lastRdlenAt = skipName(wire, optStart) + 8;
  const rdlen = wire.readUInt16BE(lastRdlenAt);
  if (rdlen + 4 + data.length > 0xffff || wire.length + 4 + data.length > limit) return wire;
  const opt = Buffer.alloc(4 + data.length);
  opt.writeUInt16BE(code, 0);
  opt.writeUInt16BE(data.length, 2);
  data.copy(opt, 4);
  const out = Buffer.concat([wire, opt]);
  out.writeUInt16BE(rdlen + opt.length, lastRdlenAt);
  return out;
}

export function isLoopback(address: string): boolean {
  const a = address.replace(/^::ffff:/, '');
  return isIP(a) === 4 ? a.startsWith('127.') : a === '::1';
}
