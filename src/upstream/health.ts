/**
 * Upstream health: recent latency and error rate per upstream. An upstream that fails
 * `failures` times in a row (no connection, TLS, HTTP error, timeout, garbage) is taken out;
 * in the background it is probed after a backoff that doubles on each failed probe, and
 * comes back on the first answer. The strategies skip upstreams that are out, unless every
 * upstream of the group is out (then they all get tried: better than nothing).
 *
 * SERVFAIL and REFUSED are answers: they say nothing about reachability and do not count.
 */
import dnsPacket from 'dns-packet';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { decodeQuery, type Query } from '../dns/message.js';
import { buildUpstreamQuery } from '../dns/upstream-query.js';
import type { UpstreamError } from './errors.js';
import type { UpstreamObserver } from './strategies/strategy.js';
import type { Upstream } from './types.js';

export interface HealthOptions {
  /** Consecutive failures that take an upstream out. */
  failures: number;
  /** First wait before probing an upstream that is out; doubles per failed probe. */
  backoffMs: number;
  maxBackoffMs: number;
  probeTimeoutMs: number;
  log?: Logger;
}

export interface UpstreamHealthState {
  name: string;
  up: boolean;
  consecutiveFailures: number;
  /** Failed share of the recent outcomes (0..1). */
  errorRate: number;
  /** Smoothed recent latency, ms (undefined before the first sample). */
  latencyMs: number | undefined;
  p90Ms: number | undefined;
  backoffMs: number;
  /** When out: ms until the next probe (undefined while one runs, or when in). */
  nextProbeInMs: number | undefined;
  probes: number;
  lastError?: string;
}

/** Reasons that say nothing about the upstream itself. */
const IGNORED = new Set(['aborted', 'servfail', 'refused', 'overloaded']);
const EWMA_ALPHA = 0.3;
const MIN_P90_SAMPLES = 5;

class State {
  readonly latencies: number[] = [];
  readonly outcomes: boolean[] = [];
  ewma: number | undefined;
  consecutiveFailures = 0;
  up = true;
  backoffMs: number;
  probes = 0;
  lastError: string | undefined;
  timer: NodeJS.Timeout | null = null;
  nextProbeAt: number | undefined;
  probing: AbortController | null = null;

  constructor(
    readonly upstream: Upstream,
    backoffMs: number,
  ) {
    this.backoffMs = backoffMs;
  }
}

let probeQuery: { wire: Buffer; query: Query } | undefined;

/** `. IN NS`, the question every resolver can answer: the probe of health checks and of the ladder's re-probes. */
export function probe(): { wire: Buffer; query: Query } {
  if (!probeQuery) {
    const raw = dnsPacket.encode({ type: 'query', id: 0, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name: '.', type: 'NS', class: 'IN' }] });
    const d = decodeQuery(raw);
    if (!d.ok) throw new Error('probe query does not decode');
    probeQuery = { wire: buildUpstreamQuery(d.query), query: d.query };
  }
  return probeQuery;
}

/** Latency samples kept per upstream (the p90 of `hedged`, the ranks of `status`). */
const LATENCY_WINDOW = 32;

export class HealthTracker implements UpstreamObserver {
  private readonly states = new Map<Upstream, State>();
  private closed = false;

  constructor(private readonly opts: HealthOptions) {}

  private state(u: Upstream): State {
    let s = this.states.get(u);
    if (!s) {
      s = new State(u, this.opts.backoffMs);
      this.states.set(u, s);
    }
    return s;
  }

  private push<T>(list: T[], v: T): void {
    list.push(v);
    if (list.length > LATENCY_WINDOW) list.shift();
  }

  private sample(s: State, ms: number): void {
    this.push(s.latencies, ms);
    s.ewma = s.ewma === undefined ? ms : s.ewma + EWMA_ALPHA * (ms - s.ewma);
  }

  success(u: Upstream, ms: number): void {
    const s = this.state(u);
    this.sample(s, ms);
    this.push(s.outcomes, true);
    s.consecutiveFailures = 0;
    if (!s.up) this.markUp(s, 'answered');
  }

  failure(u: Upstream, err: UpstreamError, ms: number): void {
    if (IGNORED.has(err.reason)) return;
    const s = this.state(u);
    if (err.reason === 'timeout') this.sample(s, ms);
    this.push(s.outcomes, false);
    s.consecutiveFailures++;
    s.lastError = `${err.reason}: ${err.message}`;
    if (s.up && s.consecutiveFailures >= this.opts.failures) this.markDown(s);
  }

  /** A request cancelled because another upstream answered first: at least this slow. */
  lost(u: Upstream, ms: number): void {
    this.sample(this.state(u), ms);
  }

  isUp(u: Upstream): boolean {
    return this.states.get(u)?.up ?? true;
  }

  /** The upstreams that are in; all of them when every one is out. */
  available(us: readonly Upstream[]): readonly Upstream[] {
    const up = us.filter((u) => this.isUp(u));
    return up.length > 0 ? up : us;
  }

  allDown(us: readonly Upstream[]): boolean {
    return us.length > 0 && us.every((u) => !this.isUp(u));
  }

  /**
   * Rank for `hedged` (lower is better): the mean of the recent latencies (the window), so an
   * upstream's occasional very late answer keeps counting for as long as it is in the window.
   * (A fast-forgetting average let a jittery upstream back in front a dozen answers after
   * each late one: in the benchmark, hedged's p99 was set by those turns.) Infinity when
   * unknown (never asked yet).
   */
  score(u: Upstream): number {
    const l = this.states.get(u)?.latencies;
    if (!l || l.length === 0) return Infinity;
    let sum = 0;
    for (const ms of l) sum += ms;
    return sum / l.length;
  }

  /** 90th percentile of the recent latencies, or undefined with too few samples. */
  p90(u: Upstream): number | undefined {
    const l = this.states.get(u)?.latencies;
    if (!l || l.length < MIN_P90_SAMPLES) return undefined;
    const sorted = [...l].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.9) - 1)];
  }

  snapshot(): UpstreamHealthState[] {
    return [...this.states.values()].map((s) => ({
      name: s.upstream.name,
      up: s.up,
      consecutiveFailures: s.consecutiveFailures,
      errorRate: s.outcomes.length ? s.outcomes.filter((ok) => !ok).length / s.outcomes.length : 0,
      latencyMs: s.ewma,
      p90Ms: this.p90(s.upstream),
      backoffMs: s.backoffMs,
      nextProbeInMs: !s.up && s.timer && s.nextProbeAt !== undefined ? Math.max(0, s.nextProbeAt - Date.now()) : undefined,
      probes: s.probes,
      ...(s.lastError ? { lastError: s.lastError } : {}),
    }));
  }

  private markDown(s: State): void {
    s.up = false;
    s.backoffMs = this.opts.backoffMs;
    this.opts.log?.warn(
      { upstream: s.upstream.name, failures: s.consecutiveFailures, reason: s.lastError, probeInMs: s.backoffMs },
      'upstream taken out',
    );
    this.schedule(s);
  }

  private markUp(s: State, how: string): void {
    s.up = true;
    s.consecutiveFailures = 0;
    s.backoffMs = this.opts.backoffMs;
    if (s.timer) clearTimeout(s.timer);
    s.timer = null;
    s.probing?.abort();
    s.probing = null;
    this.opts.log?.info({ upstream: s.upstream.name, how }, 'upstream back in');
  }

  private schedule(s: State): void {
    if (this.closed) return;
    if (s.timer) clearTimeout(s.timer);
    s.nextProbeAt = Date.now() + s.backoffMs;
    s.timer = setTimeout(() => {
      s.timer = null;
      void this.probe(s);
    }, s.backoffMs);
    s.timer.unref();
  }

  private async probe(s: State): Promise<void> {
    if (this.closed || s.up) return;
    const ctl = new AbortController();
    s.probing = ctl;
    const t = setTimeout(() => ctl.abort(), this.opts.probeTimeoutMs);
    s.probes++;
    const { wire, query } = probe();
    const t0 = performance.now();
    try {
      await s.upstream.exchange(wire, query, ctl.signal);
      if (this.closed || s.up) return;
      this.sample(s, performance.now() - t0);
      this.markUp(s, 'probe answered');
    } catch (err) {
      if (this.closed || s.up) return;
      s.lastError = `probe: ${(err as Error).message}`;
      s.backoffMs = Math.min(s.backoffMs * 2, this.opts.maxBackoffMs);
      this.opts.log?.debug({ upstream: s.upstream.name, err: s.lastError, nextProbeInMs: s.backoffMs }, 'upstream probe failed');
      this.schedule(s);
    } finally {
      clearTimeout(t);
      if (s.probing === ctl) s.probing = null;
    }
  }

  close(): void {
    this.closed = true;
    for (const s of this.states.values()) {
      if (s.timer) clearTimeout(s.timer);
      s.timer = null;
      s.probing?.abort();
    }
  }
}
