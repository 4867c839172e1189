/**
 * One plain DNS upstream (RFC 1035), for internal resolvers such as a Kubernetes cluster
 * DNS or an office server: UDP from a fresh socket (random source port) with a random ID,
 * and TCP (RFC 7766 framing) when the UDP answer comes back truncated, or always for
 * `tcp://` upstreams. Datagrams with another ID are ignored (spoofing); answers are checked
 * like DoH ones (they parse and answer the question asked). No EDNS padding: the path is
 * not encrypted anyway.
 */
import { randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import { formatHostPort, type HostPort } from '../../config/address.js';
import type { Query } from '../../dns/message.js';
import { buildUpstreamQuery } from '../../dns/upstream-query.js';
import { Flag, readHeader, tcpFrame } from '../../dns/wire.js';
import { UNREACHABLE_CODES, UpstreamError } from '../errors.js';
import { TransportGuard, type GuardOptions } from '../guard.js';
import { admitRequest, MAX_PENDING, type Upstream, type UpstreamStats } from '../types.js';
import { checkAnswer, type CheckedAnswer } from '../validate.js';

export interface PlainOptions extends GuardOptions {
  /** TCP only (`tcp://`); otherwise UDP first and TCP when truncated. */
  tcpOnly?: boolean;
  name?: string;
  /** Requests allowed in flight at once; beyond it, fail fast. */
  maxPending?: number;
}

export interface PlainStats extends UpstreamStats {
  udp: number;
  tcp: number;
}

export class PlainUpstream implements Upstream {
  readonly kind = 'plain' as const;
  readonly name: string;
  readonly stats: PlainStats = { connects: 0, requests: 0, pending: 0, udp: 0, tcp: 0 };
  private readonly maxPending: number;
  /** Cancels each exchange in flight (close). */
  private readonly active = new Set<(err: UpstreamError) => void>();
  private closed = false;
  /** Every socket callback runs under it (see guard.ts): a throw rebuilds the transport. */
  readonly guard: TransportGuard;

  constructor(
    readonly target: HostPort,
    private readonly opts: PlainOptions = {},
  ) {
    this.name = opts.name ?? `${opts.tcpOnly ? 'tcp' : 'udp'}://${formatHostPort(target)}`;
    this.maxPending = opts.maxPending ?? MAX_PENDING;
    // Each exchange has sockets of its own: rebuilding fails every exchange in flight (their
    // sockets are closed) and keeps nothing.
    this.guard = new TransportGuard(() => this.name, opts, () => {
      for (const cancel of [...this.active]) cancel(new UpstreamError('other', 'transport restarted'));
    });
  }

  async exchange(_wire: Buffer, q: Query, signal: AbortSignal): Promise<CheckedAnswer> {
    if (this.closed) throw new UpstreamError('aborted', 'upstream closed');
    if (signal.aborted) throw new UpstreamError('aborted', 'cancelled');
    admitRequest(this.stats, this.closed, this.maxPending);
    try {
      const query = buildUpstreamQuery(q, { pad: false });
      if (!this.opts.tcpOnly) {
        const id = randomInt(1, 0x10000);
        query.writeUInt16BE(id, 0);
        const reply = await this.udp(query, id, signal);
        const h = readHeader(reply)!;
        if ((h.flags & Flag.TC) === 0) return checkAnswer(reply, q, id);
      }
      const id = randomInt(1, 0x10000);
      query.writeUInt16BE(id, 0);
      return checkAnswer(await this.tcp(query, id, signal), q, id);
    } catch (err) {
      throw this.guard.exchangeError(err);
    } finally {
      this.stats.pending--;
    }
  }

  /** One datagram out, the first datagram back with our ID. */
  private udp(query: Buffer, id: number, signal: AbortSignal): Promise<Buffer> {
    this.stats.udp++;
    return new Promise<Buffer>((resolve, reject) => {
      const socket = dgram.createSocket(this.target.family === 6 ? 'udp6' : 'udp4');
      let done = false;
      const finish = (err: UpstreamError | null, reply?: Buffer) => {
        if (done) return;
        done = true;
        signal.removeEventListener('abort', onAbort);
        this.active.delete(finish);
        try {
          socket.close();
        } catch {
          /* already closed */
        }
        if (err) reject(err);
        else resolve(reply!);
      };
      const onAbort = () => finish(new UpstreamError('aborted', 'cancelled'));
      signal.addEventListener('abort', onAbort, { once: true });
      this.active.add(finish);
      // ICMP port unreachable on the connected socket comes back as ECONNREFUSED.
      socket.on('error', this.guard.wrap('socket', (err: Error) => finish(socketFailure('UDP', err))));
      socket.on(
        'message',
        this.guard.wrap('socket', (msg: Buffer) => {
          if (msg.length >= 12 && msg.readUInt16BE(0) === id && (msg.readUInt16BE(2) & Flag.QR) !== 0) finish(null, msg);
        }),
      );
      // A failed connect (ENETUNREACH, EADDRNOTAVAIL, ...) arrives here as `err`, not as an
      // 'error' event; the socket is then unconnected, and send() without an address would
      // throw outside any handler. Every failure here is a failed attempt, never a throw.
      socket.connect(this.target.port, this.target.host, this.guard.wrap('connect', (err?: Error) => {
        if (done) return;
        if (err) return finish(socketFailure('UDP connect', err));
        try {
          socket.send(query, (err) => {
            if (err) finish(socketFailure('UDP send', err));
          });
        } catch (err) {
          finish(socketFailure('UDP send', err));
        }
      }));
    });
  }

  /** A fresh TCP connection, one framed query, the answer with our ID. */
  private tcp(query: Buffer, id: number, signal: AbortSignal): Promise<Buffer> {
    this.stats.tcp++;
    this.stats.connects++;
    return new Promise<Buffer>((resolve, reject) => {
      const socket = net.connect({ host: this.target.host, port: this.target.port, noDelay: true });
      let done = false;
      let buffered: Buffer = Buffer.alloc(0);
      const finish = (err: UpstreamError | null, reply?: Buffer) => {
        if (done) return;
        done = true;
        signal.removeEventListener('abort', onAbort);
        this.active.delete(finish);
        socket.destroy();
        if (err) reject(err);
        else resolve(reply!);
      };
      const onAbort = () => finish(new UpstreamError('aborted', 'cancelled'));
      signal.addEventListener('abort', onAbort, { once: true });
      this.active.add(finish);
      socket.on('error', this.guard.wrap('socket', (err: Error) => finish(socketFailure('TCP', err, 'reset'))));
      socket.on('close', this.guard.wrap('socket', () => finish(new UpstreamError('reset', 'TCP: connection closed before the answer'))));
      socket.on(
        'connect',
        this.guard.wrap('connect', () => {
          socket.write(tcpFrame(query));
        }),
      );
      socket.on('data', this.guard.wrap('socket', (chunk: Buffer) => {
        buffered = buffered.length ? Buffer.concat([buffered, chunk]) : chunk;
        while (buffered.length >= 2) {
          const len = buffered.readUInt16BE(0);
          if (buffered.length < 2 + len) return;
          const msg = Buffer.from(buffered.subarray(2, 2 + len));
          buffered = buffered.subarray(2 + len);
          if (msg.length >= 2 && msg.readUInt16BE(0) === id) return finish(null, msg);
        }
      }));
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const cancel of [...this.active]) cancel(new UpstreamError('aborted', 'upstream closed'));
  }
}

/** A UDP connect() can also fail for the address family or the address itself. */
const CONNECT_CODES = new Set([...UNREACHABLE_CODES, 'EAFNOSUPPORT', 'EINVAL']);

/** A socket error as a failed attempt of this upstream: `connect` when the address cannot be reached. */
function socketFailure(what: string, err: unknown, otherwise: 'other' | 'reset' = 'other'): UpstreamError {
  const e = err as NodeJS.ErrnoException;
  const code = e?.code ?? '';
  return new UpstreamError(CONNECT_CODES.has(code) ? 'connect' : otherwise, `${what}: ${e?.message ?? String(err)}${code && !e.message?.includes(code) ? ` (${code})` : ''}`);
}
