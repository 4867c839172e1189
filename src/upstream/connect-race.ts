/**
 * Happy eyeballs over a provider's bootstrap IPs (RFC 8305 §5): the first address gets a TLS
 * connection attempt at once; each further address is tried when the previous attempt fails
 * or after `staggerMs` (250 ms, RFC 8305's "Connection Attempt Delay") without a completed
 * handshake, whichever comes first. The first handshake to complete wins and the others are
 * destroyed. A black-holed address then costs `staggerMs` once, not the connect timeout, and
 * one that fails at once (ENETUNREACH, ECONNREFUSED) costs nothing: the next is tried at once.
 *
 * The race covers the TLS handshake, not only TCP: an address whose handshake is reset (a
 * filter reading the SNI) loses to one that completes. Every attempt's outcome is kept, so
 * the caller can tell "this IP is unreachable" from "every IP resets the handshake".
 */
import { checkServerIdentity, connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { UNREACHABLE_CODES } from './errors.js';

/**
 * What the certificate is checked against: the server name when there is one (sent as SNI);
 * for an IP-literal upstream (`https://1.1.1.1/`, `tls://1.1.1.1`) no SNI, and the certificate
 * must name the URL's IP or the bootstrap IP the connection went to (both are the provider's,
 * as configured; a provider's certificate may list only some of its addresses).
 */
export function serverIdentity(servername: string | undefined, urlHost: string): ConnectionOptions {
  if (servername) return { servername };
  const ip = urlHost.replace(/^\[|\]$/g, '');
  return { checkServerIdentity: (host, cert) => (checkServerIdentity(ip, cert) === undefined ? undefined : checkServerIdentity(host, cert)) };
}

/** RFC 8305 §8: recommended Connection Attempt Delay. */
export const DEFAULT_STAGGER_MS = 250;

export interface RaceAttempt {
  address: string;
  /** ms from the start of the race to this attempt's outcome. */
  ms: number;
  /** Node error code (ECONNRESET, ETIMEDOUT, ERR_TLS_CERT_ALTNAME_INVALID, ...), 'ok', 'lost' or 'pending'. */
  outcome: string;
  error?: Error;
  /** The attempt's socket had finished its TCP connect before it failed (the failure came in or after TLS). */
  tcpConnected: boolean;
  /** A certificate that was refused: who issued it, and whom it names (interception shows here). */
  issuer?: string;
  subject?: string;
  /** A server name was sent in the ClientHello. */
  sni: boolean;
}

/**
 * How a whole race failed, as an upstream failure reason (metrics label):
 * - `intercepted`: a certificate was presented that does not chain to a trusted CA, or names someone else;
 * - `blocked_sni`: TCP connected, then the handshake that named the server was reset (an SNI filter);
 * - `unreachable`: no address answered at all (packets dropped: a black hole);
 * - `connect`: refused, no route, and the rest.
 */
export type RaceFailure = 'intercepted' | 'blocked_sni' | 'unreachable' | 'tls' | 'connect';

export interface RaceOptions {
  addresses: readonly string[];
  port: number;
  /** Index of the address to try first (the one that worked last time). */
  first?: number;
  staggerMs?: number;
  /** Gives up on the whole race after this long. */
  timeoutMs: number;
  /** TLS options shared by every attempt (servername, secureContext, ALPNProtocols, ...): host and port are set per attempt. */
  tls: ConnectionOptions;
  signal?: AbortSignal;
}

export interface RaceWin {
  socket: TLSSocket;
  address: string;
  index: number;
  attempts: RaceAttempt[];
}

/** Every attempt failed: `attempts` says how each one did. */
export class ConnectRaceError extends Error {
  override readonly name = 'ConnectRaceError';
  readonly code: string;
  constructor(
    message: string,
    readonly attempts: RaceAttempt[],
    /** The most telling underlying error: a TLS one over a reset over a timeout. */
    override readonly cause: Error | undefined,
  ) {
    super(message);
    this.code = (cause as NodeJS.ErrnoException | undefined)?.code ?? 'ETIMEDOUT';
    this.reason = raceFailure(attempts);
  }
  readonly reason: RaceFailure;
}

/** Certificate verification failures (OpenSSL's and Node's name check). */
const CERT_CODES = /^(CERT_|UNABLE_TO_|DEPTH_ZERO|SELF_SIGNED|HOSTNAME_MISMATCH|ERR_TLS_CERT_ALTNAME_INVALID)/;
/** Other TLS failures (protocol alerts, no common ALPN or cipher). */
const TLS_CODES = /^(ERR_TLS|ERR_SSL|ERR_OSSL)/;

/**
 * "IP unreachable": the addresses of a won race that had not even connected TCP when another
 * address completed its handshake (their packets are dropped), each reported once per `seen`.
 */
export function noteDropped(win: RaceWin, seen: Set<string>, log: { warn(o: object, m: string): void } | undefined, upstream: string): string[] {
  const dropped = win.attempts.filter((a) => a.outcome === 'lost' && !a.tcpConnected && a.address !== win.address).map((a) => a.address);
  for (const address of dropped) {
    if (seen.has(address)) continue;
    if (seen.size > 64) seen.clear();
    seen.add(address);
    log?.warn({ upstream, address, reason: 'ip_unreachable', via: win.address }, 'bootstrap IP unreachable: no answer from it while another address of the same provider connected');
  }
  return dropped;
}

export function raceFailure(attempts: readonly RaceAttempt[]): RaceFailure {
  if (attempts.some((a) => CERT_CODES.test(a.outcome))) return 'intercepted';
  if (attempts.some((a) => a.tcpConnected && a.sni && (a.outcome === 'ECONNRESET' || a.outcome === 'ECLOSED' || a.outcome === 'EPIPE'))) return 'blocked_sni';
  if (attempts.length > 0 && attempts.every((a) => a.outcome === 'ETIMEDOUT' && !a.tcpConnected)) return 'unreachable';
  if (attempts.some((a) => TLS_CODES.test(a.outcome))) return 'tls';
  return 'connect';
}

/** Which failure explains most: certificate problems, then resets, then connect failures, then timeouts. */
function rank(a: RaceAttempt): number {
  const c = a.outcome;
  if (CERT_CODES.test(c) || TLS_CODES.test(c)) return 4;
  if (c === 'ECONNRESET' || c === 'EPIPE' || c === 'ECLOSED') return 3;
  if (UNREACHABLE_CODES.has(c)) return 2;
  return 1;
}

export function raceTlsConnect(opts: RaceOptions): Promise<RaceWin> {
  const n = opts.addresses.length;
  const stagger = opts.staggerMs ?? DEFAULT_STAGGER_MS;
  const order = Array.from({ length: n }, (_, i) => ((opts.first ?? 0) + i) % n);
  const t0 = performance.now();
  return new Promise<RaceWin>((resolve, reject) => {
    const live = new Map<number, TLSSocket>();
    const attempts: RaceAttempt[] = [];
    let next = 0;
    let done = false;
    let staggerTimer: NodeJS.Timeout | undefined;
    const overall = setTimeout(() => finish(null), opts.timeoutMs);
    const onAbort = () => finish(null, new Error('cancelled'));
    opts.signal?.addEventListener('abort', onAbort, { once: true });

    const finish = (win: { index: number; socket: TLSSocket; attempt: RaceAttempt } | null, abortErr?: Error) => {
      if (done) return;
      done = true;
      clearTimeout(overall);
      clearTimeout(staggerTimer);
      opts.signal?.removeEventListener('abort', onAbort);
      for (const [i, s] of live) {
        if (win && s === win.socket) continue;
        const a = attempts.find((x) => x.address === opts.addresses[i] && x.outcome === 'pending');
        if (a) {
          a.outcome = win ? 'lost' : 'ETIMEDOUT';
          a.ms = performance.now() - t0;
        }
        s.removeAllListeners();
        s.on('error', () => {});
        s.destroy();
      }
      live.clear();
      if (win) {
        resolve({ socket: win.socket, address: opts.addresses[win.index]!, index: win.index, attempts });
        return;
      }
      if (abortErr) {
        reject(Object.assign(abortErr, { code: 'ABORT_ERR', attempts }));
        return;
      }
      const worst = [...attempts].sort((a, b) => rank(b) - rank(a))[0];
      const parts = attempts.map((a) =>
        a.outcome === 'ETIMEDOUT' && !a.error
          ? `${a.address}: no answer in ${Math.round(a.ms)} ms`
          : `${a.address}: ${a.error?.message && !a.error.message.includes(a.outcome) ? `${a.error.message} (${a.outcome})` : (a.error?.message ?? a.outcome)}`,
      );
      reject(new ConnectRaceError(`cannot connect (${parts.join('; ')})`, attempts, worst?.error ?? (worst ? Object.assign(new Error(`connect timeout`), { code: 'ETIMEDOUT' }) : undefined)));
    };

    const startNext = () => {
      clearTimeout(staggerTimer);
      if (done || next >= n) return;
      const index = order[next++]!;
      const address = opts.addresses[index]!;
      const attempt: RaceAttempt = { address, ms: 0, outcome: 'pending', tcpConnected: false, sni: !!opts.tls.servername };
      attempts.push(attempt);
      let socket: TLSSocket;
      try {
        // Verified below, not by tls itself: a refused certificate is still read (its issuer names an interceptor).
        socket = tlsConnect({ ...opts.tls, host: address, port: opts.port, rejectUnauthorized: false });
      } catch (err) {
        attempt.outcome = (err as NodeJS.ErrnoException).code ?? 'other';
        attempt.error = err as Error;
        attempt.ms = performance.now() - t0;
        queueMicrotask(failed);
        return;
      }
      live.set(index, socket);
      socket.once('connect', () => (attempt.tcpConnected = true));
      socket.once('secureConnect', () => {
        if (!socket.authorized) {
          const code = String(socket.authorizationError ?? 'CERT_REJECTED');
          const cert = socket.getPeerCertificate();
          const name = (x: Record<string, string | string[] | undefined> | undefined) => {
            const v = x?.O ?? x?.CN;
            return Array.isArray(v) ? v.join(', ') : v;
          };
          const issuer = name(cert?.issuer as never);
          const subject = name(cert?.subject as never) ?? cert?.subjectaltname;
          if (issuer) attempt.issuer = issuer;
          if (subject) attempt.subject = subject;
          const err = Object.assign(
            new Error(`certificate refused (${code})${issuer ? `: issued by "${issuer}"` : ''}${subject ? ` for "${subject}"` : ''}`),
            { code },
          );
          onFail(err);
          return;
        }
        attempt.outcome = 'ok';
        attempt.ms = performance.now() - t0;
        live.delete(index);
        socket.removeAllListeners('error');
        socket.removeAllListeners('close');
        // As undici's own connector: no Nagle delay on small messages, and TCP keepalive.
        socket.setNoDelay(true);
        socket.setKeepAlive(true, 60_000);
        finish({ index, socket, attempt });
      });
      const onFail = (err?: Error) => {
        if (done || attempt.outcome !== 'pending') return;
        attempt.outcome = (err as NodeJS.ErrnoException | undefined)?.code ?? (err ? 'other' : 'ECLOSED');
        if (err) attempt.error = err;
        else attempt.error = Object.assign(new Error('connection closed during the TLS handshake'), { code: 'ECONNRESET' });
        attempt.ms = performance.now() - t0;
        live.delete(index);
        socket.destroy();
        failed();
      };
      socket.on('error', onFail);
      socket.once('close', () => onFail());
      // The next address starts after the stagger, or as soon as this one fails.
      staggerTimer = setTimeout(startNext, stagger);
    };

    const failed = () => {
      if (done) return;
      if (next < n) startNext();
      else if (live.size === 0) finish(null);
    };

    startNext();
  });
}
