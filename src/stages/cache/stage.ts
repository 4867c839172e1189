/**
 * The cache stage: answer from the cache, or ask the next stage and remember its answer.
 *
 * - Fresh hit: TTLs counted down. A popular entry hit in the last part of its TTL is
 *   refreshed in the background (prefetch), so it never goes cold.
 * - Stale hit (RFC 8767): a refresh starts; the client gets the fresh answer if it comes
 *   within `staleClientTimeoutMs`, else the stale one with TTL `staleTtl`, and the refresh
 *   carries on in the background. After a failed refresh, stale answers go out at once
 *   and the next refresh waits `staleRecheckMs`.
 * - Miss: the next stage's answer is stored (NOERROR and NXDOMAIN/NODATA, RFC 2308).
 *
 * Background refreshes run under their own deadline, not the client's.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { CacheConfig } from '../../config/schema.js';
import { AnswerCache, cacheableTtl, isNegative, render, type CacheLookup } from './answer-cache.js';
import { EDE_STALE, EDE_STALE_NXDOMAIN } from '../../dns/ede.js';
import { Rcode } from '../../dns/wire.js';
import { WAIT, type Context, type Decision, type Next, type Result, type Stage } from '../../pipeline/types.js';
import { CANCELLED } from '../../upstream/abort.js';

/** The query's cache key (`Query.key`); a client subnet kept for upstream (ecs.keep) makes the answer depend on it. */
export function keyFor(ctx: Context): string {
  const q = ctx.query;
  const options = q.edns?.options;
  if (options === undefined || options.length === 0) return q.key;
  const ecs = options.find((o) => o.code === 8)?.data;
  return ecs ? `${q.key}|ecs:${ecs.toString('hex')}` : q.key;
}

/** Its slice of the parsed `cache` config as is (the schema has the defaults), and what follows from the rest of it. */
export type CacheStageOptions = Pick<CacheConfig, 'staleTtl' | 'staleRecheckMs' | 'prefetchHits' | 'prefetchThreshold'> & {
  /** `cache.staleClientTimeoutMs`, or what it defaults to (config/check.ts `staleClientTimeout`). */
  staleClientTimeoutMs: number;
  /** Deadline of a background refresh: `timeoutMs`. */
  refreshTimeoutMs: number;
  /** Background refreshes in flight at once; past it, none is started. Not configurable. */
  maxRefreshes?: number;
  log?: Logger;
  now?: () => number;
};

/** Background refreshes in flight at once, unless a test says otherwise. */
const MAX_REFRESHES = 1000;

/** A good answer to remember or to replace a stale one with. */
function usable(r: Result): boolean {
  return r.source === 'upstream' && (r.rcode === Rcode.NOERROR || r.rcode === Rcode.NXDOMAIN);
}

export class CacheStage implements Stage {
  readonly name = 'cache';
  hits = 0;
  misses = 0;
  /** Stale answers sent to clients. */
  staleServed = 0;
  /** Prefetches started. */
  prefetches = 0;
  /** Background refreshes that failed. */
  refreshFailures = 0;
  private readonly refreshes = new Map<string, Promise<Result | null>>();
  /** Upstream answers already stored (coalesced callers share one), held only while the answer lives. */
  private readonly stored = new WeakSet<Buffer>();
  private readonly background = new Set<{ ctl: AbortController; timer: NodeJS.Timeout }>();
  private readonly o: Required<Omit<CacheStageOptions, 'log'>> & { log?: Logger };
  private closed = false;
  /** What the last `decide` found, for the `wait` the pipeline runs right after it. */
  private pending: CacheLookup | undefined;

  constructor(
    readonly cache: AnswerCache,
    opts: CacheStageOptions,
  ) {
    this.o = {
      staleTtl: opts.staleTtl,
      staleClientTimeoutMs: opts.staleClientTimeoutMs,
      staleRecheckMs: opts.staleRecheckMs,
      prefetchHits: opts.prefetchHits,
      prefetchThreshold: opts.prefetchThreshold,
      refreshTimeoutMs: opts.refreshTimeoutMs,
      maxRefreshes: opts.maxRefreshes ?? MAX_REFRESHES,
      now: opts.now ?? Date.now,
      ...(opts.log ? { log: opts.log } : {}),
    };
  }

  /** Background refreshes in flight. */
  get refreshing(): number {
    return this.refreshes.size;
  }

  /** A fresh hit is answered at once; a stale hit or a miss waits (`wait`, with this lookup). */
  decide(ctx: Context, next: Next): Decision {
    if (!this.cache.enabled) {
      this.pending = undefined;
      return WAIT;
    }
    const key = keyFor(ctx);
    const l = this.cache.lookup(key);
    if (l?.state === 'fresh') return this.fresh(key, l, ctx, next);
    this.pending = l;
    return WAIT;
  }

  /** Runs right after the `decide` that returned WAIT: serves the stale entry it found, or asks the next stage. */
  async wait(ctx: Context, next: Next): Promise<Result> {
    const l = this.pending;
    this.pending = undefined;
    const key = keyFor(ctx);
    if (l?.state === 'stale') return this.stale(key, l, ctx, next);
    this.misses++;
    return this.store(key, await next(ctx));
  }

  private fresh(key: string, l: CacheLookup, ctx: Context, next: Next): Result {
    this.hits++;
    this.maybePrefetch(key, l, ctx, next);
    return { wire: render(l.entry, Math.floor(l.ageMs / 1000)), source: 'cache', rcode: l.entry.rcode, owned: true };
  }

  /** Remembers a usable answer; returns it with the TTLs clients should see (clamped). */
  private store(key: string, result: Result): Result {
    if (!usable(result) || !result.packet) return result;
    // A coalesced answer another caller already stored: do not store it again.
    const existing = this.cache.peek(key);
    if (existing && this.stored.has(result.wire)) return { ...result, wire: render(existing, 0) };
    const e = this.cache.set(key, result.wire, cacheableTtl(result.packet, result.rcode), result.rcode, isNegative(result.packet, result.rcode));
    if (e) this.stored.add(result.wire);
    return e ? { ...result, wire: render(e, 0) } : result;
  }

  private stale(key: string, l: CacheLookup, ctx: Context, next: Next): Promise<Result> {
    const e = l.entry;
    const staleAnswer = (): Result => {
      this.staleServed++;
      return { wire: render(e, 0, this.o.staleTtl), source: 'stale', rcode: e.rcode, ede: e.rcode === Rcode.NXDOMAIN ? EDE_STALE_NXDOMAIN : EDE_STALE };
    };
    if (e.failedAt && this.o.now() - e.failedAt < this.o.staleRecheckMs) return Promise.resolve(staleAnswer());
    const refresh = this.refresh(key, ctx, next);
    return new Promise<Result>((resolve) => {
      let done = false;
      const finish = (r: Result | null) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        ctx.signal.removeEventListener('abort', onAbort);
        resolve(r ?? staleAnswer());
      };
      const onAbort = () => finish(null);
      const timer = setTimeout(onAbort, this.o.staleClientTimeoutMs);
      ctx.signal.addEventListener('abort', onAbort, { once: true });
      refresh.then(finish, () => finish(null));
    });
  }

  private maybePrefetch(key: string, l: CacheLookup, ctx: Context, next: Next): void {
    const e = l.entry;
    if (this.o.prefetchHits <= 0 || e.hits < this.o.prefetchHits || this.refreshes.has(key)) return;
    const lifeMs = e.ttl * 1000;
    if (lifeMs - l.ageMs > lifeMs * this.o.prefetchThreshold) return;
    if (e.failedAt && this.o.now() - e.failedAt < this.o.staleRecheckMs) return;
    this.prefetches++;
    void this.refresh(key, ctx, next);
  }

  /**
   * Asks the next stage again under a deadline of its own; stores a usable answer.
   * Resolves with the answer, or null when the refresh failed. One per key at a time.
   */
  private refresh(key: string, ctx: Context, next: Next): Promise<Result | null> {
    const running = this.refreshes.get(key);
    if (running) return running;
    if (this.closed || this.refreshes.size >= this.o.maxRefreshes) return Promise.resolve(null);
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(CANCELLED), this.o.refreshTimeoutMs);
    const job = { ctl, timer };
    this.background.add(job);
    const entry = this.cache.peek(key);
    if (entry) entry.refreshing = true;
    const failed = () => {
      this.refreshFailures++;
      const cur = this.cache.peek(key);
      if (cur) cur.failedAt = this.o.now();
      return null;
    };
    const p = next({ ...ctx, signal: ctl.signal, received: performance.now() })
      .then((r) => (usable(r) ? this.store(key, r) : failed()), failed)
      .finally(() => {
        clearTimeout(timer);
        this.background.delete(job);
        this.refreshes.delete(key);
        const cur = this.cache.peek(key);
        if (cur) cur.refreshing = false;
      });
    this.refreshes.set(key, p);
    return p;
  }

  /** Cancels the background refreshes (daemon stop). */
  close(): void {
    this.closed = true;
    for (const j of this.background) {
      clearTimeout(j.timer);
      j.ctl.abort(CANCELLED);
    }
    this.background.clear();
  }
}
