/**
 * `failover`: upstreams are asked in the configured order, one at a time; the next one
 * only when the current one fails, answers SERVFAIL/REFUSED, or does not answer within
 * the attempt timeout (the last one is given until the deadline). Upstreams that health
 * has taken out are skipped.
 */
import type { Query } from '../../dns/message.js';
import { runSequence } from './sequence.js';
import type { Availability, Resolution, Strategy, UpstreamObserver } from './strategy.js';
import type { Upstream } from '../types.js';

export class FailoverStrategy implements Strategy {
  readonly name = 'failover';
  constructor(
    readonly upstreams: Upstream[],
    private readonly attemptTimeoutMs: number,
    /** How long after the start attempts that lost may still finish (the query deadline, `timeoutMs`). */
    private readonly lingerMs: number,
    private readonly observer?: UpstreamObserver,
    private readonly health?: Availability,
  ) {}

  resolve(wire: Buffer, q: Query, signal: AbortSignal): Promise<Resolution> {
    const order = this.health ? this.health.available(this.upstreams) : this.upstreams;
    return runSequence(order, wire, q, signal, {
      attemptTimeoutMs: this.attemptTimeoutMs,
      ...(this.observer ? { observer: this.observer } : {}),
      lingerMs: this.lingerMs,
    });
  }
}
