/**
 * The strategies that ask several upstreams at once let the requests that lost a query run on
 * until the query's deadline (`timeoutMs`), and no longer (failover was handed no deadline and
 * would have used a hard-coded 2500 ms; it keeps one attempt in flight, so it never lingers).
 * Fake upstreams (one answers at once, one never does) and fake timers: the loser's signal
 * must be aborted when the configured deadline has passed since the query began.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import dnsPacket from 'dns-packet';
import { validateConfig } from '../../../../src/config/load.js';
import { decodeQuery, type Query } from '../../../../src/dns/message.js';
import { UpstreamGroups } from '../../../../src/upstream/strategies/groups.js';
import type { UpstreamObserver } from '../../../../src/upstream/strategies/strategy.js';
import type { Upstream } from '../../../../src/upstream/types.js';
import { checkAnswer, type CheckedAnswer } from '../../../../src/upstream/validate.js';

function query(): Query {
  const r = decodeQuery(dnsPacket.encode({ id: 0, type: 'query', flags: dnsPacket.RECURSION_DESIRED, questions: [{ name: 'example.com', type: 'A', class: 'IN' }] }));
  if (!r.ok) throw new Error(r.reason);
  return r.query;
}

function answerFor(q: Query): CheckedAnswer {
  const wire = dnsPacket.encode({ id: 0, type: 'response', flags: dnsPacket.RECURSION_AVAILABLE, questions: [{ name: q.name, type: 'A', class: 'IN' }], answers: [{ name: q.name, type: 'A', ttl: 60, data: '192.0.2.1' }] });
  return checkAnswer(wire, q);
}

/** `fast` answers at once; `silent` answers nothing and records when its request was cancelled. */
function fakes() {
  const cancelledAt: number[] = [];
  const silent: Upstream = {
    name: 'silent',
    kind: 'doh',
    exchange: (_w, _q, signal) =>
      new Promise((_resolve, reject) => signal.addEventListener('abort', () => { cancelledAt.push(Date.now()); reject(new Error('cancelled')); }, { once: true })),
    close: async () => {},
  };
  const fast: Upstream = { name: 'fast', kind: 'doh', exchange: async (_w, q) => answerFor(q), close: async () => {} };
  return { silent, fast, cancelledAt };
}

const observer: UpstreamObserver = { success: () => {}, failure: () => {}, lost: () => {} };

beforeEach(() => vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date', 'performance'] }));
afterEach(() => vi.useRealTimers());

describe('losers linger until the query deadline, for every strategy', () => {
  for (const strategy of ['race', 'hedged'] as const) {
    for (const timeoutMs of [400, 6000]) {
      it(`${strategy}, timeoutMs ${timeoutMs}`, async () => {
        const { silent, fast, cancelledAt } = fakes();
        const config = validateConfig({ listen: ['127.0.0.1:0'], strategy, timeoutMs, failover: { attemptTimeoutMs: 50 }, hedge: { initialDelayMs: 10, minDelayMs: 10 } });
        const groups = new UpstreamGroups(config, observer, { default: [silent, fast] });
        const q = query();
        const began = Date.now();
        const done = groups.defaultStrategy.resolve(Buffer.alloc(0), q, new AbortController().signal);
        await vi.advanceTimersByTimeAsync(60);
        const r = await done;
        expect(r.upstream).toBe('fast');
        expect(cancelledAt).toEqual([]);
        await vi.advanceTimersByTimeAsync(timeoutMs - 60 - 20);
        expect(cancelledAt, 'cancelled before the deadline').toEqual([]);
        await vi.advanceTimersByTimeAsync(40);
        expect(cancelledAt.length, 'still running after the deadline').toBe(1);
        expect(cancelledAt[0]! - began).toBeGreaterThanOrEqual(timeoutMs - 20);
        await groups.close();
      });
    }
  }
});

describe('failover', () => {
  it('keeps one attempt in flight: the first upstream is cancelled at the attempt timeout, not left to linger', async () => {
    const { silent, fast, cancelledAt } = fakes();
    const config = validateConfig({ listen: ['127.0.0.1:0'], strategy: 'failover', timeoutMs: 6000, failover: { attemptTimeoutMs: 50 } });
    const groups = new UpstreamGroups(config, observer, { default: [silent, fast] });
    const began = Date.now();
    const done = groups.defaultStrategy.resolve(Buffer.alloc(0), query(), new AbortController().signal);
    await vi.advanceTimersByTimeAsync(49);
    expect(cancelledAt).toEqual([]);
    await vi.advanceTimersByTimeAsync(2);
    expect((await done).upstream).toBe('fast');
    expect(cancelledAt.map((t) => t - began)).toEqual([50]);
    await groups.close();
  });
});
