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
}

export type Source = 'pin' | 'hosts' | 'cache' | 'stale' | 'upstream' | 'policy' | 'error';

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
}

export type Next = (ctx: Context) => Promise<Result>;

/** One step of the resolve path: answers the query itself or hands it on with `next`. */
export interface Stage {
  readonly name: string;
  handle(ctx: Context, next: Next): Promise<Result>;
}
