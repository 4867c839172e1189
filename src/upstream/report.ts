/**
 * Upstream outcomes to logs: each failure reason is logged once per upstream and window,
 * with how many more were suppressed, so a dead upstream does not flood the journal.
 */
import type { Logger } from 'pino';
import type { UpstreamError } from './errors.js';
import type { UpstreamObserver } from './strategies/strategy.js';
import type { Upstream } from './types.js';

export class UpstreamReporter implements UpstreamObserver {
  private readonly seen = new Map<string, { at: number; suppressed: number }>();
  /** Upstreams that have answered at least once (readiness). */
  readonly answered = new Set<string>();
  private readonly listeners: UpstreamObserver[] = [];
  /** Set at a clean stop: what fails after it failed because dohd closed it. */
  private stopped = false;

  constructor(
    private readonly log: Logger,
    private readonly windowMs = 30_000,
  ) {}

  add(observer: UpstreamObserver): void {
    this.listeners.push(observer);
  }

  remove(observer: UpstreamObserver): void {
    const i = this.listeners.indexOf(observer);
    if (i >= 0) this.listeners.splice(i, 1);
  }

  success(upstream: Upstream, ms: number, won: boolean): void {
    if (!this.answered.has(upstream.name)) {
      this.answered.add(upstream.name);
      this.log.info({ upstream: upstream.name, ms: Math.round(ms) }, 'upstream answering');
    }
    for (const l of this.listeners) l.success(upstream, ms, won);
  }

  lost(upstream: Upstream, ms: number): void {
    for (const l of this.listeners) l.lost?.(upstream, ms);
  }

  /**
   * The daemon is closing its upstreams (every client query is answered by now): requests still
   * running (a race's losers left to finish) fail with "The client is destroyed", which is not
   * the upstream failing. Nothing is reported after this.
   */
  stop(): void {
    this.stopped = true;
  }

  failure(upstream: Upstream, err: UpstreamError, ms: number): void {
    if (this.stopped) return;
    for (const l of this.listeners) l.failure(upstream, err, ms);
    const key = `${upstream.name}|${err.reason}`;
    const now = Date.now();
    const s = this.seen.get(key);
    if (s && now - s.at < this.windowMs) {
      s.suppressed++;
      return;
    }
    if (this.seen.size > 1000) this.seen.clear();
    this.seen.set(key, { at: now, suppressed: 0 });
    this.log.warn(
      { upstream: upstream.name, reason: err.reason, detail: err.message, ms: Math.round(ms), ...(s?.suppressed ? { suppressed: s.suppressed } : {}) },
      'upstream failed',
    );
  }
}
