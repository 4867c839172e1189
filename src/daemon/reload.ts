/**
 * What a configuration reload (SIGHUP) may change while running, and what needs a restart.
 *
 * Live: upstreams, groups, strategy, forward rules and the other upstream settings (new
 * connections; queries in flight finish on the old ones), timeoutMs, maxInflight, cache (a changed cache
 * section starts an empty cache), pins, pinTtl and pinVerify, the policy (acl, rateLimit, ecs,
 * any), localZones, log (level, query log, format).
 * Restart: listen, admin, tcp, udp (sockets are bound once; a privileged port could not be bound
 * again after start anyway), hosts, loopProbe. Any key not listed as live is treated as needing a restart, so
 * an option added later is never silently ignored on reload: the log names it.
 */
import type { Config } from '../config/schema.js';
import { setLogFormat } from '../log/log.js';
import { policyOptionsFrom } from '../stages/admission/stage.js';
import { CoalesceStage } from '../stages/coalesce/stage.js';
import type { Daemon } from './daemon.js';

export const LIVE_KEYS: readonly string[] = [
  // upstreams and everything that routes to them (new connections; queries in flight finish on the old ones)
  'upstreams',
  'strategy',
  'groups',
  'forward',
  'localZones',
  'fallback',
  'hedge',
  'failover',
  'health',
  'ladder',
  'timeoutMs',
  'maxInflight',
  'cache',
  'pins',
  'pinTtl',
  'pinVerify',
  'acl',
  'rateLimit',
  'ecs',
  'any',
  'log',
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

/** Keys that rebuild the upstream groups, routing and strategies when they change on reload. */
const UPSTREAM_KEYS = ['upstreams', 'strategy', 'groups', 'forward', 'fallback', 'hedge', 'failover', 'health', 'ladder'];

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
    // timeoutMs too: every strategy lets the losers of a query linger until its deadline.
    if (changed(...UPSTREAM_KEYS, 'timeoutMs')) d.buildUpstreams(next);
    if (changed('cache', 'timeoutMs')) d.buildCache(next);
    if (changed('pins', 'pinTtl', 'pinVerify')) d.buildPins(next);
    if (changed('timeoutMs', 'maxInflight')) d.coalesceStage = new CoalesceStage({ timeoutMs: next.timeoutMs, maxInflight: next.maxInflight });
    if (changed('acl', 'rateLimit', 'ecs', 'any')) d.policy.update(policyOptionsFrom(next));
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
