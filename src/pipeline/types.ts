import type { Ede } from '../dns/ede.js';
import type { Packet, Query } from '../dns/message.js';

export type Transport = 'udp' | 'tcp';

/** Everything a stage may need to know about one client query. */
export interface Context {
  query: Query;
  transport: Transport;
  client: { address: string; port: number };
  /** Aborted when the query's deadline passes (or the daemon stops). */
  signal: AbortSignal;
  /** performance.now() when the query arrived. */
  received: number;
  /** Upstream group chosen by the route stage (`default` when unset). */
  group?: string;
}

export type Source = 'pin' | 'hosts' | 'local' | 'cache' | 'stale' | 'upstream' | 'policy' | 'error';

/** A stage's answer. `wire` may carry any ID and no OPT record: the answer stage fixes both. */
export interface Result {
  wire: Buffer;
  source: Source;
  rcode: number;
  upstream?: string;
  /** Decoded form, when a stage had it anyway (upstream answers). */
  packet?: Packet;
  /** Send nothing back (e.g. a UDP query over the rate limit). */
  drop?: boolean;
  /** `wire` is a copy made for this query alone: the answer step may write into it. */
  owned?: boolean;
  /** Extended DNS Errors (RFC 8914) for the client, when it sent OPT: added by the answer step. */
  ede?: readonly Ede[];
  /** Answered by a built-in local zone: why ("RFC 6761 localhost"), for `dohd query`. */
  local?: string;
}

export type Next = (ctx: Context) => Promise<Result>;

/** What `handleSync` returns to hand the query on to the next stage. */
export const PASS: unique symbol = Symbol('pass');

/**
 * A stage's synchronous outcome: its answer, PASS (done here, next stage), or undefined
 * (it cannot decide without waiting: run its `handle`). Returning undefined must leave no
 * trace (no counter, no token taken), since `handle` then runs from the start.
 */
export type SyncOutcome = Result | typeof PASS | undefined;

/** One step of the resolve path: answers the query itself or hands it on with `next`. */
export interface Stage {
  readonly name: string;
  handle(ctx: Context, next: Next): Promise<Result>;
  /** Optional fast lane (cache hits, policy, pins): the same decision as `handle`, without a promise. */
  handleSync?(ctx: Context, next: Next): SyncOutcome;
}
