/**
 * Is this address really serving this name? Opens TCP to ADDRESS:PORT and completes a TLS
 * handshake with NAME as server name, certificate and host name verified (public roots,
 * plus an extra CA when configured). Used by pin health and by `dohd pins learn`.
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import tls, { rootCertificates } from 'node:tls';

export interface TlsProbeOptions {
  port: number;
  timeoutMs: number;
  /** Trusted CAs (PEM); undefined means Node's public roots. */
  ca?: string[];
}

export type TlsProbeResult = { ok: true; ms: number } | { ok: false; error: string };

/** The trust list for probes: public roots plus the extra CA file, if any. */
export function probeCa(caFile?: string): string[] | undefined {
  return caFile ? [...rootCertificates, readFileSync(caFile, 'utf8')] : undefined;
}

export function probeTls(address: string, servername: string, opts: TlsProbeOptions): Promise<TlsProbeResult> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    let done = false;
    const socket = tls.connect({
      host: address,
      port: opts.port,
      servername,
      rejectUnauthorized: true,
      ...(opts.ca ? { ca: opts.ca } : {}),
    });
    const finish = (r: TlsProbeResult) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => finish({ ok: false, error: `no TLS handshake within ${opts.timeoutMs} ms` }), opts.timeoutMs);
    socket.once('secureConnect', () => finish({ ok: true, ms: performance.now() - t0 }));
    socket.once('error', (err: NodeJS.ErrnoException) => finish({ ok: false, error: err.code ? `${err.code}: ${err.message}` : err.message }));
    socket.once('close', () => finish({ ok: false, error: 'connection closed during the TLS handshake' }));
  });
}
