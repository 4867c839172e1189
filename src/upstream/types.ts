import { UpstreamError } from './errors.js';
import type { Query } from '../dns/message.js';
import type { CheckedAnswer } from './validate.js';

/** One upstream resolver: sends a prepared query, returns a checked answer or throws UpstreamError. */
export interface Upstream {
  readonly name: string;
  readonly kind: 'doh' | 'dot' | 'plain';
  exchange(wire: Buffer, q: Query, signal: AbortSignal): Promise<CheckedAnswer>;
  close(): Promise<void>;
}

export interface UpstreamStats {
  connects: number;
  requests: number;
  pending: number;
}

/** Requests one upstream takes in flight at once; beyond it, fail fast rather than queue without bound. */
export const MAX_PENDING = 512;
/** The whole connection race to an encrypted upstream (TCP and TLS, every bootstrap IP), ms. */
export const CONNECT_TIMEOUT_MS = 5000;

/**
 * Counts a request in (pending, requests), or refuses it at once: the upstream is closed, or
 * `maxPending` requests are already in flight (fail fast rather than queue without bound).
 * The caller takes `pending` back down when the request settles.
 */
export function admitRequest(stats: UpstreamStats, closed: boolean, maxPending: number): void {
  if (closed) throw new UpstreamError('aborted', 'upstream closed');
  if (stats.pending >= maxPending) throw new UpstreamError('overloaded', `${stats.pending} requests already pending`);
  stats.pending++;
  stats.requests++;
}
