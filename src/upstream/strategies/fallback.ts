/**
 * The last-resort group (`fallback:`, off by default): asked only when every upstream of
 * the default group is out (health), or when none of them gave an answer and the deadline
 * has not passed yet. Its use is logged (at most once per window).
 */
import type { Logger } from 'pino';
import type { Query } from '../../dns/message.js';
import type { HealthTracker } from '../health.js';
import type { Resolution, Strategy } from './strategy.js';
import type { Upstream } from '../types.js';

export class FallbackStrategy implements Strategy {
  readonly name: string;
  /** Queries answered (or tried) through the fallback group. */
  used = 0;
  private lastLog = 0;

  constructor(
    private readonly primary: Strategy,
    private readonly primaryUpstreams: readonly Upstream[],
    private readonly fallback: Strategy,
    readonly fallbackGroup: string,
    private readonly health: HealthTracker,
    private readonly log?: Logger,
    private readonly logWindowMs = 30_000,
  ) {
    this.name = primary.name;
  }

  async resolve(wire: Buffer, q: Query, signal: AbortSignal): Promise<Resolution> {
    if (this.health.allDown(this.primaryUpstreams)) return this.viaFallback(wire, q, signal, 'every default upstream is out');
    try {
      return await this.primary.resolve(wire, q, signal);
    } catch (err) {
      if (signal.aborted) throw err;
      return this.viaFallback(wire, q, signal, `no default upstream answered (${(err as Error).message})`);
    }
  }

  private viaFallback(wire: Buffer, q: Query, signal: AbortSignal, why: string): Promise<Resolution> {
    this.used++;
    const now = Date.now();
    if (now - this.lastLog >= this.logWindowMs) {
      this.lastLog = now;
      this.log?.warn({ group: this.fallbackGroup, why }, 'answering from the fallback group');
    }
    return this.fallback.resolve(wire, q, signal);
  }
}
