/**
 * Upstream groups built from the config: `default` (the top-level `upstreams`, strategy
 * `strategy`) and each entry of `groups`, every one with its strategy over its upstreams
 * (DoH or plain DNS). One health tracker watches every upstream. When `fallback` names a
 * group, the default group's strategy is wrapped to fall back to it.
 */
import type { Logger } from 'pino';
import { parseHostPort } from '../../config/address.js';
import { DEFAULT_GROUP } from '../../config/check.js';
import { configDefaults, type Config, type GroupUpstreamConfig, type StrategyName, type UpstreamInput } from '../../config/schema.js';
import { DohUpstream } from '../doh/doh.js';
import { DotUpstream } from '../dot/dot.js';
import { LadderUpstream } from '../ladder.js';
import { isIP } from 'node:net';
import { FailoverStrategy } from './failover.js';
import { FallbackStrategy } from './fallback.js';
import type { GuardOptions } from '../guard.js';
import { HealthTracker } from '../health.js';
import { HedgedStrategy } from './hedged.js';
import { PlainUpstream } from '../plain/plain.js';
import { RaceStrategy } from './race.js';
import type { Strategy, UpstreamObserver } from './strategy.js';
import type { Upstream } from '../types.js';

export interface UpstreamGroup {
  name: string;
  strategy: Strategy;
  upstreams: Upstream[];
}

/**
 * An encrypted upstream from its config: `https://` is DoH, `tls://` is DoT. Both take the same
 * keys (bootstrap, ca, name, idleTimeoutMs); quietMs is DoH's only.
 */
export function buildSecureUpstream(u: UpstreamInput, opts: SecureUpstreamOptions = {}): DohUpstream | DotUpstream | LadderUpstream {
  const o = {
    ...opts.guard,
    ...(opts.log ? { log: opts.log } : {}),
    ...(opts.connectTimeoutMs !== undefined ? { connectTimeoutMs: opts.connectTimeoutMs } : {}),
    ...(opts.observer ? { observer: opts.observer } : {}),
  };
  const one = (c: UpstreamInput) => (c.url.startsWith('tls:') ? new DotUpstream(c, o) : new DohUpstream(c, o));
  if (!u.alternates?.length) return one(u);
  // A provider with several paths: a ladder, named like its first path; each path named for what it is.
  const name = u.name ?? defaultName(u.url);
  const labels = new Map<string, number>();
  const label = (url: string) => {
    const l = url.startsWith('tls:') ? 'dot' : isIP(new URL(url).hostname.replace(/^\[|\]$/g, '')) ? 'doh-ip' : 'doh';
    const n = (labels.get(l) ?? 0) + 1;
    labels.set(l, n);
    return `${name} [${l}${n > 1 ? n : ''}]`;
  };
  const common = { ...(u.ca ? { ca: u.ca } : {}), ...(u.idleTimeoutMs !== undefined ? { idleTimeoutMs: u.idleTimeoutMs } : {}), ...(u.quietMs !== undefined ? { quietMs: u.quietMs } : {}) };
  const rungs = [
    one({ ...u, alternates: undefined, name: label(u.url) }),
    ...u.alternates.map((a) => one({ url: a.url, ...(a.bootstrap ? { bootstrap: a.bootstrap } : {}), ...common, name: label(a.url) })),
  ];
  return new LadderUpstream(name, rungs, { ...(opts.ladder ?? configDefaults().ladder), ...(opts.log ? { log: opts.log } : {}), ...(opts.observer ? { observer: opts.observer } : {}) });
}

/** The name an upstream gets when none is configured (as DohUpstream and DotUpstream name themselves). */
function defaultName(url: string): string {
  const u = new URL(url);
  const host = u.hostname.replace(/^\[|\]$/g, '');
  const hp = u.port ? `${host}:${u.port}` : host;
  return u.protocol === 'tls:' ? `tls://${hp}` : hp;
}

/** The transports behind an upstream: itself, or each path of a ladder. */
export function pathsOf(u: Upstream): (DohUpstream | DotUpstream)[] {
  if (u instanceof LadderUpstream) return u.rungs.flatMap(pathsOf);
  return u instanceof DohUpstream || u instanceof DotUpstream ? [u] : [];
}

export interface SecureUpstreamOptions {
  log?: Logger | undefined;
  connectTimeoutMs?: number | undefined;
  /** The ladder's timing (config `ladder`; its defaults when left out). */
  ladder?: { stepMs: number; reprobeMs: number; maxReprobeMs: number } | undefined;
  /** Told about each path's failures inside a ladder, and bootstrap IPs found unreachable (metrics). */
  observer?: Pick<UpstreamObserver, 'failure'> | undefined;
  /** The transport guard's options (guard.ts): restarts counted in metrics. */
  guard?: GuardOptions | undefined;
}

export function buildUpstream(u: GroupUpstreamConfig, log?: Logger, guard: GuardOptions = {}): Upstream {
  if (u.url?.startsWith('https:') || u.url?.startsWith('tls:')) {
    return buildSecureUpstream(
      {
        url: u.url,
        ...(u.bootstrap ? { bootstrap: u.bootstrap } : {}),
        ...(u.ca ? { ca: u.ca } : {}),
        ...(u.name ? { name: u.name } : {}),
        ...(u.idleTimeoutMs !== undefined ? { idleTimeoutMs: u.idleTimeoutMs } : {}),
        ...(u.quietMs !== undefined ? { quietMs: u.quietMs } : {}),
      },
      { log, guard },
    );
  }
  const tcpOnly = u.url?.startsWith('tcp:') ?? false;
  const text = u.address ?? new URL(u.url!).host;
  const target = parseHostPort(text);
  if (typeof target === 'string') throw new Error(target);
  return new PlainUpstream(target, { ...guard, ...(log ? { log } : {}), tcpOnly, ...(u.name ? { name: u.name } : {}) });
}

export class UpstreamGroups {
  readonly groups = new Map<string, UpstreamGroup>();
  readonly health: HealthTracker;
  readonly fallback: FallbackStrategy | undefined;
  /** The upstream objects themselves (DohUpstream, PlainUpstream), before any wrapping. */
  readonly raw: Upstream[] = [];

  constructor(
    private readonly config: Config,
    private readonly observer: UpstreamObserver,
    upstreams: { default: Upstream[]; log?: Logger; wrap?: (u: Upstream) => Upstream; guard?: GuardOptions },
  ) {
    const log = upstreams.log;
    // What the strategies call: each upstream as given, or wrapped (the loop guard's fail-fast).
    const w = (us: Upstream[]) => (upstreams.wrap ? us.map(upstreams.wrap) : us);
    this.health = new HealthTracker({ ...config.health, ...(log ? { log } : {}) });
    this.raw.push(...upstreams.default);
    const defaults = w(upstreams.default);
    this.groups.set(DEFAULT_GROUP, { name: DEFAULT_GROUP, upstreams: defaults, strategy: this.strategy(config.strategy, defaults) });
    for (const [name, g] of Object.entries(config.groups)) {
      const raw = g.upstreams.map((u) => buildUpstream(u, log, upstreams.guard));
      this.raw.push(...raw);
      const us = w(raw);
      this.groups.set(name, { name, upstreams: us, strategy: this.strategy(g.strategy, us) });
    }
    if (config.fallback) {
      const d = this.groups.get(DEFAULT_GROUP)!;
      const f = this.groups.get(config.fallback)!;
      this.fallback = new FallbackStrategy(d.strategy, d.upstreams, f.strategy, f.name, this.health, log);
      d.strategy = this.fallback;
    }
  }

  private strategy(name: StrategyName, us: Upstream[]): Strategy {
    switch (name) {
      case 'hedged':
        return new HedgedStrategy(us, this.health, this.config.hedge, this.config.timeoutMs, this.observer);
      case 'failover':
        return new FailoverStrategy(us, this.config.failover.attemptTimeoutMs, this.config.timeoutMs, this.observer, this.health);
      default:
        return new RaceStrategy(us, this.config.timeoutMs, this.observer, this.health);
    }
  }

  /** The default group's strategy (with the fallback, when configured). */
  get defaultStrategy(): Strategy {
    return this.groups.get(DEFAULT_GROUP)!.strategy;
  }

  strategyFor(group: string): Strategy | undefined {
    return this.groups.get(group)?.strategy;
  }

  /** Every upstream of every group, as the strategies (and health) see them. */
  get all(): Upstream[] {
    return [...this.groups.values()].flatMap((g) => g.upstreams);
  }

  async close(): Promise<void> {
    this.health.close();
    await Promise.all(this.all.map((u) => u.close()));
  }
}
