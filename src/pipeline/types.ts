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

/** What `decide` returns to hand the query on to the next stage. */
export const PASS: unique symbol = Symbol('pass');
/** What `decide` returns when the stage needs to wait (I/O, a timer): the pipeline then runs its `wait`. */
export const WAIT: unique symbol = Symbol('wait');

/** A stage's synchronous outcome: its answer, PASS (the next stage's turn) or WAIT (run its `wait`). */
export type Decision = Result | typeof PASS | typeof WAIT;

/**
 * One step of the resolve path: the one stage contract. `decide` runs first, always, without
 * a promise (cache hits, admission, pins, hosts, local zones answer there). A stage that has
 * to wait returns WAIT: the pipeline arms the query's deadline (`ctx.signal`) and calls its
 * `wait` at once, with nothing of another query in between, so `wait` may take over what
 * `decide` just found (the cache's lookup) instead of looking again. `next` runs the stages
 * after this one.
 */
export interface Stage {
  readonly name: string;
  decide(ctx: Context, next: Next): Decision;
  /** Required when `decide` can return WAIT. */
  wait?(ctx: Context, next: Next): Promise<Result>;
}
