/** Looking a name up (A and AAAA) at one plain DNS server, or through DoH upstreams. */
import { performance } from 'node:perf_hooks';
import { buildClientQuery, DnsClientError, exchange } from '../dns/client.js';
import { decodeQuery } from '../dns/message.js';
import { buildUpstreamQuery } from '../dns/upstream-query.js';
import { asUpstreamError } from '../upstream/errors.js';
import type { Strategy } from '../upstream/strategies/strategy.js';
import type { Lookup, LookupStatus } from './types.js';

type Rr = { type: string; data?: unknown };

function fromRcode(rcode: number): LookupStatus {
  return rcode === 3 ? 'nxdomain' : rcode === 2 ? 'servfail' : rcode === 5 ? 'refused' : rcode === 0 ? 'nodata' : 'error';
}

/** A and AAAA answers combined: addresses if either has some, else the more telling failure. */
function combine(parts: Lookup[], started: number): Lookup {
  const addresses = [...new Set(parts.flatMap((p) => p.addresses))];
  const ms = performance.now() - started;
  if (addresses.length) return { status: 'ok', addresses, ms };
  const order: LookupStatus[] = ['nxdomain', 'servfail', 'refused', 'timeout', 'unreachable', 'error', 'nodata'];
  const worst = order.find((st) => parts.some((p) => p.status === st)) ?? 'error';
  const detail = parts.find((p) => p.status === worst)?.detail;
  return { status: worst, addresses: [], ...(detail ? { detail } : {}), ms };
}

function addressesOf(answers: Rr[] | undefined): string[] {
  return (answers ?? []).filter((a) => a.type === 'A' || a.type === 'AAAA').map((a) => String(a.data));
}

export async function lookupPlain(server: string, port: number, name: string, timeoutMs: number): Promise<Lookup> {
  const started = performance.now();
  const one = async (type: 'A' | 'AAAA'): Promise<Lookup> => {
    try {
      const r = await exchange(buildClientQuery(`${name}.`, type).wire, { host: server, port, timeoutMs });
      const rcode = r.wire.readUInt16BE(2) & 0xf;
      const addresses = rcode === 0 ? addressesOf(r.packet.answers as Rr[]) : [];
      return { status: addresses.length ? 'ok' : fromRcode(rcode), addresses, ms: r.ms };
    } catch (err) {
      if (err instanceof DnsClientError) {
        const status: LookupStatus = err.reason === 'timeout' ? 'timeout' : err.reason === 'refused' || err.reason === 'unreachable' ? 'unreachable' : 'error';
        return { status, addresses: [], detail: err.reason === 'refused' ? 'connection refused' : err.message, ms: 0 };
      }
      throw err;
    }
  };
  return combine(await Promise.all([one('A'), one('AAAA')]), started);
}

export async function lookupDoh(strategy: Strategy, name: string, timeoutMs: number): Promise<Lookup> {
  const started = performance.now();
  const one = async (type: 'A' | 'AAAA'): Promise<Lookup> => {
    const decoded = decodeQuery(buildClientQuery(name, type).wire);
    if (!decoded.ok) return { status: 'error', addresses: [], detail: `cannot build a query for ${name}`, ms: 0 };
    const q = decoded.query;
    try {
      const r = await strategy.resolve(buildUpstreamQuery(q), q, AbortSignal.timeout(timeoutMs));
      const rcode = r.answer.rcode;
      const addresses = rcode === 0 ? addressesOf(r.answer.packet.answers as Rr[]) : [];
      return { status: addresses.length ? 'ok' : fromRcode(rcode), addresses, ms: r.ms };
    } catch (err) {
      const e = asUpstreamError(err);
      return { status: e.reason === 'timeout' || e.reason === 'aborted' ? 'timeout' : 'error', addresses: [], detail: `${e.reason}: ${e.message}`, ms: 0 };
    }
  };
  return combine(await Promise.all([one('A'), one('AAAA')]), started);
}

/** "192.0.2.1, 2001:db8::1", or what went wrong. */
export function describeLookup(l: Lookup | undefined): string {
  if (!l) return '-';
  if (l.status === 'ok') return l.addresses.join(', ');
  const words: Record<LookupStatus, string> = {
    ok: '',
    nodata: 'no address (NODATA)',
    nxdomain: 'does not exist (NXDOMAIN)',
    servfail: 'SERVFAIL',
    refused: 'REFUSED',
    timeout: 'no answer (timeout)',
    unreachable: 'unreachable',
    error: 'error',
  };
  return `${words[l.status]}${l.detail && l.status !== 'timeout' ? ` (${l.detail})` : ''}`;
}
