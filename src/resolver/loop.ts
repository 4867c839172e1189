/**
 * The loop stage, first in the pipeline: a query for one of dohd's own loop probes came
 * back in on a listener, so some upstream forwards to dohd. It is answered SERVFAIL here,
 * never forwarded again (forwarding it would send it around the loop once more).
 */
import { rcodeReply } from '../dns/message.js';
import { Rcode } from '../dns/wire.js';
import type { LoopGuard } from '../upstream/loop-guard.js';
import type { Context, Next, Result, Stage } from './types.js';

export class LoopStage implements Stage {
  readonly name = 'loop';
  constructor(private readonly guard: LoopGuard) {}

  async handle(ctx: Context, next: Next): Promise<Result> {
    if (this.guard.match(ctx.query.lname) === undefined) return next(ctx);
    this.guard.detected(ctx.query.lname, ctx.client, ctx.transport);
    return { wire: rcodeReply(ctx.query, Rcode.SERVFAIL), source: 'error', rcode: Rcode.SERVFAIL };
  }
}
