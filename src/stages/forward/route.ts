/**
 * The route stage: `forward` rules send a domain and everything under it to a named
 * upstream group (`cluster.local` to the cluster DNS, a corporate domain to the office
 * resolver). The most specific rule wins; names no rule covers go to the default group.
 */
import { closestZone } from '../../dns/zone-match.js';
import { WAIT, type Context, type Decision, type Next, type Result, type Stage } from '../../pipeline/types.js';

export class RouteStage implements Stage {
  readonly name = 'route';
  private readonly rules = new Map<string, string>();
  /** Queries sent to each group. */
  readonly routed = new Map<string, number>();

  constructor(rules: Record<string, string>) {
    for (const [domain, group] of Object.entries(rules)) this.rules.set(domain.replace(/\.$/, '').toLowerCase(), group);
  }

  /** The group for a lower-cased name without the trailing dot, or undefined (default). */
  groupFor(lname: string): string | undefined {
    if (this.rules.size === 0) return undefined;
    return closestZone(this.rules, lname);
  }

  /** Always waits. */
  decide(): Decision {
    return WAIT;
  }

  wait(ctx: Context, next: Next): Promise<Result> {
    const group = this.groupFor(ctx.query.lname);
    if (group === undefined) return next(ctx);
    this.routed.set(group, (this.routed.get(group) ?? 0) + 1);
    return next({ ...ctx, group });
  }
}
