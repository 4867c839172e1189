/**
 * The per-query tally renders exactly what prom-client's own Counter and Histogram render for
 * the same queries (text and JSON), so /metrics is unchanged by keeping prom-client off the
 * hot path.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Counter, Histogram, Registry } from 'prom-client';
import { QueryTally, register } from '../../../src/metrics/query-tally.js';

const BOUNDS = [0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
const query = fc.record({
  transport: fc.constantFrom('udp', 'tcp'),
  type: fc.constantFrom('A', 'AAAA', 'other'),
  rcode: fc.constantFrom('NOERROR', 'NXDOMAIN', 'SERVFAIL', '16'),
  source: fc.constantFrom('cache', 'upstream', 'pin', 'policy'),
  // Exactly on a bound, between bounds, above all of them.
  seconds: fc.oneof(fc.constantFrom(...BOUNDS, 0, 7), fc.double({ min: 0, max: 10, noNaN: true })),
});

function both() {
  const ours = new Registry();
  const tally = new QueryTally(BOUNDS);
  const counter = new Counter({ name: 'q_total', help: 'queries', labelNames: ['transport', 'type', 'rcode', 'source'], registers: [ours], collect() { tally.flushTo(this); } });
  register(ours, tally.histogram('q_seconds', 'durations'));
  const theirs = new Registry();
  const c2 = new Counter({ name: 'q_total', help: 'queries', labelNames: ['transport', 'type', 'rcode', 'source'], registers: [theirs] });
  const h2 = new Histogram({ name: 'q_seconds', help: 'durations', labelNames: ['source'], buckets: BOUNDS, registers: [theirs] });
  return { ours, tally, counter, theirs, c2, h2 };
}

const lines = (text: string) => text.split('\n').sort();
const json = (metrics: { values: unknown[] }[]) =>
  metrics.map((m) => ({ ...m, values: m.values.map((v) => JSON.stringify(v, (_k, x: unknown) => (x === undefined ? '(undefined)' : x))).sort() }));

describe('QueryTally', () => {
  it('renders the same text and JSON as prom-client for any queries, scrape after scrape', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.array(query, { maxLength: 30 }), { minLength: 1, maxLength: 3 }), async (batches) => {
        const r = both();
        for (const batch of batches) {
          for (const q of batch) {
            r.tally.add(q.transport, q.type, q.rcode, q.source, q.seconds);
            r.c2.inc({ transport: q.transport, type: q.type, rcode: q.rcode, source: q.source });
            r.h2.observe({ source: q.source }, q.seconds);
          }
          // The same lines; series may come in another order (which Prometheus ignores).
          expect(lines(await r.ours.metrics())).toEqual(lines(await r.theirs.metrics()));
          expect(json(await r.ours.getMetricsAsJSON())).toEqual(json(await r.theirs.getMetricsAsJSON()));
        }
      }),
      { numRuns: 300 },
    );
  });

  it('counts into nothing until scraped, and every query once', async () => {
    const r = both();
    for (let i = 0; i < 1000; i++) r.tally.add('udp', 'A', 'NOERROR', 'cache', 0.0001);
    expect((await r.counter.get()).values[0]!.value).toBe(1000);
    expect((await r.counter.get()).values[0]!.value).toBe(1000);
    r.tally.add('udp', 'A', 'NOERROR', 'cache', 0.0001);
    expect((await r.counter.get()).values[0]!.value).toBe(1001);
    expect(await r.ours.metrics()).toContain('q_seconds_count{source="cache"} 1001');
  });
});
