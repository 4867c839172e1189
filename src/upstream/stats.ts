/**
 * Per-upstream round-trip times and errors for `dohd status`: over the last minute (six
 * 10-second slots) and since start. Times go into log-scale buckets (10% wide), so quantiles
 * come out within 10% and windows from several workers can be added up before the quantiles
 * are read. Fed by the UpstreamReporter; nothing here is on the path of a cache hit.
 */
import type { UpstreamError } from './errors.js';
import type { UpstreamObserver } from './strategies/strategy.js';
import type { Upstream } from './types.js';

const SLOT_MS = 10_000;
const SLOTS = 6;
const BASE = Math.log(1.1);

/** Counts of one window, in a form that travels (JSON, worker IPC) and adds up. */
export interface WindowCounts {
  answers: number;
  /** [bucket, count]: bucket b holds times in (1.1^(b-1), 1.1^b] ms. */
  buckets: [number, number][];
  /** failures by reason (upstream/errors.ts); cancelled requests are not failures. */
  errors: Record<string, number>;
}

class Window {
  answers = 0;
  readonly buckets = new Map<number, number>();
  readonly errors: Record<string, number> = {};

  add(ms: number): void {
    this.answers++;
    const b = ms <= 1 ? 0 : Math.ceil(Math.log(ms) / BASE);
    this.buckets.set(b, (this.buckets.get(b) ?? 0) + 1);
  }

  fail(reason: string): void {
    this.errors[reason] = (this.errors[reason] ?? 0) + 1;
  }

  counts(): WindowCounts {
    return { answers: this.answers, buckets: [...this.buckets], errors: { ...this.errors } };
  }
}

export function mergeCounts(list: WindowCounts[]): WindowCounts {
  const buckets = new Map<number, number>();
  const errors: Record<string, number> = {};
  let answers = 0;
  for (const w of list) {
    answers += w.answers;
    for (const [b, n] of w.buckets) buckets.set(b, (buckets.get(b) ?? 0) + n);
    for (const [r, n] of Object.entries(w.errors)) errors[r] = (errors[r] ?? 0) + n;
  }
  return { answers, buckets: [...buckets].sort((a, b) => a[0] - b[0]), errors };
}

/** The q-quantile (0..1) of the times, in ms (the bucket's upper bound); undefined without answers. */
export function quantile(w: WindowCounts, q: number): number | undefined {
  if (w.answers === 0) return undefined;
  const sorted = [...w.buckets].sort((a, b) => a[0] - b[0]);
  const rank = Math.max(1, Math.ceil(q * w.answers));
  let seen = 0;
  for (const [b, n] of sorted) {
    seen += n;
    if (seen >= rank) return b === 0 ? 1 : Math.round(Math.exp(b * BASE) * 10) / 10;
  }
  return undefined;
}

class Track {
  readonly total = new Window();
  readonly slots: { start: number; w: Window }[] = [];

  slot(now: number): Window {
    const start = now - (now % SLOT_MS);
    let last = this.slots[this.slots.length - 1];
    if (!last || last.start !== start) {
      last = { start, w: new Window() };
      this.slots.push(last);
      while (this.slots.length > SLOTS) this.slots.shift();
    }
    return last.w;
  }

  lastMinute(now: number): WindowCounts {
    return mergeCounts(this.slots.filter((s) => s.start > now - SLOTS * SLOT_MS).map((s) => s.w.counts()));
  }
}

export class UpstreamStats implements UpstreamObserver {
  private readonly tracks = new Map<string, Track>();

  constructor(private readonly now: () => number = Date.now) {}

  private track(name: string): Track {
    let t = this.tracks.get(name);
    if (!t) this.tracks.set(name, (t = new Track()));
    return t;
  }

  success(u: Upstream, ms: number): void {
    const t = this.track(u.name);
    t.total.add(ms);
    t.slot(this.now()).add(ms);
  }

  failure(u: Upstream, err: UpstreamError): void {
    if (err.reason === 'aborted') return;
    const t = this.track(u.name);
    t.total.fail(err.reason);
    t.slot(this.now()).fail(err.reason);
  }

  windows(name: string): { lastMinute: WindowCounts; sinceStart: WindowCounts } {
    const t = this.tracks.get(name);
    const empty: WindowCounts = { answers: 0, buckets: [], errors: {} };
    if (!t) return { lastMinute: empty, sinceStart: empty };
    return { lastMinute: t.lastMinute(this.now()), sinceStart: t.total.counts() };
  }
}
