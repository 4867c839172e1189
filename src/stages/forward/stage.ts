/** The last stage: send the query upstream through the configured strategy. */
import { edeForFailure, edeOf } from '../../dns/ede.js';
import { rcodeReply } from '../../dns/message.js';
import { buildUpstreamQuery } from '../../dns/upstream-query.js';
import { Rcode } from '../../dns/wire.js';
import { UpstreamError } from '../../upstream/errors.js';
import type { Strategy } from '../../upstream/strategies/strategy.js';
import { WAIT, type Context, type Decision, type Next, type Result, type Stage } from '../../pipeline/types.js';

/** Named upstream groups, for queries the route stage sent elsewhere than the default. */
export interface GroupStrategies {
  strategyFor(group: string): Strategy | undefined;
}

export class ForwardStage implements Stage {
  readonly name = 'forward';
  constructor(
    private strategy: Strategy,
    private readonly groups?: GroupStrategies,
  ) {}

  update(strategy: Strategy): void {
    this.strategy = strategy;
  }

  /** Always waits. */
  decide(): Decision {
    return WAIT;
  }

  async wait(ctx: Context, _next: Next): Promise<Result> {
    // Client EDNS options are hop-by-hop, except a client subnet the policy stage kept.
    const ecs = ctx.query.edns?.options.filter((o): o is { code: number; data: Buffer } => o.code === 8 && o.data !== undefined && o.data.length <= 20);
    const wire = buildUpstreamQuery(ctx.query, ecs?.length ? { ednsOptions: ecs } : {});
    try {
      const strategy = (ctx.group !== undefined && this.groups?.strategyFor(ctx.group)) || this.strategy;
      const r = await strategy.resolve(wire, ctx.query, ctx.signal);
      const ede = edeOf(r.answer.packet);
      const result: Result = { wire: r.answer.wire, source: 'upstream', rcode: r.answer.rcode, upstream: r.upstream, packet: r.answer.packet };
      // The upstream's own Extended DNS Errors go on to the client.
      if (ede) result.ede = ede;
      return result;
    } catch (err) {
      // Upstreams failing is an answer (SERVFAIL); anything else is a bug the handler logs and counts.
      if (!(err instanceof UpstreamError)) throw err;
      return { wire: rcodeReply(ctx.query, Rcode.SERVFAIL), source: 'error', rcode: Rcode.SERVFAIL, ede: edeForFailure(err) };
    }
  }
}
