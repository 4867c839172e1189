/**
 * Per-query metrics without prom-client on the hot path. prom-client hashes a label set on
 * every `inc` and `observe` (about 300 ns each, twice per answered query: half again the
 * cost of answering a cache hit). Here a query is counted in plain numbers reached through
 * maps keyed by the (interned) label values, and prom-client sees the totals when it is
 * scraped: the counter family through its `collect` hook, the histogram family as a metric
 * object of our own that renders exactly what prom-client's Histogram would.
 */
import type { Counter, Registry } from 'prom-client';

interface Cell {
  labels: Record<string, string>;
  count: number;
  reported: number;
}

interface Series {
  /** Observations per bucket (not cumulative); the last slot is above every bound. */
  buckets: number[];
  sum: number;
  count: number;
}

export class QueryTally {
  private readonly counts = new Map<string, Map<string, Map<string, Map<string, Cell>>>>();
  private readonly series = new Map<string, Series>();

  constructor(readonly bounds: readonly number[]) {}

  /** One answered query: its counter labels and its duration (seconds), by source. */
  add(transport: string, type: string, rcode: string, source: string, seconds: number): void {
    let a = this.counts.get(transport);
    if (!a) this.counts.set(transport, (a = new Map()));
    let b = a.get(source);
    if (!b) a.set(source, (b = new Map()));
    let c = b.get(rcode);
    if (!c) b.set(rcode, (c = new Map()));
    let cell = c.get(type);
    if (!cell) c.set(type, (cell = { labels: { transport, type, rcode, source }, count: 0, reported: 0 }));
    cell.count++;
    let s = this.series.get(source);
    if (!s) this.series.set(source, (s = { buckets: new Array<number>(this.bounds.length + 1).fill(0), sum: 0, count: 0 }));
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && seconds > bounds[i]!) i++;
    s.buckets[i]!++;
    s.sum += seconds;
    s.count++;
  }

  /** Adds what was counted since the last call to a prom-client counter (call it from the counter's collect). */
  flushTo(counter: Counter<string>): void {
    for (const a of this.counts.values())
      for (const b of a.values())
        for (const c of b.values())
          for (const cell of c.values()) {
            if (cell.count > cell.reported) counter.inc(cell.labels, cell.count - cell.reported);
            cell.reported = cell.count;
          }
  }

  /** A histogram family for `registry`, rendered from the tally like a prom-client Histogram with label `source`. */
  histogram(name: string, help: string): HistogramMetric {
    const tally = this;
    const values = (shared: boolean) => {
      const out: object[] = [];
      for (const [source, s] of tally.series) {
        const own = { source };
        const labels = (le: number | string) => (shared ? { le } : { le, source });
        let acc = 0;
        tally.bounds.forEach((bound, i) => {
          acc += s.buckets[i]!;
          out.push(value(labels(bound), acc, `${name}_bucket`, null, shared ? own : undefined));
        });
        out.push(value(labels('+Inf'), s.count, `${name}_bucket`, null, shared ? own : undefined));
        out.push(value(shared ? {} : own, s.sum, `${name}_sum`, undefined, shared ? own : undefined));
        out.push(value(shared ? {} : own, s.count, `${name}_count`, undefined, shared ? own : undefined));
      }
      return out;
    };
    return {
      name,
      help,
      type: 'histogram',
      aggregator: 'sum',
      get: async () => ({ name, help, type: 'histogram', values: values(false), aggregator: 'sum' }),
      getForPromString: async () => ({ name, help, type: 'histogram', values: values(true), aggregator: 'sum' }),
      reset: () => tally.series.clear(),
    };
  }
}

/** One exported value, shaped as prom-client's Histogram shapes it (`exemplar` null on buckets). */
function value(labels: object, v: number, metricName: string, exemplar: null | undefined, sharedLabels?: object) {
  return sharedLabels ? { labels, sharedLabels, value: v, metricName, exemplar } : { value: v, metricName, exemplar, labels };
}

export interface HistogramMetric {
  name: string;
  help: string;
  type: 'histogram';
  aggregator: 'sum';
  get(): Promise<object>;
  getForPromString(): Promise<object>;
  reset(): void;
}

/** Puts a metric object of ours into a prom-client registry. */
export function register(registry: Registry, metric: HistogramMetric): void {
  registry.registerMetric(metric as unknown as Parameters<Registry['registerMetric']>[0]);
}
