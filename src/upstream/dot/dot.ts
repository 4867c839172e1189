/**
 * One DNS-over-TLS upstream (RFC 7858): `tls://HOST[:853]`, reached through bootstrap IPs
 * (raced, happy-eyeballs style) with HOST as TLS server name, the certificate verified
 * against it. One connection per upstream; queries are pipelined on it with IDs of their own
 * and answers matched by ID, in whatever order they come (RFC 7766 §6.2.1.1).
 *
 * Nothing the network sends can take the process down: every byte is read through the
 * frame parser below, and anything wrong (garbage, an ID nobody asked, a frame too short)
 * retires the connection and fails what was in flight with a reason. A connection that
 * closes or resets under queries (idle close, server restart) is retired and what was in
 * flight is sent once more on a fresh connection, within the same deadline. A connection
 * that failed is never used again.
 */
import { performance } from 'node:perf_hooks';
import type { TLSSocket } from 'node:tls';
import type { Query } from '../../dns/message.js';
import { classify } from '../doh/doh.js';
import { CANCELLED_EXCHANGE, UpstreamError } from '../errors.js';
import { ConnectRaceError, type RaceWin } from '../connect-race.js';
import type { Upstream, UpstreamStats } from '../types.js';
import { PooledTransport, type PooledConfig, type PooledOptions } from '../pooled.js';
import { checkAnswer, type CheckedAnswer } from '../validate.js';

export const DOT_PORT = 853;

export type DotConfig = PooledConfig;

export type DotOptions = PooledOptions;

export interface DotStats extends UpstreamStats {
  /** Queries sent again on a fresh connection after the first one died under them. */
  retries: number;
}

/** Cancelled queries whose answers may still come, per connection; past it the connection is replaced. */
const MAX_ABANDONED = 1024;

interface Pending {
  id: number;
  sentAt: number;
  q: Query;
  resolve: (a: CheckedAnswer) => void;
  reject: (e: UpstreamError) => void;
}

/** Parses `tls://HOST[:PORT]` into host (no brackets) and port. */
export function parseDotUrl(url: string): { host: string; port: number } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`"${url}" is not a valid URL`);
  }
  if (u.protocol !== 'tls:') throw new Error(`"${url}" must be tls://HOST[:PORT] (DNS-over-TLS)`);
  const host = u.hostname.replace(/^\[|\]$/g, '');
  if (!host) throw new Error(`"${url}" has no host`);
  return { host, port: u.port ? Number(u.port) : DOT_PORT };
}

/** One TLS connection and the queries in flight on it. */
class DotConn {
  readonly pending = new Map<number, Pending>();
  /** IDs of queries given up on (cancelled) whose answers may still arrive: ignored when they do. */
  readonly abandoned = new Set<number>();
  socket: TLSSocket | null = null;
  /** Writes made before the handshake completed. */
  private queued: Buffer[] | null = [];
  dead = false;
  /** performance.now() when the connection was made or last delivered an answer. */
  heardAt = performance.now();
  /** Armed while a query on a quiet connection waits: fires = the connection is presumed dead. */
  quietTimer: NodeJS.Timeout | null = null;
  private buf: Buffer = Buffer.alloc(0);

  /** Stops the connection race when the connection is retired before it is up. */
  readonly race = new AbortController();

  constructor(readonly owner: DotUpstream) {}

  attach(socket: TLSSocket): void {
    this.socket = socket;
    this.heardAt = performance.now();
    // Every socket event runs under the transport's guard (guard.ts): a throw restarts the transport.
    const g = this.owner.guard;
    socket.on('data', g.wrap('response', (chunk: Buffer) => this.onData(chunk)));
    // Registered bare as well: an 'error' must always have a listener, even if the guarded one throws.
    socket.on('error', () => {});
    socket.on('error', g.wrap('connection', (err: Error) => this.owner.retire(this, classify(err))));
    socket.on('close', g.wrap('connection', () => this.owner.retire(this, new UpstreamError('reset', 'the server closed the connection', true))));
    socket.on('end', g.wrap('connection', () => this.owner.retire(this, new UpstreamError('reset', 'the server closed the connection', true))));
    const q = this.queued ?? [];
    this.queued = null;
    for (const b of q) socket.write(b);
  }

  write(frame: Buffer): void {
    if (this.queued) this.queued.push(frame);
    else this.socket!.write(frame);
  }

  /** An ID not in use on this connection. */
  newId(): number {
    for (;;) {
      const id = (Math.random() * 0x10000) | 0;
      if (!this.pending.has(id) && !this.abandoned.has(id)) return id;
    }
  }

  private onData(chunk: Buffer): void {
    if (this.dead) return;
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    while (this.buf.length >= 2) {
      const len = this.buf.readUInt16BE(0);
      if (this.buf.length < 2 + len) return;
      // A copy of its own: the chunk is memory the socket may reuse, and the answer is kept.
      const msg = Buffer.from(this.buf.subarray(2, 2 + len));
      this.buf = this.buf.subarray(2 + len);
      if (!this.onMessage(msg)) return;
    }
  }

  /** One framed message; false when the connection was retired because of it. */
  private onMessage(msg: Buffer): boolean {
    if (msg.length < 12) {
      this.owner.retire(this, new UpstreamError('malformed', `a ${msg.length}-byte message on the connection: not DNS`));
      return false;
    }
    const id = msg.readUInt16BE(0);
    const p = this.pending.get(id);
    if (!p) {
      if (this.abandoned.delete(id)) return true;
      // Nobody asked this ID: the stream is not in step with us any more; nothing on it can be trusted.
      this.owner.retire(this, new UpstreamError('wrong_question', `answer with ID ${id}, which no query in flight has`));
      return false;
    }
    this.pending.delete(id);
    this.owner.heard(this, p.sentAt);
    try {
      p.resolve(checkAnswer(msg, p.q, id));
    } catch (err) {
      p.reject(classify(err));
    }
    this.owner.idleCheck(this);
    return true;
  }
}

export class DotUpstream extends PooledTransport implements Upstream {
  readonly kind = 'dot' as const;
  readonly name: string;
  readonly url: string;
  readonly stats: DotStats = { connects: 0, requests: 0, pending: 0, retries: 0 };
  private conn: DotConn | null = null;
  private srtt: number | null = null;

  constructor(cfg: DotConfig, opts: DotOptions = {}) {
    const { host, port } = parseDotUrl(cfg.url);
    super(cfg, host, port, opts);
    this.url = cfg.url;
    this.name = cfg.name ?? (port === DOT_PORT ? `tls://${host}` : `tls://${host}:${port}`);
  }

  protected override admit(signal: AbortSignal): void {
    if (this.closed) throw new UpstreamError('aborted', 'upstream closed');
    if (signal.aborted) throw CANCELLED_EXCHANGE;
    super.admit(signal);
  }

  protected async send(wire: Buffer, q: Query, signal: AbortSignal): Promise<CheckedAnswer> {
    try {
      return await this.attempt(wire, q, signal);
    } catch (err) {
      const e = err as UpstreamError;
      if (!(e instanceof UpstreamError) || !e.retryable || signal.aborted || this.closed) throw e;
      // The connection died under the query (idle close, reset): once more on a fresh one.
      this.stats.retries++;
      return await this.attempt(wire, q, signal);
    }
  }

  private attempt(wire: Buffer, q: Query, signal: AbortSignal): Promise<CheckedAnswer> {
    const conn = this.connection();
    return new Promise<CheckedAnswer>((resolve, reject) => {
      const id = conn.newId();
      const onAbort = () => {
        if (conn.pending.get(id) !== p) return;
        conn.pending.delete(id);
        if (!conn.dead) {
          conn.abandoned.add(id);
          if (conn.abandoned.size > MAX_ABANDONED) this.retire(conn, new UpstreamError('reset', 'too many unanswered queries', true));
        }
        reject(CANCELLED_EXCHANGE);
      };
      const p: Pending = {
        id,
        sentAt: performance.now(),
        q,
        resolve: (a) => {
          signal.removeEventListener('abort', onAbort);
          // Delivering the outcome is guarded too: a throw there restarts the transport and fails this query.
          try {
            if (this.guard.inject) this.guard.inject('settle');
          } catch (err) {
            this.guard.fault('settle', err);
            reject(new UpstreamError('other', `transport restarted after: ${(err as Error)?.message ?? String(err)}`));
            return;
          }
          resolve(a);
        },
        reject: (e) => {
          signal.removeEventListener('abort', onAbort);
          reject(e);
        },
      };
      conn.pending.set(id, p);
      signal.addEventListener('abort', onAbort, { once: true });
      // A quiet connection (possibly black-holed, no FIN, no RST): no answer in time, and it is replaced.
      if (conn.socket && this.quietMs > 0 && !conn.quietTimer && p.sentAt - conn.heardAt > this.quietMs) {
        conn.quietTimer = setTimeout(
          this.guard.wrap('timer', () => {
            conn.quietTimer = null;
            if (conn.dead || conn.heardAt > p.sentAt) return;
            this.opts.log?.debug({ upstream: this.name }, 'no answer on a quiet DoT connection: replacing it');
            this.retire(conn, new UpstreamError('reset', 'no answer on a quiet connection', true));
          }),
          this.quietDelay(),
        );
        conn.quietTimer.unref();
      }
      // RFC 7858 §3.3 / RFC 7766 §8: two-byte length prefix, then the message with our ID.
      const frame = Buffer.allocUnsafe(wire.length + 2);
      frame.writeUInt16BE(wire.length, 0);
      wire.copy(frame, 2);
      frame.writeUInt16BE(id, 2);
      conn.write(frame);
    });
  }

  /** The current connection, or a new one (connecting). */
  private connection(): DotConn {
    if (this.conn && !this.conn.dead) return this.conn;
    const conn = new DotConn(this);
    this.conn = conn;
    this.stats.connects++;
    void this.raceConnect(
      { ALPNProtocols: ['dot'], rejectUnauthorized: true },
      conn.race.signal,
    ).then(
      this.guard.wrap('connect', (win: RaceWin) => {
        this.raceWon(win);
        if (conn.dead || this.closed) {
          win.socket.destroy();
          return;
        }
        win.socket.setNoDelay(true);
        conn.attach(win.socket);
      }),
      this.guard.wrap('connect', (err: unknown) => {
        if (err instanceof ConnectRaceError) this.lastAttempts = err.attempts;
        const e = connectFailure(err);
        this.opts.log?.debug({ upstream: this.name, err: e.message }, 'DoT connection failed');
        this.retire(conn, e);
      }),
    );
    return conn;
  }

  /** The connection is done for: never used again; what was in flight fails with `err`. */
  retire(conn: DotConn, err: UpstreamError): void {
    if (conn.dead) return;
    conn.dead = true;
    if (conn.quietTimer) clearTimeout(conn.quietTimer);
    conn.quietTimer = null;
    if (this.conn === conn) this.conn = null;
    if (!conn.socket) conn.race.abort();
    else {
      conn.socket.removeAllListeners('data');
      conn.socket.on('error', () => {});
      conn.socket.destroy();
    }
    const pending = [...conn.pending.values()];
    conn.pending.clear();
    conn.abandoned.clear();
    for (const p of pending) p.reject(err);
  }

  /** A connection not current any more is closed once its last query is done. */
  idleCheck(conn: DotConn): void {
    if (conn !== this.conn && conn.pending.size === 0) this.retire(conn, new UpstreamError('reset', 'connection replaced', true));
  }

  /** An answer arrived: the connection is alive, and its round trip feeds the quiet-connection delay. */
  heard(conn: DotConn, sentAt: number): void {
    const now = performance.now();
    conn.heardAt = now;
    if (conn.quietTimer) {
      clearTimeout(conn.quietTimer);
      conn.quietTimer = null;
    }
    const ms = now - sentAt;
    this.srtt = this.srtt === null ? ms : this.srtt + (ms - this.srtt) / 8;
  }

  /** How long a query on a quiet connection waits before the connection is presumed dead (as DoH's re-send delay). */
  quietDelay(): number {
    const base = this.srtt === null ? 400 : 4 * this.srtt;
    return Math.round(Math.min(1000, Math.max(200, base)));
  }

  /**
   * After a throw in one of this transport's callbacks (guard.ts): the connection is not
   * trusted again. It is destroyed; what was in flight fails as on a dead connection (sent
   * once more on a fresh one); the smoothed round trip starts over. Must not throw.
   */
  protected quarantine(): void {
    const conn = this.conn;
    this.conn = null;
    this.srtt = null;
    if (conn) {
      try {
        this.retire(conn, new UpstreamError('reset', 'transport restarted', true));
      } catch {
        /* already broken: dropped all the same */
      }
    }
  }

  /** Close the current connection; the next query opens a fresh one. */
  dropConnection(): void {
    if (this.conn) this.retire(this.conn, new UpstreamError('reset', 'connection closed by dohd', true));
  }

  async close(): Promise<void> {
    this.markClosed();
    if (this.conn) this.retire(this.conn, new UpstreamError('aborted', 'upstream closed'));
  }
}

/** What a failed connection race is, as an upstream failure: connect (nothing answered) or tls (a handshake went wrong). */
function connectFailure(err: unknown): UpstreamError {
  const c = classify(err);
  if (err instanceof ConnectRaceError) return c;
  // Nothing was ever sent on it: never a dead connection to re-send on.
  return new UpstreamError(c.reason === 'aborted' ? 'aborted' : 'connect', c.message);
}
