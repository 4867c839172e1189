/**
 * The strategy engine (race, the sequence behind hedged and failover, fallback) with scripted
 * upstreams (test/fixtures/fake-upstream.ts) and fake timers: which upstream is asked when,
 * who wins, what health and the observer are told, and when the losers are cancelled.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FallbackStrategy } from '../../../../src/upstream/strategies/fallback.js';
import { FailoverStrategy } from '../../../../src/upstream/strategies/failover.js';
import { HealthTracker } from '../../../../src/upstream/health.js';
import { HedgedStrategy } from '../../../../src/upstream/strategies/hedged.js';
import { GroupFailure, UpstreamError } from '../../../../src/upstream/errors.js';
import { RaceStrategy } from '../../../../src/upstream/strategies/race.js';
import type { Resolution, Strategy, UpstreamObserver } from '../../../../src/upstream/strategies/strategy.js';
import type { Upstream } from '../../../../src/upstream/types.js';
import { Rcode } from '../../../../src/dns/wire.js';
import { fakeQuery, fakeUpstream } from '../../../fixtures/fake-upstream.js';

// The engine times with perf_hooks' performance, which vi.useFakeTimers leaves alone: it reads
// the (faked) Date here, so every duration it measures is fake time.
vi.mock('node:perf_hooks', () => ({ performance: { now: () => Date.now() } }));

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date', 'performance'] });
  vi.setSystemTime(1_000_000);
});
afterEach(() => vi.useRealTimers());

type Event = { kind: 'success'; upstream: string; won: boolean } | { kind: 'failure'; upstream: string; reason: string } | { kind: 'lost'; upstream: string };

function recorder(): UpstreamObserver & { events: Event[] } {
  const events: Event[] = [];
  return {
    events,
    success: (u, _ms, won) => void events.push({ kind: 'success', upstream: u.name, won }),
    failure: (u, err) => void events.push({ kind: 'failure', upstream: u.name, reason: err.reason }),
    lost: (u) => void events.push({ kind: 'lost', upstream: u.name }),
  };
}

const q = fakeQuery();
/** How long the requests that lost a race may still finish: the query deadline the daemon passes (timeoutMs). */
const LINGER_MS = 2500;
const T0 = 1_000_000;

/** Starts a resolution; `outcome` settles (resolved or rejected) as fake time is advanced. */
function start(s: Strategy, signal = new AbortController().signal) {
  const state: { result?: Resolution; error?: unknown; at?: number } = {};
  const p = s.resolve(Buffer.alloc(0), q, signal).then(
    (r) => {
      state.result = r;
      state.at = Date.now() - T0;
    },
    (e: unknown) => {
      state.error = e;
      state.at = Date.now() - T0;
    },
  );
  return { state, done: p };
}

const dataOf = (r: Resolution | undefined) => (r?.answer.packet.answers?.[0] as { data?: string } | undefined)?.data;
const health = (failures = 1) => new HealthTracker({ failures, backoffMs: 60_000, maxBackoffMs: 60_000, probeTimeoutMs: 1000 });
const takeOut = (h: HealthTracker, u: Upstream) => h.failure(u, new UpstreamError('connect', 'refused'), 1);

describe('race', () => {
  it('asks every upstream at once; the first good answer wins at its own time; the loser lingers, then is cancelled', async () => {
    const a = fakeUpstream('a', [{ answer: 'NOERROR', afterMs: 80 }], '192.0.2.1');
    const b = fakeUpstream('b', [{ answer: 'NOERROR', afterMs: 30 }], '192.0.2.2');
    const c = fakeUpstream('c', [{ hang: true }]);
    const obs = recorder();
    const { state } = start(new RaceStrategy([a, b, c], 1000, obs));
    expect([a, b, c].map((u) => u.calls.map((x) => x.at - T0))).toEqual([[0], [0], [0]]);
    await vi.advanceTimersByTimeAsync(29);
    expect(state.result).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    expect(state.at).toBe(30);
    expect(state.result!.upstream).toBe('b');
    expect(dataOf(state.result)).toBe('192.0.2.2');
    // a is not cut short: its answer still comes, as a success that did not win.
    await vi.advanceTimersByTimeAsync(50);
    expect(a.calls[0]!.outcome).toBe('answered');
    expect(obs.events).toContainEqual({ kind: 'success', upstream: 'a', won: false });
    // c hangs: cancelled (and reported lost) when lingerMs has passed since the race began.
    await vi.advanceTimersByTimeAsync(1000 - 80 - 1);
    expect(c.calls[0]!.cancelledAt).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    expect(c.calls[0]!.cancelledAt! - T0).toBe(1000);
    expect(obs.events.filter((e) => e.kind === 'lost')).toEqual([{ kind: 'lost', upstream: 'c' }]);
    expect(obs.events.filter((e) => e.kind === 'failure')).toEqual([]); // a cancelled loser is not a failure
  });

  it('SERVFAIL and REFUSED do not win while another upstream may still answer well', async () => {
    const a = fakeUpstream('a', [{ answer: 'SERVFAIL', afterMs: 5 }]);
    const b = fakeUpstream('b', [{ answer: 'REFUSED', afterMs: 10 }]);
    const c = fakeUpstream('c', [{ answer: 'NOERROR', afterMs: 200 }], '192.0.2.3');
    const obs = recorder();
    const { state } = start(new RaceStrategy([a, b, c], LINGER_MS, obs));
    await vi.advanceTimersByTimeAsync(199);
    expect(state.at).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    expect(state.result!.upstream).toBe('c');
    expect(state.at).toBe(200);
    expect(obs.events.filter((e) => e.kind === 'failure')).toEqual([
      { kind: 'failure', upstream: 'a', reason: 'servfail' },
      { kind: 'failure', upstream: 'b', reason: 'refused' },
    ]);
  });

  it('an NXDOMAIN is a good answer: it wins', async () => {
    const a = fakeUpstream('a', [{ answer: 'NXDOMAIN', afterMs: 5 }]);
    const b = fakeUpstream('b', [{ answer: 'NOERROR', afterMs: 50 }]);
    const { state } = start(new RaceStrategy([a, b], LINGER_MS));
    await vi.advanceTimersByTimeAsync(5);
    expect(state.result!.answer.rcode).toBe(Rcode.NXDOMAIN);
  });

  it('when every upstream answers SERVFAIL/REFUSED, the first such answer is returned once the last one is in', async () => {
    const a = fakeUpstream('a', [{ answer: 'REFUSED', afterMs: 20 }]);
    const b = fakeUpstream('b', [{ answer: 'SERVFAIL', afterMs: 60 }]);
    const { state } = start(new RaceStrategy([a, b], LINGER_MS));
    await vi.advanceTimersByTimeAsync(60);
    expect(state.at).toBe(60);
    expect(state.result!.upstream).toBe('a');
    expect(state.result!.answer.rcode).toBe(Rcode.REFUSED);
  });

  it('an error does not end the race; when all fail, the group failure names the last one', async () => {
    const a = fakeUpstream('a', [{ fail: 'tls', afterMs: 10 }]);
    const b = fakeUpstream('b', [{ fail: 'http_status', afterMs: 40 }]);
    const { state } = start(new RaceStrategy([a, b], LINGER_MS));
    await vi.advanceTimersByTimeAsync(40);
    expect(state.error).toBeInstanceOf(GroupFailure);
    expect(state.error).toMatchObject({ reason: 'http_status', upstream: 'b', allTimedOut: false });
    expect(state.at).toBe(40);
  });

  it('at the deadline every request still out is cancelled and the failure is a timeout of all', async () => {
    const a = fakeUpstream('a', [{ hang: true }]);
    const b = fakeUpstream('b', [{ hang: true }]);
    const obs = recorder();
    const deadline = new AbortController();
    const { state } = start(new RaceStrategy([a, b], LINGER_MS, obs), deadline.signal);
    await vi.advanceTimersByTimeAsync(500);
    deadline.abort();
    await vi.advanceTimersByTimeAsync(0);
    expect(state.error).toMatchObject({ reason: 'timeout', allTimedOut: true });
    expect([a, b].map((u) => u.calls[0]!.outcome)).toEqual(['cancelled', 'cancelled']);
    expect(obs.events).toEqual([
      { kind: 'failure', upstream: 'a', reason: 'timeout' },
      { kind: 'failure', upstream: 'b', reason: 'timeout' },
    ]);
  });

  it('an already expired deadline asks nobody', async () => {
    const a = fakeUpstream('a', [{ answer: 'NOERROR' }]);
    const ctl = new AbortController();
    ctl.abort();
    const { state } = start(new RaceStrategy([a], LINGER_MS), ctl.signal);
    await vi.advanceTimersByTimeAsync(0);
    expect(state.error).toMatchObject({ reason: 'timeout' });
    expect(a.calls).toEqual([]);
  });

  it('skips upstreams health has taken out, and asks all of them when every one is out', async () => {
    const a = fakeUpstream('a', [{ answer: 'NOERROR', afterMs: 1 }]);
    const b = fakeUpstream('b', [{ answer: 'NOERROR', afterMs: 5 }]);
    const h = health();
    takeOut(h, a);
    const race = new RaceStrategy([a, b], LINGER_MS, undefined, h);
    const first = start(race);
    await vi.advanceTimersByTimeAsync(5);
    expect(first.state.result!.upstream).toBe('b');
    expect(a.calls).toHaveLength(0);
    takeOut(h, b);
    const second = start(race);
    await vi.advanceTimersByTimeAsync(5);
    expect(second.state.result!.upstream).toBe('a');
    expect([a.calls.length, b.calls.length]).toEqual([1, 2]);
    h.close();
  });
});

describe('hedged', () => {
  const opts = { initialDelayMs: 100, minDelayMs: 20, maxDelayMs: 400 };

  it('a first upstream that answers within the hedge delay is the only one asked, even after the delay', async () => {
    const a = fakeUpstream('a', [{ answer: 'NOERROR', afterMs: 60 }]);
    const b = fakeUpstream('b', [{ answer: 'NOERROR', afterMs: 1 }]);
    const h = health();
    const { state } = start(new HedgedStrategy([a, b], h, opts, LINGER_MS));
    await vi.advanceTimersByTimeAsync(60);
    expect(state.result!.upstream).toBe('a');
    await vi.advanceTimersByTimeAsync(1000);
    expect(b.calls).toHaveLength(0);
    h.close();
  });

  it('asks the next one exactly at the hedge delay while the first stays in flight; the first good answer wins, the other lingers', async () => {
    const a = fakeUpstream('a', [{ answer: 'NOERROR', afterMs: 500 }], '192.0.2.1');
    const b = fakeUpstream('b', [{ answer: 'NOERROR', afterMs: 30 }], '192.0.2.2');
    const h = health();
    const obs = recorder();
    const { state } = start(new HedgedStrategy([a, b], h, opts, 2000, obs));
    await vi.advanceTimersByTimeAsync(99);
    expect(b.calls).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(b.calls.map((c) => c.at - T0)).toEqual([100]);
    await vi.advanceTimersByTimeAsync(30);
    expect(state.result!.upstream).toBe('b');
    expect(state.at).toBe(130);
    // a is left to finish (its real time reaches health), not cancelled.
    await vi.advanceTimersByTimeAsync(370);
    expect(a.calls[0]!.outcome).toBe('answered');
    expect(obs.events).toContainEqual({ kind: 'success', upstream: 'a', won: false });
    h.close();
  });

  it('moves to the next one at once when the first fails or answers SERVFAIL, without waiting for the delay', async () => {
    const a = fakeUpstream('a', [{ answer: 'SERVFAIL', afterMs: 5 }]);
    const b = fakeUpstream('b', [{ fail: 'reset', afterMs: 5 }]);
    const c = fakeUpstream('c', [{ answer: 'NOERROR', afterMs: 5 }]);
    const h = health(3);
    const { state } = start(new HedgedStrategy([a, b, c], h, opts, LINGER_MS));
    await vi.advanceTimersByTimeAsync(15);
    expect([a, b, c].map((u) => u.calls.map((x) => x.at - T0))).toEqual([[0], [5], [10]]);
    expect(state.result!.upstream).toBe('c');
    h.close();
  });

  it('the hedge delay follows the upstream p90 once known, clamped to [min, max]', () => {
    const a = fakeUpstream('a', []);
    const h = health();
    const s = new HedgedStrategy([a], h, opts, LINGER_MS);
    expect(s.delayFor(a)).toBe(100); // too few samples: the initial delay
    for (const ms of [50, 60, 70, 80, 90]) h.success(a, ms);
    expect(s.delayFor(a)).toBe(90);
    for (let i = 0; i < 32; i++) h.success(a, 5); // the window (32) holds only fast samples now
    expect(s.delayFor(a)).toBe(20);
    for (let i = 0; i < 32; i++) h.success(a, 900);
    expect(s.delayFor(a)).toBe(400);
  });

  it('asks the fastest upstream first, skipping those that are out', () => {
    const [a, b, c] = [fakeUpstream('a', []), fakeUpstream('b', []), fakeUpstream('c', [])];
    const h = health();
    const s = new HedgedStrategy([a, b, c], h, opts, LINGER_MS);
    expect(s.order().map((u) => u.name)).toEqual(['a', 'b', 'c']); // unknown: configured order
    h.success(a, 80);
    h.success(b, 20);
    h.success(c, 50);
    expect(s.order().map((u) => u.name)).toEqual(['b', 'c', 'a']);
    takeOut(h, b);
    expect(s.order().map((u) => u.name)).toEqual(['c', 'a']);
    h.close();
  });
});

describe('failover', () => {
  it('an attempt unanswered at attemptTimeoutMs is cancelled as a timeout and the next upstream asked then', async () => {
    const a = fakeUpstream('a', [{ hang: true }]);
    const b = fakeUpstream('b', [{ answer: 'NOERROR', afterMs: 40 }]);
    const obs = recorder();
    const { state } = start(new FailoverStrategy([a, b], 200, LINGER_MS, obs));
    await vi.advanceTimersByTimeAsync(199);
    expect(b.calls).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(a.calls[0]!.cancelledAt! - T0).toBe(200);
    expect(b.calls.map((c) => c.at - T0)).toEqual([200]);
    expect(obs.events[0]).toEqual({ kind: 'failure', upstream: 'a', reason: 'timeout' });
    await vi.advanceTimersByTimeAsync(40);
    expect(state.result!.upstream).toBe('b');
    expect(state.at).toBe(240);
  });

  it('the last upstream is given until the deadline, not the attempt timeout', async () => {
    const a = fakeUpstream('a', [{ fail: 'connect', afterMs: 1 }]);
    const b = fakeUpstream('b', [{ answer: 'NOERROR', afterMs: 900 }]);
    const { state } = start(new FailoverStrategy([a, b], 200, LINGER_MS));
    await vi.advanceTimersByTimeAsync(901);
    expect(b.calls[0]!.outcome).toBe('answered');
    expect(state.result!.upstream).toBe('b');
  });

  it('one at a time, in the configured order: SERVFAIL moves on; if nobody does better the first SERVFAIL is returned', async () => {
    const a = fakeUpstream('a', [{ answer: 'SERVFAIL', afterMs: 10 }]);
    const b = fakeUpstream('b', [{ answer: 'SERVFAIL', afterMs: 10 }]);
    const { state } = start(new FailoverStrategy([a, b], 200, LINGER_MS));
    await vi.advanceTimersByTimeAsync(10);
    expect(b.calls.map((c) => c.at - T0)).toEqual([10]);
    await vi.advanceTimersByTimeAsync(10);
    expect(state.result!.upstream).toBe('a');
    expect(state.result!.answer.rcode).toBe(Rcode.SERVFAIL);
  });

  it('every attempt timing out is a timeout of all; the deadline cancels the last one', async () => {
    const a = fakeUpstream('a', [{ hang: true }]);
    const b = fakeUpstream('b', [{ hang: true }]);
    const deadline = new AbortController();
    const { state } = start(new FailoverStrategy([a, b], 100, LINGER_MS), deadline.signal);
    await vi.advanceTimersByTimeAsync(1000);
    expect(b.calls[0]!.outcome).toBeUndefined(); // still waited for
    deadline.abort();
    await vi.advanceTimersByTimeAsync(0);
    expect(state.error).toMatchObject({ reason: 'timeout', allTimedOut: true, upstream: 'b' });
  });

  it('skips upstreams that are out', async () => {
    const a = fakeUpstream('a', [{ answer: 'NOERROR' }]);
    const b = fakeUpstream('b', [{ answer: 'NOERROR' }]);
    const h = health();
    takeOut(h, a);
    const { state } = start(new FailoverStrategy([a, b], 100, LINGER_MS, undefined, h));
    await vi.advanceTimersByTimeAsync(1);
    expect(state.result!.upstream).toBe('b');
    expect(a.calls).toHaveLength(0);
    h.close();
  });
});

describe('fallback group', () => {
  function setup(primaryScript: Parameters<typeof fakeUpstream>[1]) {
    const a = fakeUpstream('a', primaryScript);
    const b = fakeUpstream('b', primaryScript);
    const office = fakeUpstream('office', [{ answer: 'NOERROR', afterMs: 5 }], '10.1.0.1');
    const h = health();
    const warnings: unknown[] = [];
    const log = { warn: (o: unknown) => warnings.push(o) } as unknown as import('pino').Logger;
    const s = new FallbackStrategy(new RaceStrategy([a, b], LINGER_MS, h, h), [a, b], new RaceStrategy([office], LINGER_MS), 'office', h, log, 30_000);
    return { a, b, office, h, s, warnings };
  }

  it('is not asked while the default group answers', async () => {
    const { office, h, s } = setup([{ answer: 'NOERROR', afterMs: 10 }]);
    const { state } = start(s);
    await vi.advanceTimersByTimeAsync(10);
    expect(state.result!.upstream).toBe('a');
    expect([office.calls.length, s.used]).toEqual([0, 0]);
    h.close();
  });

  it('answers when no default upstream gave an answer (before the deadline); once every one is out, it answers without asking them', async () => {
    const { a, b, h, s, warnings } = setup([{ fail: 'connect', afterMs: 10 }]);
    const first = start(s);
    await vi.advanceTimersByTimeAsync(15);
    expect(first.state.result!.upstream).toBe('office');
    expect(dataOf(first.state.result)).toBe('10.1.0.1');
    expect(h.allDown([a, b])).toBe(true);
    const second = start(s);
    await vi.advanceTimersByTimeAsync(5);
    expect(second.state.result!.upstream).toBe('office');
    expect([a.calls.length, b.calls.length]).toEqual([1, 1]);
    expect(s.used).toBe(2);
    // Logged once per window.
    expect(warnings).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(30_000);
    const third = start(s);
    await vi.advanceTimersByTimeAsync(5);
    expect(third.state.result!.upstream).toBe('office');
    expect(warnings).toHaveLength(2);
    h.close();
  });

  it('is not asked when the deadline has passed: the timeout stands', async () => {
    const { office, h, s } = setup([{ hang: true }]);
    const deadline = new AbortController();
    const { state } = start(s, deadline.signal);
    await vi.advanceTimersByTimeAsync(100);
    deadline.abort();
    await vi.advanceTimersByTimeAsync(10);
    expect(state.error).toMatchObject({ reason: 'timeout' });
    expect(office.calls).toHaveLength(0);
    h.close();
  });
});
