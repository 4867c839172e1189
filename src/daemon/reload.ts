/**
 * What a configuration reload (SIGHUP) may change while running, and what needs a restart.
 *
 * Live: upstreams, groups, strategy, forward rules and the other upstream settings (new
 * connections; queries in flight finish on the old ones), timeoutMs, cache (a changed cache
 * section starts an empty cache), pins, pinTtl and pinVerify, the policy (acl, rateLimit, ecs,
 * any), localZones, log (level, query log, format).
 * Restart: listen, admin, tcp, udp (sockets are bound once; a privileged port could not be bound
 * again after start anyway), hosts, loopProbe. Any key not listed as live is treated as needing a restart, so
 * an option added later is never silently ignored on reload: the log names it.
 */
import type { Config } from '../config/schema.js';

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
  'timeoutMs',
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
