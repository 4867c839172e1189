/**
 * A plain DNS client for the diagnosis commands (`dohd query`, `dohd doctor`): one query over
 * UDP, again over TCP when the answer is truncated (or TCP only), with a deadline.
 * Failures are typed so callers can say what went wrong: nothing answered, refused, bad reply.
 */
import { randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import dnsPacket from 'dns-packet';
import { EXPLAIN_OPTION } from './explain.js';
import { Flag, readHeader, tcpFrame } from './wire.js';

export type ClientFailure = 'timeout' | 'refused' | 'unreachable' | 'malformed' | 'closed' | 'error';

export class DnsClientError extends Error {
  override name = 'DnsClientError';
  constructor(
    readonly reason: ClientFailure,
    message: string,
  ) {
    super(message);
  }
}

export interface ExchangeOptions {
  host: string;
  port: number;
  timeoutMs: number;
  /** TCP only (default: UDP, then TCP when the answer comes back truncated). */
  tcp?: boolean;
}

export interface ExchangeResult {
  wire: Buffer;
  packet: dnsPacket.DecodedPacket;
  ms: number;
  transport: 'udp' | 'tcp';
  /** The UDP answer was truncated and the query was sent again over TCP. */
  retriedOverTcp: boolean;
}

/** Maps a query type name (A, aaaa, TYPE65, HTTPS) to what dns-packet encodes, or null. */
export function queryType(name: string): string | null {
  const up = name.toUpperCase();
  const extra: Record<string, number> = { HTTPS: 65, SVCB: 64 };
  if (extra[up] !== undefined) return `UNKNOWN_${extra[up]}`;
  const m = /^TYPE(\d{1,5})$/.exec(up);
  if (m && Number(m[1]) > 0 && Number(m[1]) < 65536) return `UNKNOWN_${m[1]}`;
  if (up === 'OPT' || up === '*') return null;
  return typeCode(up) > 0 ? up : null;
}

/** The numeric type dns-packet encodes for a name (0 when it does not know the name). */
function typeCode(up: string): number {
  try {
    const wire = dnsPacket.encode({ type: 'query', id: 0, questions: [{ name: 'a', type: up as dnsPacket.RecordType }] });
    return wire.readUInt16BE(wire.length - 4);
  } catch {
    return 0;
  }
}

/** A recursive query with EDNS(0) (1232 bytes); `explain` asks dohd which upstream answered. */
export function buildClientQuery(name: string, type: string, opts: { id?: number; explain?: boolean } = {}): { id: number; wire: Buffer } {
  const id = opts.id ?? randomInt(0, 0x10000);
  const wire = dnsPacket.encode({
    type: 'query',
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ name, type: type as dnsPacket.RecordType, class: 'IN' }],
    additionals: [
      {
        name: '.',
        type: 'OPT',
        udpPayloadSize: 1232,
        extendedRcode: 0,
        ednsVersion: 0,
        flags: 0,
        flag_do: false,
        options: (opts.explain ? [{ code: EXPLAIN_OPTION, data: Buffer.alloc(0) }] : []) as never,
      },
    ],
  });
  return { id, wire };
}

export async function exchange(query: Buffer, opts: ExchangeOptions): Promise<ExchangeResult> {
  const started = performance.now();
  if (opts.tcp) {
    const wire = await exchangeTcp(query, opts);
    return { ...decode(wire), ms: performance.now() - started, transport: 'tcp', retriedOverTcp: false };
  }
  const udp = await exchangeUdp(query, opts);
  const h = readHeader(udp)!;
  if (h.flags & Flag.TC) {
    const left = Math.max(1, opts.timeoutMs - (performance.now() - started));
    const wire = await exchangeTcp(query, { ...opts, timeoutMs: left });
    return { ...decode(wire), ms: performance.now() - started, transport: 'tcp', retriedOverTcp: true };
  }
  return { ...decode(udp), ms: performance.now() - started, transport: 'udp', retriedOverTcp: false };
}

function decode(wire: Buffer): { wire: Buffer; packet: dnsPacket.DecodedPacket } {
  try {
    return { wire, packet: dnsPacket.decode(wire) };
  } catch (err) {
    throw new DnsClientError('malformed', `the answer does not parse: ${(err as Error).message}`);
  }
}

function where(opts: ExchangeOptions, proto: string): string {
  return `${net.isIPv6(opts.host) ? `[${opts.host}]` : opts.host}:${opts.port}/${proto}`;
}

function failure(err: NodeJS.ErrnoException, opts: ExchangeOptions, proto: string): DnsClientError {
  const at = where(opts, proto);
  switch (err.code) {
    case 'ECONNREFUSED':
      return new DnsClientError('refused', `${at}: connection refused (nothing listens there)`);
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EADDRNOTAVAIL':
      return new DnsClientError('unreachable', `${at}: unreachable (${err.code})`);
    default:
      return new DnsClientError('error', `${at}: ${err.message}`);
  }
}

/**
 * The one way an exchange ends: its first outcome, or the deadline (a timeout error) if nothing
 * came first; either way the socket is closed (`close`) and the rest is ignored.
 */
function settleOnce(
  opts: ExchangeOptions,
  proto: string,
  close: () => void,
  resolve: (wire: Buffer) => void,
  reject: (err: Error) => void,
): (err: Error | null, wire?: Buffer) => void {
  let done = false;
  const finish = (err: Error | null, wire?: Buffer) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    close();
    if (err) reject(err);
    else resolve(wire!);
  };
  const timer = setTimeout(() => finish(new DnsClientError('timeout', `${where(opts, proto)}: no answer within ${opts.timeoutMs} ms`)), opts.timeoutMs);
  return finish;
}

/** One UDP exchange on a connected socket (so an ICMP port-unreachable shows up as "refused"). */
export function exchangeUdp(query: Buffer, opts: ExchangeOptions): Promise<Buffer> {
  const id = query.readUInt16BE(0);
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket(net.isIPv6(opts.host) ? 'udp6' : 'udp4');
    const finish = settleOnce(opts, 'udp', () => socket.close(), resolve, reject);
    socket.on('error', (err) => finish(failure(err, opts, 'udp')));
    socket.on('message', (msg) => {
      if (msg.length >= 12 && msg.readUInt16BE(0) === id) finish(null, msg);
    });
    socket.connect(opts.port, opts.host, () => {
      socket.send(query, (err) => {
        if (err) finish(failure(err, opts, 'udp'));
      });
    });
  });
}

/** One TCP exchange (RFC 7766 framing) on a fresh connection. */
export function exchangeTcp(query: Buffer, opts: ExchangeOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: opts.host, port: opts.port });
    let buf = Buffer.alloc(0);
    const finish = settleOnce(opts, 'tcp', () => socket.destroy(), resolve, reject);
    socket.on('error', (err) => finish(failure(err, opts, 'tcp')));
    socket.on('close', () => finish(new DnsClientError('closed', `${where(opts, 'tcp')}: connection closed without an answer`)));
    socket.on('connect', () => {
      socket.write(tcpFrame(query));
    });
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) finish(null, Buffer.from(buf.subarray(2, 2 + buf.readUInt16BE(0))));
    });
  });
}
