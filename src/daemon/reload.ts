/**
 * What a configuration reload (SIGHUP) may change while running, and what needs a restart.
 *
 * Live: the keys each stage's setup declares (stages/<name>/setup.ts: upstreams and what routes
 * to them, localZones, cache, pins, acl/rateLimit/ecs/any, ...) and the daemon's own
 * (timeoutMs, maxInflight, log). Restart: listen, admin, tcp, udp (sockets are bound once; a
 * privileged port could not be bound again after start anyway), hosts, loopProbe, workers. Any
 * key not declared live is treated as needing a restart, so an option added later is never
 * silently ignored on reload: the log names it.
 */
import type { Config } from '../config/schema.js';
import { setLogFormat } from '../log/log.js';
import { ADMISSION_RELOADS, policyOptionsFrom } from '../stages/admission/setup.js';
import { CACHE_RELOADS } from '../stages/cache/setup.js';
import { buildCoalesce, COALESCE_RELOADS } from '../stages/coalesce/setup.js';
import { FORWARD_RELOADS } from '../stages/forward/setup.js';
import { LOCAL_ZONES_RELOADS } from '../stages/local-zones/setup.js';
import { PINS_RELOADS } from '../stages/pins/setup.js';
import type { Daemon } from './daemon.js';

/**
 * The query handler's deadline and bound, and logging: applied by the daemon itself. Every
 * other live key is declared by the setup of the stage it rebuilds.
 */
const DAEMON_RELOADS = ['timeoutMs', 'maxInflight', 'log'] as const satisfies readonly (keyof Config)[];

/** Every key a reload applies while running; any other changed key waits for a restart. */
export const LIVE_KEYS: readonly string[] = [
  ...new Set([...FORWARD_RELOADS, ...LOCAL_ZONES_RELOADS, ...CACHE_RELOADS, ...COALESCE_RELOADS, ...PINS_RELOADS, ...ADMISSION_RELOADS, ...DAEMON_RELOADS]),
];

export interface ReloadPlan {
  /** Changed keys that take effect now. */
  live: string[];
  /** Changed keys that keep their running value until a restart. */
  restart: string[];
}

export interface ReloadOutcome extends ReloadPlan {
  ok: boolean;
  error?: string;
}

export function planReload(running: Config, next: Config): ReloadPlan {
  const keys = new Set([...Object.keys(running), ...Object.keys(next)]);
  const plan: ReloadPlan = { live: [], restart: [] };
  for (const key of [...keys].sort()) {
    const a = (running as Record<string, unknown>)[key];
    const b = (next as Record<string, unknown>)[key];
    if (stableJson(a) === stableJson(b)) continue;
    (LIVE_KEYS.includes(key) ? plan.live : plan.restart).push(key);
  }
  return plan;
}

/** The configuration that runs after a reload: the new one, with restart-only keys kept as they run. */
export function effectiveConfig(running: Config, next: Config, plan: ReloadPlan): Config {
  const out: Record<string, unknown> = { ...next };
  for (const key of plan.restart) {
    if (key in running) out[key] = (running as Record<string, unknown>)[key];
    else delete out[key];
  }
  return out as Config;
}

/** JSON with object keys sorted, so reordering a YAML mapping is not a change. */
export function stableJson(v: unknown): string {
  return JSON.stringify(v, (_k, val: unknown) =>
    val && typeof val === 'object' && !Array.isArray(val)
      ? Object.fromEntries(Object.entries(val as Record<string, unknown>).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)))
      : val,
  ) ?? 'undefined';
}

/**
 * Applies a new configuration to a running daemon (Daemon.reload): the parts whose keys changed
 * are built again (compose.ts) and the pipeline recomposed; replaced upstream groups are closed
 * once the queries using them are done.
 */
export function applyReload(d: Daemon, next: Config): ReloadOutcome {
  const plan = planReload(d.config, next);
  const changed = (...keys: string[]) => keys.some((k) => plan.live.includes(k));
  try {
    // Count what the stages about to be replaced saw since the last scrape.
    d.sources.sync(d);
    const prev = { groups: d.groups, cacheStage: d.cacheStage, pinHealth: d.pinHealth };
    if (changed(...FORWARD_RELOADS)) d.buildUpstreams(next);
    if (changed(...CACHE_RELOADS)) d.buildCache(next);
    if (changed(...PINS_RELOADS)) d.buildPins(next);
    if (changed(...COALESCE_RELOADS)) d.coalesceStage = buildCoalesce(next);
    if (changed(...ADMISSION_RELOADS)) d.policy.update(policyOptionsFrom(next));
    // The local-zones stage is built again with the pipeline, below, every time.
    d.config = effectiveConfig(d.config, next, plan);
    d.composePipeline();
    d.handler.update({ pipeline: d.pipeline, timeoutMs: d.config.timeoutMs, maxInflight: d.config.maxInflight });
    if (changed('log')) {
      d.log.level = next.log.level;
      setLogFormat(d.log, next.log.format);
    }
    if (d.groups !== prev.groups) {
      d.reporter.remove(prev.groups.health);
      for (const name of [...d.reporter.answered]) if (!d.upstreams.some((u) => u.name === name)) d.reporter.answered.delete(name);
      const t = setTimeout(() => {
        d.retired.delete(t);
        void prev.groups.close();
      }, d.config.timeoutMs + 1000);
      t.unref();
      d.retired.set(t, prev.groups);
    }
    if (d.cacheStage !== prev.cacheStage) prev.cacheStage.close();
    if (d.pinHealth !== prev.pinHealth) {
      prev.pinHealth?.close();
      d.pinHealth?.start();
      d.metrics.resetPins();
    }
    d.metrics.reload(true);
    return { ok: true, ...plan };
  } catch (err) {
    d.metrics.reload(false);
    return { ok: false, error: (err as Error).message, ...plan };
  }
}
