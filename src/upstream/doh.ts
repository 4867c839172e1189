/**
 * One DNS-over-HTTPS upstream (RFC 8484): POST application/dns-message over one
 * long-lived HTTP/2 connection (undici), reached through bootstrap IPs with the URL's
 * host as TLS server name and :authority, so no system resolver is ever asked.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { rootCertificates } from 'node:tls';
import { buildConnector, Client } from 'undici';
import type { Logger } from 'pino';
import type { UpstreamConfig } from '../config/schema.js';
import type { Query } from '../dns/message.js';
import { UpstreamError, type UpstreamFailure } from './errors.js';
import type { Upstream, UpstreamStats } from './types.js';
import { checkAnswer, type CheckedAnswer } from './validate.js';

export const MAX_ANSWER_BYTES = 65_535;

export interface DohOptions {
  log?: Logger;
  /** Close a connection idle this long, below the 10-30 s after which upstreams drop idle ones silently. */
  idleTimeoutMs?: number;
  connectTimeoutMs?: number;
  /** Requests allowed in flight at once; beyond it, fail fast instead of queueing without bound. */
  maxPending?: number;
}

export class DohUpstream implements Upstream {
  readonly kind = 'doh' as const;
  readonly name: string;
  readonly url: URL;
  readonly addresses: string[];
  readonly stats: UpstreamStats = { connects: 0, requests: 0, pending: 0 };
  private readonly servername: string | undefined;
  private readonly connector: buildConnector.connector;
  private readonly idleTimeoutMs: number;
  private readonly maxPending: number;
  private client: Client | null = null;
  private addrIndex = 0;
  private idleTimer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(
    cfg: UpstreamConfig,
    private readonly opts: DohOptions = {},
  ) {
    this.url = new URL(cfg.url);
    const host = this.url.hostname.replace(/^\[|\]$/g, '');
    this.name = cfg.name ?? (this.url.port ? `${host}:${this.url.port}` : host);
    this.servername = isIP(host) ? undefined : host;
    this.addresses = cfg.bootstrap?.length ? [...cfg.bootstrap] : [host];
    if (!isIP(this.addresses[0]!)) throw new Error(`upstream ${cfg.url}: no bootstrap address`);
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 8000;
    this.maxPending = opts.maxPending ?? 512;
    let ca: string[] | undefined;
    if (cfg.ca) ca = [...rootCertificates, readFileSync(cfg.ca, 'utf8')];
    this.connector = buildConnector({
      allowH2: true,
      timeout: opts.connectTimeoutMs ?? 5000,
      ...(ca ? { ca } : {}),
      maxCachedSessions: 4,
    });
  }

  /** The address the next connection goes to. */
  get currentAddress(): string {
    return this.addresses[this.addrIndex % this.addresses.length]!;
  }

  private getClient(): Client {
    if (this.client && !this.client.closed && !this.client.destroyed) return this.client;
    const client = new Client(this.url.origin, {
      allowH2: true,
      pipelining: 100,
      maxConcurrentStreams: 100,
      headersTimeout: 30_000,
      bodyTimeout: 30_000,
      connect: (opts, cb) => {
        const address = this.currentAddress;
        this.stats.connects++;
        this.connector({ ...opts, hostname: address, ...(this.servername ? { servername: this.servername } : {}) }, (err, socket) => {
          if (err) {
            // Try the next bootstrap address on the next attempt.
            this.addrIndex = (this.addrIndex + 1) % this.addresses.length;
            cb(err, null);
          } else cb(null, socket!);
        });
      },
    });
    client.on('connectionError', () => {});
    this.client = client;
    return client;
  }

  private armIdle(): void {
    if (this.idleTimer) {
      this.idleTimer.refresh();
      return;
    }
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null;
      if (this.stats.pending === 0) this.dropConnection();
      else this.armIdle();
    }, this.idleTimeoutMs);
    this.idleTimer.unref();
  }

  /** Forget the current connection; the next request opens a fresh one. */
  dropConnection(): void {
    const c = this.client;
    this.client = null;
    if (c) c.destroy().catch(() => {});
  }

  async exchange(wire: Buffer, q: Query, signal: AbortSignal): Promise<CheckedAnswer> {
    if (this.closed) throw new UpstreamError('aborted', 'upstream closed');
    if (this.stats.pending >= this.maxPending) throw new UpstreamError('overloaded', `${this.stats.pending} requests already pending`);
    this.stats.pending++;
    this.stats.requests++;
    try {
      try {
        return await this.request(wire, q, signal);
      } catch (err) {
        // A connection that died while idle fails the first request on it: retry once on a fresh one.
        if (err instanceof UpstreamError && err.retryable && !signal.aborted && !this.closed) {
          this.dropConnection();
          return await this.request(wire, q, signal);
        }
        throw err;
      }
    } finally {
      this.stats.pending--;
      this.armIdle();
    }
  }

  private async request(wire: Buffer, q: Query, signal: AbortSignal): Promise<CheckedAnswer> {
    const client = this.getClient();
    let res: Awaited<ReturnType<Client['request']>>;
    try {
      res = await client.request({
        path: this.url.pathname + this.url.search,
        method: 'POST',
        // A DoH query is safe to send twice; undici serializes non-idempotent requests on one HTTP/2 session.
        idempotent: true,
        headers: { 'content-type': 'application/dns-message', accept: 'application/dns-message' },
        body: wire,
        signal,
      });
    } catch (err) {
      throw classify(err, signal);
    }
    try {
      if (res.statusCode !== 200) throw new UpstreamError('http_status', `HTTP ${res.statusCode}`);
      const ct = String(res.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
      if (ct !== 'application/dns-message') throw new UpstreamError('content_type', `content-type "${ct || 'none'}"`);
      const declared = Number(res.headers['content-length'] ?? NaN);
      if (declared > MAX_ANSWER_BYTES) throw new UpstreamError('oversized', `content-length ${declared} over ${MAX_ANSWER_BYTES}`);
      const chunks: Buffer[] = [];
      let size = 0;
      try {
        for await (const chunk of res.body) {
          size += (chunk as Buffer).length;
          if (size > MAX_ANSWER_BYTES) throw new UpstreamError('oversized', `body over ${MAX_ANSWER_BYTES} bytes`);
          chunks.push(chunk as Buffer);
        }
      } catch (err) {
        if (err instanceof UpstreamError) throw err;
        throw classify(err, signal);
      }
      return checkAnswer(Buffer.concat(chunks, size), q);
    } finally {
      if (!res.body.destroyed) res.body.destroy();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    const c = this.client;
    this.client = null;
    if (c) await c.destroy().catch(() => {});
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
  if (signal?.aborted || code === 'UND_ERR_ABORTED' || e?.name === 'AbortError') reason = 'aborted';
  else if (code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'ECONNREFUSED' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH' || code === 'EADDRNOTAVAIL')
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
    code === 'ERR_HTTP2_STREAM_ERROR' ||
    code === 'ERR_HTTP2_SESSION_ERROR' ||
    code === 'ERR_HTTP2_INVALID_SESSION' ||
    code === 'ERR_HTTP2_GOAWAY_SESSION' ||
    /other side closed|socket hang up|closed/i.test(msg)
  ) {
    reason = 'reset';
    retryable = true;
  }
  return new UpstreamError(reason, `${msg}${code ? ` (${code})` : ''}`, retryable);
}
