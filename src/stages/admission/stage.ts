/**
 * The first stage: who may ask, how often, and what is answered before anything else.
 *
 *   rate limit (per /24 or /56) → access control → EDNS version (BADVERS) →
 *   client subnet stripped → qtype ANY (RFC 8482)
 *
 * Over the rate limit a UDP query is dropped (a spoofed source gets nothing to reflect),
 * a TCP query gets REFUSED (its source is proven; silence would only keep the connection
 * open). Sources outside the allow list get REFUSED. Packets that do not decode never reach
 * the pipeline: `screenReject` applies the same limit and list to their error replies.
 */
import { minimalAnyReply, QTYPE_ANY } from '../../dns/any.js';
import { EDE_PROHIBITED } from '../../dns/ede.js';
import { rcodeReply } from '../../dns/message.js';
import { Rcode } from '../../dns/wire.js';
import { Acl } from './acl.js';
import { RateLimiter } from './ratelimit.js';
import { PASS, type Context, type Result, type Stage, type Transport } from '../../pipeline/types.js';

/** Extended RCODE 16 (RFC 6891 §6.1.3): the header carries 0, the OPT record's upper byte 1. */
export const RCODE_BADVERS = 16;
/** EDNS Client Subnet option code (RFC 7871). */
export const EDNS_CLIENT_SUBNET = 8;

export type AnyPolicy = 'hinfo' | 'refuse' | 'forward';

export interface PolicyOptions {
  acl: readonly string[];
  rateLimit: { qps: number; burst?: number; maxClients: number; exempt?: readonly string[] };
  keepEcs: boolean;
  any: AnyPolicy;
  /** Milliseconds clock for the rate limiter (tests). */
  now?: () => number;
}

/** Why a packet got no reply at all. */
export type DropReason = 'ratelimit' | 'acl' | 'response' | 'short';

/** Plain counters, read by metrics and tests; they only ever grow. */
export interface PolicyCounters {
  /** Queries refused because the source is not in the allow list. */
  refused: number;
  /** Queries over the rate limit (UDP dropped, TCP refused). */
  rateLimited: number;
  /** Packets that got no reply, by reason. */
  dropped: Record<DropReason, number>;
  /** Packets that did not decode as a query, by reason (FORMERR, NOTIMP or dropped). */
  rejected: Record<string, number>;
  /** Queries with an EDNS version above 0 (answered BADVERS). */
  badvers: number;
  /** Queries whose client subnet option was removed. */
  ecsStripped: number;
  /** qtype ANY queries answered by policy (HINFO or REFUSED). */
  any: number;
}

export class PolicyStage implements Stage {
  readonly name = 'policy';
  readonly counters: PolicyCounters = {
    refused: 0,
    rateLimited: 0,
    dropped: { ratelimit: 0, acl: 0, response: 0, short: 0 },
    rejected: {},
    badvers: 0,
    ecsStripped: 0,
    any: 0,
  };
  limiter!: RateLimiter;
  private acl!: Acl;
  private keepEcs = false;
  private anyPolicy: AnyPolicy = 'hinfo';

  constructor(opts: PolicyOptions) {
    this.update(opts);
  }

  /** Applies new options (configuration reload); the counters carry on, the buckets start afresh. */
  update(opts: PolicyOptions): void {
    this.acl = new Acl(opts.acl);
    this.limiter = new RateLimiter({ ...opts.rateLimit, now: opts.now });
    this.keepEcs = opts.keepEcs;
    this.anyPolicy = opts.any;
  }

  /** Every check here is synchronous: the fast lane runs them as they are. */
  decide(ctx: Context): Result | typeof PASS {
    const q = ctx.query;
    if (!this.limiter.take(ctx.client.address)) {
      this.counters.rateLimited++;
      if (ctx.transport === 'udp') {
        this.counters.dropped.ratelimit++;
        return { wire: rcodeReply(q, Rcode.REFUSED), source: 'policy', rcode: Rcode.REFUSED, drop: true };
      }
      return { wire: rcodeReply(q, Rcode.REFUSED), source: 'policy', rcode: Rcode.REFUSED };
    }
    if (!this.acl.allows(ctx.client.address)) {
      this.counters.refused++;
      return { wire: rcodeReply(q, Rcode.REFUSED), source: 'policy', rcode: Rcode.REFUSED, ede: EDE_PROHIBITED };
    }
    if (q.edns && q.edns.version > 0) {
      this.counters.badvers++;
      return { wire: rcodeReply(q, RCODE_BADVERS & 0xf), source: 'policy', rcode: RCODE_BADVERS };
    }
    if (q.edns && !this.keepEcs && q.edns.options.some((o) => o.code === EDNS_CLIENT_SUBNET)) {
      q.edns.options = q.edns.options.filter((o) => o.code !== EDNS_CLIENT_SUBNET);
      this.counters.ecsStripped++;
    }
    if (q.qtype === QTYPE_ANY && this.anyPolicy !== 'forward') {
      this.counters.any++;
      if (this.anyPolicy === 'refuse') return { wire: rcodeReply(q, Rcode.REFUSED), source: 'policy', rcode: Rcode.REFUSED };
      return { wire: minimalAnyReply(q), source: 'policy', rcode: Rcode.NOERROR };
    }
    return PASS;
  }

  /**
   * For a packet that did not decode as a query: counts it, and says whether its error
   * reply (FORMERR, NOTIMP) may be sent. Not to sources outside the allow list or over
   * their rate limit.
   */
  screenReject(_transport: Transport, client: { address: string }, reason: string, hasReply: boolean): boolean {
    this.counters.rejected[reason] = (this.counters.rejected[reason] ?? 0) + 1;
    if (!hasReply) {
      if (reason === 'response' || reason === 'short') this.counters.dropped[reason]++;
      return false;
    }
    if (!this.limiter.take(client.address)) {
      this.counters.rateLimited++;
      this.counters.dropped.ratelimit++;
      return false;
    }
    if (!this.acl.allows(client.address)) {
      this.counters.dropped.acl++;
      return false;
    }
    return true;
  }
}
