/**
 * The one place that orders the stages: the resolve pipeline strung from the parts the stages'
 * setups built (stages/<name>/setup.ts). Used at start-up and again after every reload (reload.ts).
 */
import type { Config } from '../config/schema.js';
import { Pipeline } from '../pipeline/pipeline.js';
import type { Stage } from '../pipeline/types.js';
import type { PolicyStage } from '../stages/admission/stage.js';
import type { CacheStage } from '../stages/cache/stage.js';
import type { CoalesceStage } from '../stages/coalesce/stage.js';
import type { RouteStage } from '../stages/forward/route.js';
import type { ForwardStage } from '../stages/forward/stage.js';
import type { HostsFile } from '../stages/hosts/hosts-file.js';
import { HostsStage } from '../stages/hosts/stage.js';
import { buildLocalZones } from '../stages/local-zones/setup.js';
import type { LocalZonesStage } from '../stages/local-zones/stage.js';
import type { LoopGuard } from '../stages/loop/probe.js';
import { LoopStage } from '../stages/loop/stage.js';
import type { PinsStage } from '../stages/pins/stage.js';

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
  const localZones = buildLocalZones(config, parts.routeStage);
  stages.push(localZones, parts.cacheStage, parts.coalesceStage, parts.routeStage, parts.forwardStage);
  return { pipeline: new Pipeline(stages), localZones };
}
