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
import { noteDropped, type RaceAttempt, type RaceWin } from './connect-race.js';
import { UpstreamError } from './errors.js';
import type { UpstreamObserver } from './strategies/strategy.js';
import { admitRequest, type Upstream, type UpstreamStats } from './types.js';
import type { CheckedAnswer } from './validate.js';

export abstract class PooledTransport implements Upstream {
  abstract readonly name: string;
  abstract readonly kind: 'doh' | 'dot';
  abstract readonly stats: UpstreamStats;
  /** Every callback of this transport runs under it (see guard.ts): a throw rebuilds the transport. */
  readonly guard: TransportGuard;
  /** Bootstrap IPs already reported unreachable. */
  protected readonly dropped = new Set<string>();
  abstract readonly idleTimeoutMs: number;
  protected abstract readonly maxPending: number;
  protected idleTimer: NodeJS.Timeout | null = null;
  protected closed = false;
  /** How the last connection race went, address by address (verdicts, `dohd query`). */
  lastAttempts: RaceAttempt[] = [];
  /** The bootstrap IP the next connection tries first (the one that worked last). */
  protected addrIndex = 0;

  constructor(opts: GuardOptions) {
    this.guard = new TransportGuard(() => this.name, opts, () => this.quarantine());
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
  protected raceWon(win: RaceWin, opts: { log?: Logger; observer?: Pick<UpstreamObserver, 'failure'> }): void {
    this.lastAttempts = win.attempts;
    this.addrIndex = win.index;
    const dropped = noteDropped(win, this.dropped, opts.log, this.name);
    if (dropped.length) opts.observer?.failure(this, new UpstreamError('ip_unreachable', `${dropped.join(', ')}: no answer while ${win.address} connected`), 0);
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
