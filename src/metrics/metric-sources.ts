/**
 * Feeds the counters that stages keep as plain fields (cache hits, stale answers, prefetches,
 * policy refusals, rate limiting, pin probes) into the Prometheus families at scrape time.
 * Counters only grow, so each scrape adds what a source gained since the last one; a source
 * replaced on reload (a new cache) starts from zero without losing what the old one counted.
 */
import type { Metrics } from './metrics.js';
import type { PinHealth } from '../stages/pins/health.js';
import type { CacheStage } from '../stages/cache/stage.js';
import type { PolicyStage } from '../stages/admission/stage.js';
import type { LocalZonesStage } from '../stages/local-zones/stage.js';

export interface Sources {
  cacheStage: CacheStage;
  policy: PolicyStage;
  pinHealth: PinHealth | undefined;
  localZones?: LocalZonesStage;
}

export class MetricSources {
  private readonly seen = new WeakMap<object, Record<string, number>>();

  constructor(private readonly metrics: Metrics) {}

  /** Adds `value - last seen` for each named counter of `source`, and remembers `value`. */
  private delta(source: object, values: Record<string, number>, add: (key: string, n: number) => void): void {
    const last = this.seen.get(source) ?? {};
    for (const [k, v] of Object.entries(values)) {
      const d = v - (last[k] ?? 0);
      if (d > 0) add(k, d);
    }
    this.seen.set(source, { ...values });
  }

  sync(s: Sources): void {
    const c = s.cacheStage;
    this.delta(c, { hit: c.hits, miss: c.misses, stale: c.staleServed, prefetch: c.prefetches }, (event, n) => this.metrics.cacheEvent(event, n));
    const p = s.policy.counters;
    this.delta(p, { acl: p.refused, rate_limit: p.rateLimited }, (reason, n) => this.metrics.policyDrop(reason, n));
    const l = s.localZones;
    if (l) this.delta(l, Object.fromEntries(l.answered), (zone, n) => this.metrics.localAnswer(zone, n));
    for (const probe of s.pinHealth?.state() ?? []) if (probe.checks > 0) this.metrics.pinProbe(probe.name, probe.address, probe.up);
  }
}
