/**
 * Builds the daemon's parts from a validated config: the upstream groups and what routes to
 * them, the cache, the pins, and the resolve pipeline that strings the stages together. Used at
 * start-up and again, part by part, on reload (reload.ts).
 */
import type { Logger } from 'pino';
import { staleClientTimeout } from '../config/check.js';
import type { Config } from '../config/schema.js';
import { Pipeline } from '../pipeline/pipeline.js';
import type { Stage } from '../pipeline/types.js';
import type { PolicyStage } from '../stages/admission/stage.js';
import { AnswerCache } from '../stages/cache/answer-cache.js';
import { CacheStage } from '../stages/cache/stage.js';
import type { CoalesceStage } from '../stages/coalesce/stage.js';
import { RouteStage } from '../stages/forward/route.js';
import { ForwardStage } from '../stages/forward/stage.js';
import type { HostsFile } from '../stages/hosts/hosts-file.js';
import { HostsStage } from '../stages/hosts/stage.js';
import { LocalZonesStage } from '../stages/local-zones/stage.js';
import type { LoopGuard } from '../stages/loop/probe.js';
import { LoopStage } from '../stages/loop/stage.js';
import { PinHealth } from '../stages/pins/health.js';
import { buildPins, PinsStage } from '../stages/pins/stage.js';
import type { GuardOptions } from '../upstream/guard.js';
import type { UpstreamObserver } from '../upstream/strategies/strategy.js';
import { buildSecureUpstream, UpstreamGroups } from '../upstream/strategies/groups.js';
import type { UpstreamReporter } from '../upstream/report.js';
import type { Upstream } from '../upstream/types.js';

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

/** The answer cache and its stage. */
export function buildCache(config: Config, log: Logger, now: () => number): { cache: AnswerCache; cacheStage: CacheStage } {
  const c = config.cache;
  const cache = new AnswerCache({
    maxEntries: c.maxEntries,
    maxBytes: c.maxBytes,
    minTtl: c.minTtl,
    maxTtl: c.maxTtl,
    negativeMaxTtl: c.negativeMaxTtl,
    staleWindow: c.staleWindow,
    now,
  });
  const cacheStage = new CacheStage(cache, {
    staleTtl: c.staleTtl,
    staleClientTimeoutMs: staleClientTimeout(config),
    staleRecheckMs: c.staleRecheckMs,
    prefetchHits: c.prefetchHits,
    prefetchThreshold: c.prefetchThreshold,
    refreshTimeoutMs: config.timeoutMs,
    log,
    now,
  });
  return { cache, cacheStage };
}

/** The pins, and their health checks when any pin asks for `verify`. */
export function buildPinsStage(config: Config, log: Logger): { pinsStage: PinsStage; pinHealth: PinHealth | undefined } {
  const pins = buildPins(config);
  const pinHealth = [...pins.values()].some((p) => p.verify) ? new PinHealth(pins, { ...config.pinVerify, log }) : undefined;
  return { pinsStage: new PinsStage(pins, pinHealth), pinHealth };
}

/** admission → loop → pins → hosts → local zones → cache → coalesce → route → forward (upstream group strategy) */
export function composePipeline(
  config: Config,
  parts: {
    policy: PolicyStage;
    loopGuard: LoopGuard;
    pinsStage: PinsStage;
    hostsFile: HostsFile | undefined;
    cacheStage: CacheStage;
    coalesceStage: CoalesceStage;
    routeStage: RouteStage;
    forwardStage: ForwardStage;
  },
): { pipeline: Pipeline; localZones: LocalZonesStage } {
  const stages: Stage[] = [parts.policy, new LoopStage(parts.loopGuard), parts.pinsStage];
  if (parts.hostsFile) stages.push(new HostsStage(parts.hostsFile, config.hosts!.ttl));
  const route = parts.routeStage;
  const localZones = new LocalZonesStage(config.localZones, (lname) => route.groupFor(lname) !== undefined);
  stages.push(localZones, parts.cacheStage, parts.coalesceStage, parts.routeStage, parts.forwardStage);
  return { pipeline: new Pipeline(stages), localZones };
}
