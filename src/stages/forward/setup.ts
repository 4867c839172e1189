/**
 * The forward stage's setup: the upstream groups (every transport, strategy and their health),
 * the routing of forward rules to groups, and the stage that asks them.
 */
import type { Logger } from 'pino';
import type { Config } from '../../config/schema.js';
import type { GuardOptions } from '../../upstream/guard.js';
import type { UpstreamReporter } from '../../upstream/report.js';
import type { UpstreamObserver } from '../../upstream/strategies/strategy.js';
import { buildSecureUpstream, UpstreamGroups } from '../../upstream/strategies/groups.js';
import type { Upstream } from '../../upstream/types.js';
import type { LoopGuard } from '../loop/probe.js';
import { RouteStage } from './route.js';
import { ForwardStage } from './stage.js';

/** The config keys whose change rebuilds the groups on reload (timeoutMs: every strategy lets the losers of a query linger until its deadline). */
export const FORWARD_RELOADS = ['upstreams', 'strategy', 'groups', 'forward', 'fallback', 'hedge', 'failover', 'health', 'ladder', 'timeoutMs'] as const satisfies readonly (keyof Config)[];

export interface UpstreamParts {
  groups: UpstreamGroups;
  /** Every upstream transport (DoH, DoT, plain) of every group. */
  upstreams: Upstream[];
  routeStage: RouteStage;
  forwardStage: ForwardStage;
}

/** The upstream groups (with their health, added to the reporter), routing and forwarding. */
export function buildUpstreams(
  config: Config,
  deps: {
    log: Logger;
    reporter: UpstreamReporter;
    loopGuard: LoopGuard;
    /** Failures of the paths inside a ladder (metrics only: health and logs see the provider). */
    pathObserver: Pick<UpstreamObserver, 'failure'>;
    guard: GuardOptions;
  },
): UpstreamParts {
  const { log, reporter, loopGuard, pathObserver, guard } = deps;
  const defaults = config.upstreams.map((u) => buildSecureUpstream(u, { log, ladder: config.ladder, observer: pathObserver, guard }));
  const groups = new UpstreamGroups(config, reporter, { default: defaults, log, wrap: (u) => loopGuard.wrap(u), guard });
  reporter.add(groups.health);
  return { groups, upstreams: groups.raw, routeStage: new RouteStage(config.forward), forwardStage: new ForwardStage(groups.defaultStrategy, groups) };
}
