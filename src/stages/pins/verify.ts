/**
 * Is this address really serving this name? Opens TCP to ADDRESS:PORT and completes a TLS
 * handshake with NAME as server name, certificate and host name verified (public roots,
 * plus an extra CA when configured). Used by pin health and by `dohd pins learn`.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { performance } from 'node:perf_hooks';
import tls, { rootCertificates } from 'node:tls';

export interface TlsProbeOptions {
  port: number;
  timeoutMs: number;
  /** Trusted CAs (PEM); undefined means Node's public roots. */
  ca?: string[];
  /** ALPN protocols to offer (the doctor offers h2 and http/1.1, as a client would). */
  alpn?: string[];
}

export type TlsProbeResult =
  | { ok: true; ms: number; /** TLS version, e.g. TLSv1.3. */ protocol?: string; /** The certificate issuer's CN. */ issuer?: string }
  | {
      ok: false;
      ms: number;
      /** One line: the error code and message, or what did not happen in time. */
      error: string;
      /** How far it got: no TCP connection, or no TLS handshake over it. */
      stage?: 'tcp' | 'tls';
      /** The socket's error, when there was one (no time-out). */
      cause?: NodeJS.ErrnoException;
      timedOut?: true;
    };

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** The trust list for probes: public roots plus the extra CA file, if any. */
export function probeCa(caFile?: string): string[] | undefined {
  return caFile ? [...rootCertificates, readFileSync(caFile, 'utf8')] : undefined;
}

/**
 * The one TLS probe (pin health, `dohd pins learn`, the doctor's reachability check): TCP to
 * ADDRESS:PORT, then a TLS handshake with NAME as server name, certificate and host name
 * verified. Never rejects.
 */
export function probeTls(address: string, name: string, opts: TlsProbeOptions): Promise<TlsProbeResult> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    let done = false;
    let tcpUp = false;
    const socket = tls.connect({
      host: address,
      port: opts.port,
      servername: isIP(name) ? undefined : name,
      rejectUnauthorized: true,
      ...(opts.ca ? { ca: opts.ca } : {}),
      ...(opts.alpn ? { ALPNProtocols: opts.alpn } : {}),
    });
    const finish = (r: DistributiveOmit<TlsProbeResult, 'ms'> & { ms?: number }) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ ...r, ms: r.ms ?? performance.now() - t0 } as TlsProbeResult);
    };
    const timer = setTimeout(
      () => finish({ ok: false, error: `no TLS handshake within ${opts.timeoutMs} ms`, stage: tcpUp ? 'tls' : 'tcp', timedOut: true }),
      opts.timeoutMs,
    );
    socket.once('connect', () => (tcpUp = true));
    socket.once('secureConnect', () => {
      const cn: string | string[] | undefined = socket.getPeerCertificate()?.issuer?.CN;
      const issuer = Array.isArray(cn) ? cn.join(',') : cn;
      const protocol = socket.getProtocol() ?? undefined;
      finish({ ok: true, ...(protocol ? { protocol } : {}), ...(issuer ? { issuer } : {}) });
    });
    socket.once('error', (err: NodeJS.ErrnoException) =>
      finish({ ok: false, error: err.code ? `${err.code}: ${err.message}` : err.message, stage: tcpUp ? 'tls' : 'tcp', cause: err }),
    );
    socket.once('close', () => finish({ ok: false, error: 'connection closed during the TLS handshake', stage: tcpUp ? 'tls' : 'tcp' }));
  });
}
