/**
 * The coalesce stage: identical queries (same name, type, class, DO and CD bits) in flight
 * at the same time share one upstream exchange. The shared exchange runs under its own
 * deadline and is cancelled when nobody waits for it any more; each caller still stops
 * waiting at its own deadline.
 */
import { rcodeReply } from '../../dns/message.js';
import { Rcode } from '../../dns/wire.js';
import { keyFor } from '../cache/stage.js';
import { WAIT, type Context, type Decision, type Next, type Result, type Stage } from '../../pipeline/types.js';
import { CANCELLED } from '../../upstream/abort.js';

interface Flight {
  promise: Promise<Result>;
  /** The exchange has finished: nothing left to cancel. */
  done: boolean;
  waiters: number;
  ctl: AbortController;
  timer: NodeJS.Timeout;
}

export interface CoalesceOptions {
  /** Deadline of a shared exchange (the query deadline). */
  timeoutMs: number;
  /** Distinct queries in flight at once; past it, queries go on alone (config `maxInflight`). */
  maxInflight: number;
}

export class CoalesceStage implements Stage {
  readonly name = 'coalesce';
  /** Exchanges started. */
  exchanges = 0;
  /** Queries that joined an exchange already in flight. */
  joined = 0;
  private readonly flights = new Map<string, Flight>();

  constructor(private readonly opts: CoalesceOptions) {}

  get inflight(): number {
    return this.flights.size;
  }

  /** Always waits. */
  decide(): Decision {
    return WAIT;
  }

  wait(ctx: Context, next: Next): Promise<Result> {
    const key = keyFor(ctx);
    let f = this.flights.get(key);
    if (f) this.joined++;
    else {
      if (this.flights.size >= this.opts.maxInflight) return next(ctx);
      f = this.start(key, ctx, next);
    }
    return this.join(key, f, ctx);
  }

  private start(key: string, ctx: Context, next: Next): Flight {
    this.exchanges++;
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(CANCELLED), this.opts.timeoutMs);
    const f: Flight = { promise: undefined as never, done: false, waiters: 0, ctl, timer };
    // A stage that throws is a bug, not an upstream's failure: every waiter is rejected with it,
    // and the handler logs and counts it (once). Handled here too, so that a flight everyone
    // left is no unhandled rejection.
    f.promise = next({ ...ctx, signal: ctl.signal }).finally(() => {
      f.done = true;
      clearTimeout(timer);
      if (this.flights.get(key) === f) this.flights.delete(key);
    });
    f.promise.catch(ignore);
    this.flights.set(key, f);
    return f;
  }

  private join(key: string, f: Flight, ctx: Context): Promise<Result> {
    f.waiters++;
    return new Promise<Result>((resolve, reject) => {
      let done = false;
      const leave = (r: Result, err?: unknown) => {
        if (done) return;
        done = true;
        ctx.signal.removeEventListener('abort', onAbort);
        // The last caller gone: cancel the exchange, and let a new query start afresh.
        if (--f.waiters === 0 && !f.done && !f.ctl.signal.aborted) {
          f.ctl.abort(CANCELLED);
          if (this.flights.get(key) === f) this.flights.delete(key);
        }
        if (err !== undefined) reject(err);
        else resolve(r);
      };
      const onAbort = () => leave({ wire: rcodeReply(ctx.query, Rcode.SERVFAIL), source: 'error', rcode: Rcode.SERVFAIL });
      if (ctx.signal.aborted) return onAbort();
      ctx.signal.addEventListener('abort', onAbort, { once: true });
      f.promise.then(leave, (err: unknown) => leave(undefined as never, err ?? new Error('stage failed')));
    });
  }
}

function ignore(): void {}
