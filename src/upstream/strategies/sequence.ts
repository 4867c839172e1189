/**
 * The engine behind the `hedged` and `failover` strategies: upstreams are asked one after
 * another in a given order; the next one is asked when the current one fails (error,
 * SERVFAIL or REFUSED), when its attempt times out (failover), or when it has not answered
 * after a delay while it stays in flight (hedged). The first good answer wins; requests
 * still in flight then are left to finish (lingerLosers: their real answer time reaches
 * health, which ranks `hedged`'s order — a request cut short would only say "slower than the
 * winner") and are cancelled if still running `lingerMs` after the sequence began.
 */
import { performance } from 'node:perf_hooks';
import type { Query } from '../../dns/message.js';
import { asUpstreamError, UpstreamError } from '../errors.js';
import { Losses } from './losses.js';
import { lingerLosers } from './linger.js';
import type { Resolution, UpstreamObserver } from './strategy.js';
import type { Upstream } from '../types.js';
import { isSoftFailure, softFailureError } from '../validate.js';
import { CANCELLED } from '../abort.js';

export interface SequenceOptions {
  /** Hedged: ms to wait for `u` before the next upstream is asked as well. */
  hedgeDelay?: (u: Upstream) => number;
  /** Failover: an attempt unanswered after this long is abandoned as a timeout. */
  attemptTimeoutMs?: number;
  observer?: UpstreamObserver;
  /** How long after the start requests that lost may still finish (the query deadline). */
  lingerMs: number;
}

interface Attempt {
  t0: number;
  ctl: AbortController;
  timer: NodeJS.Timeout | undefined;
  timedOut: boolean;
}

export function runSequence(order: readonly Upstream[], wire: Buffer, q: Query, signal: AbortSignal, opts: SequenceOptions): Promise<Resolution> {
  if (signal.aborted) return Promise.reject(new UpstreamError('timeout', 'deadline passed'));
  if (order.length === 0) return Promise.reject(new UpstreamError('other', 'no upstream configured'));
  const observer = opts.observer;
  return new Promise<Resolution>((resolve, reject) => {
    const inflight = new Map<Upstream, Attempt>();
    let nextIdx = 0;
    let settled = false;
    const losses = new Losses();
    let hedgeTimer: NodeJS.Timeout | null = null;
    let linger: NodeJS.Timeout | undefined;
    const began = performance.now();

    /** `keep`: a good answer won; what is still in flight may finish until the linger time is up. */
    const settle = (fn: () => void, keep = false) => {
      if (settled) return;
      settled = true;
      if (hedgeTimer) clearTimeout(hedgeTimer);
      signal.removeEventListener('abort', onAbort);
      for (const a of inflight.values()) clearTimeout(a.timer);
      const cancelAll = () => {
        for (const a of inflight.values()) a.ctl.abort(CANCELLED);
        inflight.clear();
      };
      if (keep && inflight.size > 0) linger = lingerLosers(inflight, (a) => a.t0, began, opts.lingerMs, observer, cancelAll);
      else cancelAll();
      fn();
    };
    /** A request that lost has finished on its own. */
    const lateOutcome = (u: Upstream) => {
      inflight.delete(u);
      if (inflight.size === 0) clearTimeout(linger);
    };
    const finishIfIdle = () => {
      if (settled || inflight.size > 0 || launch()) return;
      settle(() => losses.settle(resolve, reject));
    };
    const onAbort = () => {
      // The deadline passed: whatever is in flight fails as a timeout.
      if (hedgeTimer) clearTimeout(hedgeTimer);
      for (const a of inflight.values()) a.ctl.abort(CANCELLED);
    };
    signal.addEventListener('abort', onAbort, { once: true });

    const launch = (): boolean => {
      if (settled || signal.aborted || nextIdx >= order.length) return false;
      const u = order[nextIdx++]!;
      const a: Attempt = { t0: performance.now(), ctl: new AbortController(), timer: undefined, timedOut: false };
      inflight.set(u, a);
      // The last upstream keeps its attempt until the deadline: there is nothing to move on to.
      if (opts.attemptTimeoutMs !== undefined && nextIdx < order.length) {
        a.timer = setTimeout(() => {
          a.timedOut = true;
          a.ctl.abort(CANCELLED);
        }, opts.attemptTimeoutMs);
      }
      u.exchange(wire, q, a.ctl.signal).then(
        (answer) => {
          if (inflight.get(u) !== a) return;
          const ms = performance.now() - a.t0;
          if (settled) {
            lateOutcome(u);
            if (isSoftFailure(answer.rcode)) observer?.failure(u, softFailureError(answer.rcode), ms);
            else observer?.success(u, ms, false);
            return;
          }
          inflight.delete(u);
          clearTimeout(a.timer);
          if (isSoftFailure(answer.rcode)) {
            observer?.failure(u, softFailureError(answer.rcode), ms);
            losses.soft({ answer, upstream: u.name, ms });
            launch();
            finishIfIdle();
            return;
          }
          observer?.success(u, ms, true);
          settle(() => resolve({ answer, upstream: u.name, ms }), true);
        },
        (err: unknown) => {
          if (inflight.get(u) !== a) return;
          const ms = performance.now() - a.t0;
          if (settled) {
            lateOutcome(u);
            const e = asUpstreamError(err);
            if (e.reason !== 'aborted') observer?.failure(u, e, ms);
            return;
          }
          inflight.delete(u);
          clearTimeout(a.timer);
          let e = asUpstreamError(err);
          if (a.timedOut) e = new UpstreamError('timeout', `no answer within ${opts.attemptTimeoutMs} ms`);
          else if (signal.aborted && e.reason === 'aborted') e = new UpstreamError('timeout', 'no answer before the deadline');
          observer?.failure(u, e, ms);
          losses.failed(e, u.name);
          launch();
          finishIfIdle();
        },
      );
      if (opts.hedgeDelay) {
        if (hedgeTimer) clearTimeout(hedgeTimer);
        hedgeTimer = null;
        if (nextIdx < order.length) {
          hedgeTimer = setTimeout(() => {
            hedgeTimer = null;
            launch();
          }, opts.hedgeDelay(u));
        }
      }
      return true;
    };
    launch();
  });
}
