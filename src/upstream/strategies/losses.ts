/**
 * What a group's attempts come to when no good answer wins, for race and the sequences
 * (hedged, failover) alike: the first SERVFAIL/REFUSED answer if an upstream gave one, else a
 * GroupFailure naming the last upstream that failed, and whether every one timed out.
 */
import { GroupFailure, UpstreamError } from '../errors.js';
import type { Resolution } from './strategy.js';

export class Losses {
  private fallback: Resolution | null = null;
  private last: UpstreamError | null = null;
  private lastFrom = '';
  private allTimedOut = true;

  /** A SERVFAIL or REFUSED answer: the first one is kept in case nothing better comes. */
  soft(r: Resolution): void {
    this.fallback ??= r;
  }

  /** An attempt that failed. */
  failed(e: UpstreamError, upstream: string): void {
    this.last = e;
    this.lastFrom = upstream;
    if (e.reason !== 'timeout') this.allTimedOut = false;
  }

  /** Ends the group: the kept answer, or the error. */
  settle(resolve: (r: Resolution) => void, reject: (e: Error) => void): void {
    if (this.fallback) resolve(this.fallback);
    else reject(this.last ? new GroupFailure(this.last, this.lastFrom, this.allTimedOut) : new UpstreamError('other', 'no upstream answered'));
  }
}
