/**
 * One provider reached by several paths (a "ladder"): DoH by name on each bootstrap IP, DoH
 * to an IP-literal URL (no server name for a filter to read), DoT on 853. To the strategies
 * and health it is one upstream; inside, a query goes to the path that worked last, and on
 * to the next path as soon as that one fails or has not answered within `stepMs` (it looks
 * blocked: a black hole gives no error at all), without waiting for the query deadline. The
 * first good answer wins.
 *
 * The working path is remembered, so later queries go straight to it. The better paths are
 * probed again in the background (after `reprobeMs`, doubling up to `maxReprobeMs`) and used
 * again as soon as one answers.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { Query } from '../dns/message.js';
import { asUpstreamError, UpstreamError } from './errors.js';
import { probe } from './health.js';
import type { UpstreamObserver } from './strategies/strategy.js';
import type { Upstream } from './types.js';
import type { CheckedAnswer } from './validate.js';
import { describeFailure } from './verdict.js';

export interface LadderOptions {
  /** The config's `ladder` timing: a path that has not answered in stepMs looks blocked, the next one is asked too. */
  stepMs: number;
  reprobeMs: number;
  maxReprobeMs: number;
  log?: Logger;
  /** Told about each path's failures (metrics by path and reason). */
  observer?: Pick<UpstreamObserver, 'failure'>;
}

export class LadderUpstream implements Upstream {
  readonly kind: Upstream['kind'];
  /** The path that answered last: queries start there. */
  working = 0;
  /** Each path's last failure (null once it answers): doctor and logs read the verdict from it. */
  readonly lastFailure: (UpstreamError | null)[];
  private readonly stepMs: number;
  private readonly reprobeMs: number;
  private readonly maxReprobeMs: number;
  private backoff: number;
  private reprobeTimer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(
    readonly name: string,
    readonly rungs: Upstream[],
    private readonly opts: LadderOptions,
  ) {
    if (rungs.length === 0) throw new Error('a ladder needs at least one path');
    this.kind = rungs[0]!.kind;
    this.lastFailure = rungs.map(() => null);
    this.stepMs = opts.stepMs;
    this.reprobeMs = opts.reprobeMs;
    this.maxReprobeMs = opts.maxReprobeMs;
    this.backoff = this.reprobeMs;
  }

  exchange(wire: Buffer, q: Query, signal: AbortSignal): Promise<CheckedAnswer> {
    if (this.closed) return Promise.reject(new UpstreamError('aborted', 'upstream closed'));
    const n = this.rungs.length;
    if (n === 1) return this.rungs[0]!.exchange(wire, q, signal);
    const start = this.working;
    return new Promise<CheckedAnswer>((resolve, reject) => {
      let tried = 0;
      let running = 0;
      let settled = false;
      let lastErr: UpstreamError | null = null;
      let stepTimer: NodeJS.Timeout | undefined;
      const next = () => {
        clearTimeout(stepTimer);
        if (settled) return;
        if (tried >= n || signal.aborted) {
          if (running === 0) {
            settled = true;
            reject(lastErr ?? new UpstreamError('other', 'no path answered'));
          }
          return;
        }
        const k = (start + tried++) % n;
        const rung = this.rungs[k]!;
        const t0 = performance.now();
        running++;
        // Losers are not cancelled: each ends by itself, at the latest with the caller's signal.
        rung.exchange(wire, q, signal).then(
          (answer) => {
            running--;
            this.lastFailure[k] = null;
            if (settled) return;
            settled = true;
            clearTimeout(stepTimer);
            if (k !== this.working) this.moveTo(k, 'answered');
            resolve(answer);
          },
          (err: unknown) => {
            running--;
            const e = asUpstreamError(err);
            if (e.reason !== 'aborted' || !signal.aborted) {
              this.lastFailure[k] = e;
              this.opts.observer?.failure(rung, e, performance.now() - t0);
            }
            lastErr = e;
            // A path failing at once moves the query on at once.
            next();
          },
        );
        if (tried < n) stepTimer = setTimeout(next, this.stepMs);
      };
      next();
    });
  }

  /** The path queries start on is now `k`. */
  private moveTo(k: number, how: string): void {
    const from = this.working;
    this.working = k;
    const failed = this.lastFailure[from];
    const fromRung = this.rungs[from]!.name;
    this.opts.log?.warn(
      {
        upstream: this.name,
        from: fromRung,
        to: this.rungs[k]!.name,
        how,
        ...(failed ? { reason: failed.reason, verdict: describeFailure(failed) } : {}),
      },
      k > from ? 'upstream path changed: an earlier path looks blocked' : 'upstream path restored',
    );
    if (k > 0) this.scheduleReprobe(k < from);
    else this.cancelReprobe();
  }

  private cancelReprobe(): void {
    if (this.reprobeTimer) clearTimeout(this.reprobeTimer);
    this.reprobeTimer = null;
    this.backoff = this.reprobeMs;
  }

  private scheduleReprobe(reset: boolean): void {
    if (this.closed) return;
    if (reset) this.backoff = this.reprobeMs;
    if (this.reprobeTimer) return;
    this.reprobeTimer = setTimeout(() => {
      this.reprobeTimer = null;
      void this.reprobe();
    }, this.backoff);
    this.reprobeTimer.unref();
  }

  /** Asks the paths better than the working one, best first; the first that answers becomes the working one. */
  private async reprobe(): Promise<void> {
    const { wire, query } = probe();
    for (let k = 0; k < this.working && !this.closed; k++) {
      try {
        await this.rungs[k]!.exchange(wire, query, AbortSignal.timeout(Math.max(2000, this.stepMs * 2)));
        if (this.closed) return;
        this.lastFailure[k] = null;
        this.moveTo(k, 'probe answered');
        return;
      } catch (err) {
        if (err instanceof UpstreamError) this.lastFailure[k] = err;
      }
    }
    if (this.closed || this.working === 0) return;
    this.backoff = Math.min(this.backoff * 2, this.maxReprobeMs);
    this.scheduleReprobe(false);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.cancelReprobe();
    await Promise.all(this.rungs.map((r) => r.close()));
  }
}
