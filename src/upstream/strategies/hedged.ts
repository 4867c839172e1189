/**
 * `hedged`: the upstream with the best recent latency is asked first; if it has not
 * answered after a delay near its recent p90, the next best is asked too, and so on. The
 * first good answer wins. Tail latency stays close to race's at about one request per
 * query (a second one for the slowest ~10%).
 */
import type { Query } from '../../dns/message.js';
import type { HealthTracker } from '../health.js';
import { runSequence } from './sequence.js';
import type { Resolution, Strategy, UpstreamObserver } from './strategy.js';
import type { Upstream } from '../types.js';

export interface HedgeOptions {
  minDelayMs: number;
  maxDelayMs: number;
  /** Delay while an upstream has too few latency samples for a p90. */
  initialDelayMs: number;
}

export class HedgedStrategy implements Strategy {
  readonly name = 'hedged';
  constructor(
    readonly upstreams: Upstream[],
    private readonly health: HealthTracker,
    private readonly opts: HedgeOptions,
    /** How long a request that lost may still finish (the query deadline). */
    private readonly lingerMs: number,
    private readonly observer?: UpstreamObserver,
  ) {}

  /** How long to wait for `u` before asking the next upstream as well. */
  delayFor(u: Upstream): number {
    const p90 = this.health.p90(u);
    const d = p90 === undefined ? this.opts.initialDelayMs : p90;
    return Math.round(Math.min(this.opts.maxDelayMs, Math.max(this.opts.minDelayMs, d)));
  }

  /** Available upstreams, best recent latency first (configured order among equals). */
  order(): Upstream[] {
    const us = this.health.available(this.upstreams);
    return us
      .map((u, i) => ({ u, i, s: this.health.score(u) }))
      .sort((a, b) => (a.s === b.s ? a.i - b.i : a.s - b.s))
      .map((x) => x.u);
  }

  resolve(wire: Buffer, q: Query, signal: AbortSignal): Promise<Resolution> {
    return runSequence(this.order(), wire, q, signal, {
      hedgeDelay: (u) => this.delayFor(u),
      ...(this.observer ? { observer: this.observer } : {}),
      lingerMs: this.lingerMs,
    });
  }
}
