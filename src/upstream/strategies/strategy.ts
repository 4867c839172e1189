/**
 * The strategy contract: how a query is spread over a group of upstreams (race.ts, hedged.ts,
 * failover.ts, fallback.ts; sequence.ts is the engine of hedged and failover), and what they
 * tell about each upstream's outcome.
 */
import type { Query } from '../../dns/message.js';
import type { UpstreamError } from '../errors.js';
import type { Upstream } from '../types.js';
import type { CheckedAnswer } from '../validate.js';

export interface Resolution {
  answer: CheckedAnswer;
  upstream: string;
  ms: number;
}

/** Told about each upstream outcome: feeds logs, metrics and health. */
export interface UpstreamObserver {
  success(upstream: Upstream, ms: number, won: boolean): void;
  failure(upstream: Upstream, err: UpstreamError, ms: number): void;
  /** A request cancelled after `ms` because another upstream answered first. */
  lost?(upstream: Upstream, ms: number): void;
}

/** Which upstreams of a group are in (health); without one, all are. */
export interface Availability {
  available(us: readonly Upstream[]): readonly Upstream[];
}

export interface Strategy {
  readonly name: string;
  resolve(wire: Buffer, q: Query, signal: AbortSignal): Promise<Resolution>;
}
