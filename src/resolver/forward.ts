/** The last stage: send the query upstream through the configured strategy. */
import { rcodeReply } from '../dns/message.js';
import { buildUpstreamQuery } from '../dns/upstream-query.js';
import { Rcode } from '../dns/wire.js';
import type { Strategy } from '../upstream/strategy.js';
import type { Context, Next, Result, Stage } from './types.js';

export class ForwardStage implements Stage {
  readonly name = 'forward';
  constructor(private strategy: Strategy) {}

  update(strategy: Strategy): void {
    this.strategy = strategy;
  }

  async handle(ctx: Context, _next: Next): Promise<Result> {
    // Client EDNS options are hop-by-hop, except a client subnet the policy stage kept.
    const ecs = ctx.query.edns?.options.filter((o): o is { code: number; data: Buffer } => o.code === 8 && o.data !== undefined && o.data.length <= 20);
    const wire = buildUpstreamQuery(ctx.query, ecs?.length ? { ednsOptions: ecs } : {});
    try {
      const r = await this.strategy.resolve(wire, ctx.query, ctx.signal);
      return { wire: r.answer.wire, source: 'upstream', rcode: r.answer.rcode, upstream: r.upstream, packet: r.answer.packet };
    } catch {
      return { wire: rcodeReply(ctx.query, Rcode.SERVFAIL), source: 'error', rcode: Rcode.SERVFAIL };
    }
  }
}
