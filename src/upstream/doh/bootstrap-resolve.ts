/**
 * Finds an upstream's addresses by asking DoH servers reached by IP (cloudflared's
 * "bootstrap" URLs), never the system resolver: dohd may be the system resolver. Asked
 * once, at start-up; the answers become the upstream's bootstrap IPs.
 */
import type { Logger } from 'pino';
import { makeQuery } from '../../dns/local-query.js';
import { buildUpstreamQuery } from '../../dns/upstream-query.js';
import { DohUpstream } from './doh.js';
import { UpstreamError } from '../errors.js';
import { CONNECT_TIMEOUT_MS } from '../types.js';
import { RaceStrategy } from '../strategies/race.js';

export class BootstrapError extends Error {
  override name = 'BootstrapError';
}

/** A and AAAA addresses of `host`, raced over every bootstrap DoH URL; throws BootstrapError when none are found. */
export async function resolveThroughDoh(host: string, bootstrapUrls: readonly string[], opts: { timeoutMs?: number; log?: Logger; ca?: string } = {}): Promise<string[]> {
  const timeoutMs = opts.timeoutMs ?? CONNECT_TIMEOUT_MS;
  const upstreams = bootstrapUrls.map((url) => new DohUpstream({ url, ...(opts.ca ? { ca: opts.ca } : {}) }, { log: opts.log, connectTimeoutMs: timeoutMs }));
  const strategy = new RaceStrategy(upstreams, timeoutMs);
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const results = await Promise.allSettled(
      (['A', 'AAAA'] as const).map(async (type) => {
        const q = makeQuery(host, type);
        const r = await strategy.resolve(buildUpstreamQuery(q), q, signal);
        return (r.answer.packet.answers ?? []).filter((a) => a.type === type).map((a) => String((a as { data: unknown }).data));
      }),
    );
    const addresses = results.flatMap((r) => (r.status === 'fulfilled' ? r.value : []));
    if (addresses.length) return [...new Set(addresses)];
    const reasons = results.map((r) => (r.status === 'rejected' ? describe(r.reason) : 'no address in the answer'));
    throw new BootstrapError(`cannot find the address of ${host} through ${bootstrapUrls.join(', ')}: ${[...new Set(reasons)].join('; ')}`);
  } finally {
    await Promise.all(upstreams.map((u) => u.close()));
  }
}

function describe(err: unknown): string {
  if (err instanceof UpstreamError) return `${err.reason} (${err.message})`;
  return err instanceof Error ? err.message : String(err);
}
