/**
 * One DNS-over-HTTPS upstream (RFC 8484): POST application/dns-message over one
 * long-lived HTTP/2 connection (undici), reached through bootstrap IPs with the URL's
 * host as TLS server name and :authority, so no system resolver is ever asked.
 */
import { performance } from 'node:perf_hooks';
import { Client, type Dispatcher } from 'undici';
import type { UpstreamInput } from '../../config/schema.js';
import type { Query } from '../../dns/message.js';
import { CANCELLED_EXCHANGE, UNREACHABLE_CODES, UpstreamError, type UpstreamFailure } from '../errors.js';
import type { TransportGuard } from '../guard.js';
import type { Upstream, UpstreamStats } from '../types.js';
import { PooledTransport, type PooledOptions } from '../pooled.js';
import { ConnectRaceError, type RaceWin } from '../connect-race.js';
import { checkAnswer, type CheckedAnswer } from '../validate.js';
import { CANCELLED } from '../abort.js';

export const MAX_ANSWER_BYTES = 65_535;

export type DohOptions = PooledOptions;

/** Per-upstream counters: the common ones, plus how often a dead or suspect connection was replaced. */
export interface DohStats extends UpstreamStats {
  /** Requests sent again on a fresh connection after the first one failed on a dead connection. */
  retries: number;
  /** Requests sent again on a fresh connection because a quiet connection gave no answer in time. */
  resends: number;
}

/** One HTTP/2 connection (one undici Client, never reconnected) and when it last proved alive. */
interface Conn {
  client: Client;
  /** performance.now() when the connection was made or last delivered response headers. */
  heardAt: number;
}

/** Bounds of the delay before a request on a quiet connection is sent again on a fresh one. */
const RESEND_MIN_MS = 200;
const RESEND_MAX_MS = 1000;
/** A retired connection is destroyed at the latest this long after it was retired. */
const RETIRE_GRACE_MS = 10_000;

export class DohUpstream extends PooledTransport implements Upstream {
  readonly kind = 'doh' as const;
  readonly name: string;
  readonly url: URL;
  readonly stats: DohStats = { connects: 0, requests: 0, pending: 0, retries: 0, resends: 0 };
  private readonly path: string;
  private conn: Conn | null = null;
  /** Connections being closed (and their deadline to be destroyed): destroyed for good on close(). */
  private readonly retiring = new Map<Conn, NodeJS.Timeout>();
  /** Smoothed time to response headers, ms (RFC 6298-style, alpha 1/8); null before the first answer. */
  private srtt: number | null = null;
  private tlsSession: Buffer | undefined;

  constructor(cfg: UpstreamInput, opts: DohOptions = {}) {
    const url = new URL(cfg.url);
    const host = url.hostname.replace(/^\[|\]$/g, '');
    super(cfg, host, url.port ? Number(url.port) : 443, opts);
    this.url = url;
    this.path = url.pathname + url.search;
    this.name = cfg.name ?? (url.port ? `${host}:${url.port}` : host);
  }

  /** The current connection, or a new one. Each Client carries one connection: once it is gone, so is the Client. */
  private connection(): Conn {
    const current = this.conn;
    if (current && !current.client.closed && !current.client.destroyed) return current;
    const client = new Client(this.url.origin, {
      allowH2: true,
      pipelining: 100,
      maxConcurrentStreams: 100,
      // Off: every exchange runs under the caller's deadline signal, and undici leaks some of
      // these stream timers (docs/performance.md, "The DoH exchange").
      headersTimeout: 0,
      bodyTimeout: 0,
      // No PINGs: idle connections are closed (idleTimeoutMs) and requests on quiet ones re-sent instead.
      pingInterval: 0,
      connect: (_opts, cb) => {
        this.stats.connects++;
        // Happy eyeballs across the bootstrap IPs (connect-race.ts): the one that worked last
        // goes first, the next joins after 250 ms or as soon as it fails. Both outcomes run under the guard.
        this.raceConnect({ ALPNProtocols: ['h2', 'http/1.1'], ...(this.tlsSession ? { session: this.tlsSession } : {}) }).then(
          this.guard.wrap('connect', (win: RaceWin) => {
        this.raceWon(win);
            win.socket.once('session', (s: Buffer) => (this.tlsSession = s));
            cb(null, win.socket);
          }),
          this.guard.wrap('connect', (err: Error) => {
            if (err instanceof ConnectRaceError) this.lastAttempts = err.attempts;
            // A new Client next time: no request dispatched from now on may reach this one (see 'connectionError').
            if (this.conn === conn) this.conn = null;
            cb(err, null);
          }),
        );
      },
    });
    const conn: Conn = { client, heardAt: performance.now() };
    client.on('connect', this.guard.wrap('connection', () => (conn.heardAt = performance.now())));
    // The peer closed or reset it (idle close without GOAWAY, RST): never reconnect this Client.
    client.on('disconnect', this.guard.wrap('connection', () => this.retire(conn, false)));
    // A Client that failed to connect (TCP, TLS, certificate) is destroyed, never reused:
    // undici 7 asserts, and kills the process, when a pipelined Client that already saw
    // ERR_TLS_CERT_ALTNAME_INVALID connects again and gets it a second time
    // (nodejs/undici#5355, fixed in 8.x by #5373; with pipelining 1 the request hangs).
    // undici has already failed the requests queued on it when this event is emitted.
    client.on('connectionError', this.guard.wrap('connection', () => this.retire(conn, false)));
    this.conn = conn;
    return conn;
  }

  /**
   * Stops sending on a connection. `graceful`: requests already on it may still finish
   * (it was only suspect); otherwise it is destroyed at once (it is known dead).
   */
  private retire(conn: Conn, graceful: boolean): void {
    if (this.conn === conn) this.conn = null;
    if (!graceful) {
      clearTimeout(this.retiring.get(conn));
      this.retiring.delete(conn);
      if (!conn.client.destroyed) conn.client.destroy().catch(() => {});
      return;
    }
    if (this.retiring.has(conn) || conn.client.destroyed) return;
    this.retiring.set(conn, setTimeout(this.guard.wrap('timer', () => this.retire(conn, false)), RETIRE_GRACE_MS).unref());
    conn.client
      .close()
      .catch(() => {})
      .finally(() => {
        clearTimeout(this.retiring.get(conn));
        this.retiring.delete(conn);
      });
  }

  /** Forget the current connection; the next request opens a fresh one. */
  dropConnection(): void {
    if (this.conn) this.retire(this.conn, false);
  }

  /** How long a request on a quiet connection waits for response headers before it is also sent on a fresh one. */
  resendDelay(): number {
    const base = this.srtt === null ? 400 : 4 * this.srtt;
    return Math.round(Math.min(RESEND_MAX_MS, Math.max(RESEND_MIN_MS, base)));
  }

  /**
   * Sends on the current connection, and never lets the query wait on a dead one:
   * - a request that fails because the connection turned out dead (reset, GOAWAY, closed
   *   under it) is sent once more on a fresh connection, within the same deadline;
   * - a request on a connection that has been quiet for `quietMs` (it may be black-holed:
   *   no FIN, no RST) that gets no response headers within `resendDelay()` is sent again on
   *   a fresh connection in parallel; the first good answer wins, the other is cancelled.
   */
  protected send(wire: Buffer, q: Query, signal: AbortSignal): Promise<CheckedAnswer> {
    const first = this.connection();
    const quiet = this.quietMs > 0 && performance.now() - first.heardAt > this.quietMs;
    return new Promise<CheckedAnswer>((resolve, reject) => {
      // Each attempt listens to the caller's signal itself, and one that is overtaken (a re-send
      // answered first) is cancelled through its handler: no AbortController of its own
      // (docs/performance.md).
      const running = new Set<Exchange>();
      let settled = false;
      let resent = false;
      let resendTimer: NodeJS.Timeout | undefined;
      const settle = () => {
        settled = true;
        clearTimeout(resendTimer);
        // Only an attempt still running (a re-send) has anything to cancel.
        for (const other of running) other.cancel();
      };
      const attempt = (conn: Conn) => {
        let ex!: Exchange;
        const answer = new Promise<CheckedAnswer>((resolve, reject) => (ex = this.request(conn, wire, q, signal, resolve, reject)));
        running.add(ex);
        // Each outcome is delivered under the guard; a throw there also ends this exchange.
        const guarded = (fn: () => void) => {
          try {
            if (this.guard.inject) this.guard.inject('settle');
            fn();
          } catch (err) {
            this.guard.fault('settle', err);
            if (!settled) {
              settle();
              reject(new UpstreamError('other', 'transport restarted'));
            }
          }
        };
        answer.then(
          (answer) => guarded(() => {
            running.delete(ex);
            if (settled) return;
            settle();
            resolve(answer);
          }),
          (err: UpstreamError) => guarded(() => {
            running.delete(ex);
            if (settled) return;
            if (!resent && err.retryable && !signal.aborted && !this.closed) {
              // The connection (or this stream on it) failed: once more on a fresh connection, same
              // deadline. The old one closes gracefully: one failed stream must not fail its siblings.
              resent = true;
              clearTimeout(resendTimer);
              this.retire(conn, true);
              this.stats.retries++;
              attempt(this.connection());
              return;
            }
            if (running.size > 0) return; // the other attempt may still answer
            settle();
            reject(err);
          }),
        );
      };
      attempt(first);
      if (quiet) {
        resendTimer = setTimeout(this.guard.wrap('timer', () => {
          if (settled || resent || signal.aborted || this.closed) return;
          resent = true;
          this.retire(first, true);
          this.stats.resends++;
          this.opts.log?.debug({ upstream: this.name, quietMs: Math.round(performance.now() - first.heardAt) }, 'no answer on a quiet connection: sending again on a fresh one');
          attempt(this.connection());
        }), this.resendDelay());
      }
    });
  }

  /**
   * One POST on `conn`, through undici's dispatch API: the answer's bytes arrive as callbacks,
   * with no response stream, async iterator or per-request async resource around them (a
   * third of the garbage a cold miss made). It settles once through `resolve`/`reject`, at the
   * latest when `signal` aborts or the exchange is cancelled.
   */
  private request(
    conn: Conn,
    wire: Buffer,
    q: Query,
    signal: AbortSignal,
    resolve: (a: CheckedAnswer) => void,
    reject: (e: UpstreamError) => void,
  ): Exchange {
    const heard = (ms: number) => {
      conn.heardAt = performance.now();
      this.srtt = this.srtt === null ? ms : this.srtt + (ms - this.srtt) / 8;
    };
    const exchange = new Exchange(q, signal, heard, resolve, reject, this.guard);
    if (!exchange.done) conn.client.dispatch({ path: this.path, method: 'POST', idempotent: true, headers: DOH_HEADERS, body: wire }, exchange);
    return exchange;
  }

  /**
   * After a throw in one of this transport's callbacks (guard.ts): no connection it holds is
   * trusted again. Each is destroyed (their requests fail, and are sent again on a fresh one
   * or answered by the other upstreams); the next request starts from a clean state.
   */
  protected quarantine(): void {
    const conns = [...this.retiring.keys(), ...(this.conn ? [this.conn] : [])];
    for (const t of this.retiring.values()) clearTimeout(t);
    this.retiring.clear();
    this.conn = null;
    this.srtt = null;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    for (const c of conns) {
      try {
        c.client.destroy().catch(() => {});
      } catch {
        /* already broken: dropped all the same */
      }
    }
  }

  async close(): Promise<void> {
    this.markClosed();
    const conns = [...this.retiring.keys(), ...(this.conn ? [this.conn] : [])];
    for (const t of this.retiring.values()) clearTimeout(t);
    this.conn = null;
    this.retiring.clear();
    await Promise.all(conns.map((c) => c.client.destroy().catch(() => {})));
  }
}

/** Request headers, the same for every query (RFC 8484 §4.1). */
const DOH_HEADERS = { 'content-type': 'application/dns-message', accept: 'application/dns-message' };

/**
 * One request's handler (undici DispatchHandler): checks the response as it arrives and
 * settles exactly once — with the checked answer, the first thing wrong with the response,
 * the caller's abort or `cancel()`, whichever comes first. A failed check, an abort or a
 * cancel stops the stream.
 *
 * Settled, it lets go of the query, the caller's signal and callbacks and the answer's bytes:
 * undici and Node keep a handler until the next full collection, so whatever it still held
 * would be promoted (docs/performance.md). (Exported for test/unit/upstream/doh/exchange.test.ts.)
 */
export class Exchange implements Dispatcher.DispatchHandler {
  done = false;
  private controller: Dispatcher.DispatchController | null = null;
  private readonly chunks: Buffer[] = [];
  private size = 0;
  private readonly t0 = performance.now();
  private readonly onAbort = () => this.fail(CANCELLED_EXCHANGE);

  constructor(
    private q: Query | null,
    private signal: AbortSignal | null,
    /** Response headers arrived after `ms`: the connection is alive. */
    private heard: ((ms: number) => void) | null,
    private resolve: ((a: CheckedAnswer) => void) | null,
    private reject: ((e: UpstreamError) => void) | null,
    /** undici calls the on* methods below from its own event handlers: a throw there is the transport's (guard.ts). */
    private readonly guard?: TransportGuard,
  ) {
    if (signal!.aborted) this.onAbort();
    else signal!.addEventListener('abort', this.onAbort, { once: true });
  }

  /** Nobody wants this answer any more (another attempt won). */
  cancel(): void {
    this.fail(CANCELLED_EXCHANGE);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.done) controller.abort(CANCELLED);
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    try {
      this.responseStart(statusCode, headers);
    } catch (err) {
      this.faulted(err);
    }
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    try {
      this.responseData(chunk);
    } catch (err) {
      this.faulted(err);
    }
  }

  onResponseEnd(): void {
    try {
      this.responseEnd();
    } catch (err) {
      this.faulted(err);
    }
  }

  /** A throw while handling the response: the guard rebuilds the transport; this exchange fails. */
  private faulted(err: unknown): void {
    if (!this.guard) throw err;
    this.guard.fault('response', err);
    this.fail(new UpstreamError('other', 'transport restarted'));
  }

  private responseStart(statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    if (this.done) return;
    if (this.guard?.inject) this.guard.inject('response');
    this.heard!(performance.now() - this.t0);
    let err: UpstreamError | null = null;
    const ct = String(headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    const declared = Number(headers['content-length'] ?? NaN);
    if (statusCode !== 200) err = new UpstreamError('http_status', `HTTP ${statusCode}`);
    else if (ct !== 'application/dns-message') err = new UpstreamError('content_type', `content-type "${ct || 'none'}"`);
    else if (declared > MAX_ANSWER_BYTES) err = new UpstreamError('oversized', `content-length ${declared} over ${MAX_ANSWER_BYTES}`);
    if (err) this.fail(err);
  }

  private responseData(chunk: Buffer): void {
    if (this.done) return;
    this.size += chunk.length;
    if (this.size > MAX_ANSWER_BYTES) return this.fail(new UpstreamError('oversized', `body over ${MAX_ANSWER_BYTES} bytes`));
    this.chunks.push(chunk);
  }

  private responseEnd(): void {
    if (this.done) return;
    const { q, signal, resolve, reject } = this;
    // A copy of its own: a chunk may be a view of memory the connection reuses.
    const body = Buffer.concat(this.chunks, this.size);
    this.finish();
    try {
      resolve!(checkAnswer(body, q!));
    } catch (err) {
      reject!(classify(err, signal!));
    }
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    if (this.done) return;
    this.fail(classify(err, this.signal!));
  }

  private fail(err: UpstreamError): void {
    if (this.done) return;
    const reject = this.reject!;
    this.finish();
    // Stop the stream (a no-op once undici has finished it); before it started, onRequestStart does.
    const controller = this.controller;
    if (controller && !controller.aborted) controller.abort(CANCELLED);
    reject(err);
  }

  private finish(): void {
    this.done = true;
    this.signal!.removeEventListener('abort', this.onAbort);
    this.q = this.signal = this.heard = this.resolve = this.reject = null;
    this.chunks.length = 0;
  }
}

const TLS_CODES = /^(ERR_TLS|ERR_SSL|CERT_|UNABLE_TO_|DEPTH_ZERO|SELF_SIGNED|HOSTNAME_MISMATCH|ERR_OSSL)/;

/** Maps undici/Node errors to a stable failure reason; `retryable` marks a dead connection. */
export function classify(err: unknown, signal?: AbortSignal): UpstreamError {
  if (err instanceof UpstreamError) return err;
  const e = err as NodeJS.ErrnoException & { code?: string };
  const code = e?.code ?? '';
  const msg = e?.message ?? String(err);
  let reason: UpstreamFailure = 'other';
  let retryable = false;
  // No bootstrap IP gave a connection: the race says how (intercepted, blocked_sni, unreachable, tls,
  // connect); never retried as a dead connection. An unknown CA gets the private-CA hint too.
  if (err instanceof ConnectRaceError) return new UpstreamError(err.reason, `${msg} (${code})${UNTRUSTED_CA.has(code) ? CA_HINT : ''}`);
  if (signal?.aborted || code === 'UND_ERR_ABORTED' || e?.name === 'AbortError') reason = 'aborted';
  else if (code === 'UND_ERR_CONNECT_TIMEOUT' || UNREACHABLE_CODES.has(code))
    reason = 'connect';
  else if (TLS_CODES.test(code) || /certificate|self[- ]signed|TLS|SSL/i.test(msg)) reason = 'tls';
  else if (/GOAWAY/i.test(msg)) {
    reason = 'goaway';
    retryable = true;
  } else if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') reason = 'timeout';
  else if (
    code === 'UND_ERR_SOCKET' ||
    code === 'ECONNRESET' ||
    code === 'EPIPE' ||
    code === 'UND_ERR_CLOSED' ||
    code === 'UND_ERR_DESTROYED' ||
    code === 'ERR_HTTP2_STREAM_ERROR' ||
    code === 'ERR_HTTP2_SESSION_ERROR' ||
    code === 'ERR_HTTP2_INVALID_SESSION' ||
    code === 'ERR_HTTP2_GOAWAY_SESSION' ||
    /other side closed|socket hang up|closed/i.test(msg)
  ) {
    reason = 'reset';
    retryable = true;
  }
  const hint = reason === 'tls' && UNTRUSTED_CA.has(code) ? CA_HINT : '';
  return new UpstreamError(reason, `${msg}${code ? ` (${code})` : ''}${hint}`, retryable);
}

/** Certificate errors that a private CA explains; the hint names the ways to trust one. */
const UNTRUSTED_CA = new Set(['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'UNABLE_TO_GET_ISSUER_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT']);
const CA_HINT = '; if the upstream uses a private CA, trust it with --ca FILE, "ca: FILE" on the upstream in the configuration, or NODE_EXTRA_CA_CERTS=FILE';
