/**
 * How a query is spread over a group of upstreams. `race`: all at once, the first
 * good answer wins and the others are cancelled. SERVFAIL/REFUSED and errors never win
 * while another upstream may still answer well.
 * "Cancelled" means nobody waits for them any more: see lingerLosers.
 */
import { performance } from 'node:perf_hooks';
import type { Query } from '../../dns/message.js';
import { asUpstreamError, UpstreamError } from '../errors.js';
import { Losses } from './losses.js';
import type { Upstream } from '../types.js';
import { isSoftFailure, softFailureError } from '../validate.js';
import { CANCELLED } from '../abort.js';
import { lingerLosers } from './linger.js';
import type { Availability, Resolution, Strategy, UpstreamObserver } from './strategy.js';

export class RaceStrategy implements Strategy {
  readonly name = 'race';
  constructor(
    readonly upstreams: Upstream[],
    /** How long after the race began requests that lost are still left to finish (the query deadline). */
    private readonly lingerMs: number,
    private readonly observer?: UpstreamObserver,
    private readonly health?: Availability,
  ) {}

  resolve(wire: Buffer, q: Query, signal: AbortSignal): Promise<Resolution> {
    if (signal.aborted) return Promise.reject(new UpstreamError('timeout', 'deadline passed'));
    const upstreams = this.health ? this.health.available(this.upstreams) : this.upstreams;
    // Losers are cancelled through a signal of the race's own; one upstream alone has none.
    const cancel = upstreams.length > 1 ? new AbortController() : null;
    const onAbort = () => cancel?.abort(CANCELLED);
    if (cancel) signal.addEventListener('abort', onAbort, { once: true });
    const racing = cancel ? cancel.signal : signal;
    const pending = new Map<Upstream, number>();
    const began = performance.now();
    let linger: NodeJS.Timeout | undefined;
    return new Promise<Resolution>((resolve, reject) => {
      let remaining = upstreams.length;
      let settled = false;
      const losses = new Losses();
      const finish = () => {
        if (--remaining === 0) clearTimeout(linger);
        if (remaining > 0 || settled) return;
        settled = true;
        losses.settle(resolve, reject);
      };
      for (const u of upstreams) {
        const t0 = performance.now();
        pending.set(u, t0);
        u.exchange(wire, q, racing).then(
          (answer) => {
            pending.delete(u);
            const ms = performance.now() - t0;
            if (isSoftFailure(answer.rcode)) {
              this.observer?.failure(u, softFailureError(answer.rcode), ms);
              losses.soft({ answer, upstream: u.name, ms });
            } else if (!settled) {
              settled = true;
              this.observer?.success(u, ms, true);
              resolve({ answer, upstream: u.name, ms });
              if (pending.size > 0) linger = lingerLosers(pending, (t0) => t0, began, this.lingerMs, this.observer, onAbort);
            } else this.observer?.success(u, ms, false);
            finish();
          },
          (err: unknown) => {
            pending.delete(u);
            const e = asUpstreamError(err);
            // Requests we cancelled ourselves (a winner was found, or the deadline passed) are not failures.
            if (!(settled && e.reason === 'aborted')) {
              const ue = signal.aborted && e.reason === 'aborted' ? new UpstreamError('timeout', 'no answer before the deadline') : e;
              this.observer?.failure(u, ue, performance.now() - t0);
              losses.failed(ue, u.name);
            }
            finish();
          },
        );
      }
    }).finally(() => {
      if (cancel) signal.removeEventListener('abort', onAbort);
    });
  }
}
