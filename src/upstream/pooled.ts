/**
 * What the connection-pooling transports (DoH, DoT) share around one exchange: admit it
 * (closed, maxPending, counts), send it (the transport's own `send`), turn a failure into the
 * transport's error (guard.ts), and on the way out count it done and re-arm the idle timer
 * that drops a connection nobody uses. A method, not a wrapper closure: nothing is allocated
 * per exchange here (docs/performance.md).
 */
import type { Query } from '../dns/message.js';
import { TransportGuard, type GuardOptions } from './guard.js';
import type { Logger } from 'pino';
import type { ConnectionOptions } from 'node:tls';
import { noteDropped, raceTlsConnect, type RaceAttempt, type RaceWin } from './connect-race.js';
import { UpstreamError } from './errors.js';
import type { UpstreamObserver } from './strategies/strategy.js';
import { admitRequest, CONNECT_TIMEOUT_MS, MAX_PENDING, type Upstream, type UpstreamStats } from './types.js';
import type { CheckedAnswer } from './validate.js';

/** What DoH and DoT take besides their config. */
export interface PooledOptions extends GuardOptions {
  log?: Logger;
  /** The whole connection race (every bootstrap IP), ms; default CONNECT_TIMEOUT_MS. */
  connectTimeoutMs?: number;
  /** Delay before the next bootstrap IP joins the race (RFC 8305); default connect-race's. */
  staggerMs?: number;
  /** Requests in flight at once; beyond it, fail fast instead of queueing without bound (default MAX_PENDING). */
  maxPending?: number;
  /** Told when a bootstrap IP was unreachable while another connected (metrics: reason ip_unreachable). */
  observer?: Pick<UpstreamObserver, 'failure'>;
}

export abstract class PooledTransport implements Upstream {
  abstract readonly name: string;
  abstract readonly kind: 'doh' | 'dot';
  abstract readonly stats: UpstreamStats;
  /** Every callback of this transport runs under it (see guard.ts): a throw rebuilds the transport. */
  readonly guard: TransportGuard;
  /** Bootstrap IPs already reported unreachable. */
  protected readonly dropped = new Set<string>();
  abstract readonly idleTimeoutMs: number;
  /** The bootstrap IPs, and the port, a connection races to. */
  abstract readonly addresses: readonly string[];
  abstract readonly port: number;
  protected readonly maxPending: number;
  protected idleTimer: NodeJS.Timeout | null = null;
  protected closed = false;
  /** How the last connection race went, address by address (verdicts, `dohd query`). */
  lastAttempts: RaceAttempt[] = [];
  /** The bootstrap IP the next connection tries first (the one that worked last). */
  protected addrIndex = 0;

  constructor(protected readonly opts: PooledOptions) {
    this.guard = new TransportGuard(() => this.name, opts, () => this.quarantine());
    this.maxPending = opts.maxPending ?? MAX_PENDING;
  }

  /** Happy eyeballs across the bootstrap IPs (connect-race.ts), the one that worked last first. */
  protected raceConnect(tls: ConnectionOptions, signal?: AbortSignal): Promise<RaceWin> {
    return raceTlsConnect({
      addresses: this.addresses,
      port: this.port,
      first: this.addrIndex,
      ...(this.opts.staggerMs !== undefined ? { staggerMs: this.opts.staggerMs } : {}),
      timeoutMs: this.opts.connectTimeoutMs ?? CONNECT_TIMEOUT_MS,
      ...(signal ? { signal } : {}),
      tls,
    });
  }

  /**
   * After a throw in one of this transport's callbacks (guard.ts): no connection it holds is
   * trusted again. Must not throw.
   */
  protected abstract quarantine(): void;

  async exchange(wire: Buffer, q: Query, signal: AbortSignal): Promise<CheckedAnswer> {
    this.admit(signal);
    try {
      return await this.send(wire, q, signal);
    } catch (err) {
      throw this.guard.exchangeError(err);
    } finally {
      this.stats.pending--;
      this.armIdle();
    }
  }

  /** Throws (outside the guard) when the request may not start; counts it when it does. */
  protected admit(_signal: AbortSignal): void {
    admitRequest(this.stats, this.closed, this.maxPending);
  }

  /** One admitted exchange, on the transport's connection(s). */
  protected abstract send(wire: Buffer, q: Query, signal: AbortSignal): Promise<CheckedAnswer>;

  abstract close(): Promise<void>;

  /** A connection race won: remember where, and report the addresses that did not answer (once each). */
  protected raceWon(win: RaceWin): void {
    this.lastAttempts = win.attempts;
    this.addrIndex = win.index;
    const dropped = noteDropped(win, this.dropped, this.opts.log, this.name);
    if (dropped.length) this.opts.observer?.failure(this, new UpstreamError('ip_unreachable', `${dropped.join(', ')}: no answer while ${win.address} connected`), 0);
  }

  /** Forget the current connection; the next request opens a fresh one. */
  abstract dropConnection(): void;

  /** After idleTimeoutMs with nothing pending, the connection is dropped. */
  protected armIdle(): void {
    if (this.idleTimer) {
      this.idleTimer.refresh();
      return;
    }
    this.idleTimer = setTimeout(
      this.guard.wrap('timer', () => {
        this.idleTimer = null;
        if (this.stats.pending === 0) this.dropConnection();
        else this.armIdle();
      }),
      this.idleTimeoutMs,
    );
    this.idleTimer.unref();
  }
}
