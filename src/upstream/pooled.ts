/**
 * What the connection-pooling transports (DoH, DoT) share: the endpoint (bootstrap IPs, server
 * name, TLS context, connection settings) and the connection race to it; around one exchange, admit it
 * (closed, maxPending, counts), send it (the transport's own `send`), turn a failure into the
 * transport's error (guard.ts), and on the way out count it done and re-arm the idle timer
 * that drops a connection nobody uses. A method, not a wrapper closure: nothing is allocated
 * per exchange here (docs/performance.md).
 */
import type { Query } from '../dns/message.js';
import { TransportGuard, type GuardOptions } from './guard.js';
import type { Logger } from 'pino';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { createSecureContext, rootCertificates, type ConnectionOptions, type SecureContext } from 'node:tls';
import { UPSTREAM_CONNECTION_DEFAULTS } from '../config/schema.js';
import { noteDropped, raceTlsConnect, serverIdentity, type RaceAttempt, type RaceWin } from './connect-race.js';
import { UpstreamError } from './errors.js';
import type { UpstreamObserver } from './strategies/strategy.js';
import { admitRequest, CONNECT_TIMEOUT_MS, MAX_PENDING, type Upstream, type UpstreamStats } from './types.js';
import type { CheckedAnswer } from './validate.js';

/** What DoH and DoT read from their config entry (an upstream built outside a config leaves the settings to the schema's defaults). */
export interface PooledConfig {
  /** https://HOST[:PORT]/PATH (DoH) or tls://HOST[:PORT] (DoT). */
  url: string;
  bootstrap?: readonly string[] | undefined;
  ca?: string | undefined;
  name?: string | undefined;
  /** Left out: the schema's default (upstreams[].idleTimeoutMs). */
  idleTimeoutMs?: number | undefined;
  /**
   * A connection not heard from for this long may be dead without a FIN (a NAT forgot it): a
   * request on it that gets no timely answer is sent again on a fresh one. 0 = never. Left
   * out: the schema's default (upstreams[].quietMs).
   */
  quietMs?: number | undefined;
}

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
  /** The bootstrap IPs a connection races to (the URL's host when it is an IP). */
  readonly addresses: readonly string[];
  readonly idleTimeoutMs: number;
  protected readonly quietMs: number;
  protected readonly maxPending: number;
  /** The TLS server name (SNI); none for an IP-literal URL. */
  protected readonly servername: string | undefined;
  /** One TLS context for every connection: building one with an extra CA parses the whole root store again (~25 ms of blocked event loop). */
  private readonly secureContext: SecureContext;
  protected idleTimer: NodeJS.Timeout | null = null;
  protected closed = false;
  /** How the last connection race went, address by address (verdicts, `dohd query`). */
  lastAttempts: RaceAttempt[] = [];
  /** The bootstrap IP the next connection tries first (the one that worked last). */
  protected addrIndex = 0;

  /** `host`: the URL's host without brackets; `port`: the port connections go to. */
  constructor(
    cfg: PooledConfig,
    readonly host: string,
    readonly port: number,
    protected readonly opts: PooledOptions,
  ) {
    this.guard = new TransportGuard(() => this.name, opts, () => this.quarantine());
    this.servername = isIP(host) ? undefined : host;
    this.addresses = cfg.bootstrap?.length ? [...cfg.bootstrap] : [host];
    if (!isIP(this.addresses[0]!)) throw new Error(`upstream ${cfg.url}: no bootstrap address`);
    this.idleTimeoutMs = cfg.idleTimeoutMs ?? UPSTREAM_CONNECTION_DEFAULTS.idleTimeoutMs;
    this.quietMs = cfg.quietMs ?? UPSTREAM_CONNECTION_DEFAULTS.quietMs;
    this.maxPending = opts.maxPending ?? MAX_PENDING;
    this.secureContext = createSecureContext(cfg.ca ? { ca: [...rootCertificates, readFileSync(cfg.ca, 'utf8')] } : {});
  }

  /** The address the next connection tries first (the one that worked last). */
  get currentAddress(): string {
    return this.addresses[this.addrIndex % this.addresses.length]!;
  }

  /**
   * Happy eyeballs across the bootstrap IPs (connect-race.ts), the one that worked last first;
   * the certificate checked against the server name (or the IP), `tls` adding the ALPN and the like.
   */
  protected raceConnect(tls: ConnectionOptions, signal?: AbortSignal): Promise<RaceWin> {
    return raceTlsConnect({
      addresses: this.addresses,
      port: this.port,
      first: this.addrIndex,
      ...(this.opts.staggerMs !== undefined ? { staggerMs: this.opts.staggerMs } : {}),
      timeoutMs: this.opts.connectTimeoutMs ?? CONNECT_TIMEOUT_MS,
      ...(signal ? { signal } : {}),
      tls: { ...serverIdentity(this.servername, this.host), secureContext: this.secureContext, ...tls },
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

  /** The start of close(): no request is admitted from now on, and the idle timer is stopped. */
  protected markClosed(): void {
    this.closed = true;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
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
