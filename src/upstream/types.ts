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
