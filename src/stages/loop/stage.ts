/**
 * The loop stage, right after policy: a query for one of dohd's own loop probes came
 * back in on a listener, so some upstream forwards to dohd. It is answered SERVFAIL here,
 * never forwarded again (forwarding it would send it around the loop once more).
 * Decided at once (no waiting), so it keeps the fast lane synchronous.
 */
import { EDE_LOOP } from '../../dns/ede.js';
import { rcodeReply } from '../../dns/message.js';
import { Rcode } from '../../dns/wire.js';
import type { LoopGuard } from './probe.js';
import { PASS, type Context, type Result, type Stage } from '../../pipeline/types.js';

export class LoopStage implements Stage {
  readonly name = 'loop';
  constructor(private readonly guard: LoopGuard) {}

  decide(ctx: Context): Result | typeof PASS {
    if (this.guard.match(ctx.query) === undefined) return PASS;
    this.guard.detected(ctx.query.lname, ctx.client, ctx.transport);
    return { wire: rcodeReply(ctx.query, Rcode.SERVFAIL), source: 'error', rcode: Rcode.SERVFAIL, ede: EDE_LOOP };
  }
}
