/**
 * The ladder's order and timing on a fake clock (the real transports behind it are tested in
 * test/integration/censor.test.ts): where a query starts, when it moves on, what it reports,
 * and how the better paths are probed again.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import dnsPacket from 'dns-packet';
import { decodeQuery, type Query } from '../../../src/dns/message.js';
import { UpstreamError } from '../../../src/upstream/errors.js';
import { LadderUpstream } from '../../../src/upstream/ladder.js';
import type { Upstream } from '../../../src/upstream/types.js';
import type { CheckedAnswer } from '../../../src/upstream/validate.js';

type Behaviour = 'ok' | 'fail' | 'silent';

/** A path whose next answers are scripted: answers at once, fails at once, or never answers (until the signal aborts). */
class Path implements Upstream {
  readonly kind = 'doh' as const;
  calls = 0;
  constructor(
    readonly name: string,
    public behaviour: Behaviour,
  ) {}
  exchange(_wire: Buffer, _q: Query, signal: AbortSignal): Promise<CheckedAnswer> {
    this.calls++;
    if (this.behaviour === 'ok') return Promise.resolve({ wire: Buffer.from(this.name), packet: {} as never, rcode: 0 });
    if (this.behaviour === 'fail') return Promise.reject(new UpstreamError('blocked_sni', `${this.name} reset`));
    return new Promise((_r, reject) => signal.addEventListener('abort', () => reject(new UpstreamError('aborted', 'cancelled')), { once: true }));
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

const raw = dnsPacket.encode({ type: 'query', id: 0, questions: [{ name: 'example.com', type: 'A', class: 'IN' }] });
const dq = decodeQuery(raw);
if (!dq.ok) throw new Error('query');
const q = dq.query;

let failures: { path: string; reason: string }[];
let logs: { msg: string; obj: Record<string, unknown> }[];
const log = { warn: (obj: Record<string, unknown>, msg: string) => logs.push({ obj, msg }) } as never;

function ladder(...behaviours: Behaviour[]) {
  const paths = behaviours.map((b, i) => new Path(`p${i}`, b));
  const l = new LadderUpstream('prov', paths, { stepMs: 700, reprobeMs: 1000, maxReprobeMs: 4000, log, observer: { failure: (u, e) => failures.push({ path: u.name, reason: e.reason }) } });
  return { l, paths };
}
const ask = (l: LadderUpstream, signal = new AbortController().signal) => l.exchange(raw, q, signal).then((a) => a.wire.toString());

beforeEach(() => {
  vi.useFakeTimers();
  failures = [];
  logs = [];
});
afterEach(() => {
  vi.useRealTimers();
});

describe('the ladder', () => {
  it('a path that fails moves the query to the next at once, and the next query starts on the one that answered', async () => {
    const { l, paths } = ladder('fail', 'ok', 'ok');
    expect(await ask(l)).toBe('p1');
    expect(l.working).toBe(1);
    expect(failures).toEqual([{ path: 'p0', reason: 'blocked_sni' }]);
    expect(logs.map((x) => [x.msg, x.obj.from, x.obj.to, x.obj.reason])).toEqual([['upstream path changed: an earlier path looks blocked', 'p0', 'p1', 'blocked_sni']]);
    expect(await ask(l)).toBe('p1');
    expect(paths.map((p) => p.calls)).toEqual([1, 2, 0]);
    await l.close();
  });

  it('a silent path: the next one is asked after stepMs, not at the deadline, and wins', async () => {
    const { l, paths } = ladder('silent', 'silent', 'ok');
    const ctl = new AbortController();
    let got: string | undefined;
    void ask(l, ctl.signal).then((x) => (got = x));
    await vi.advanceTimersByTimeAsync(699);
    expect(paths.map((p) => p.calls)).toEqual([1, 0, 0]);
    await vi.advanceTimersByTimeAsync(1);
    expect(paths.map((p) => p.calls)).toEqual([1, 1, 0]);
    await vi.advanceTimersByTimeAsync(700);
    expect(got).toBe('p2');
    expect(l.working).toBe(2);
    ctl.abort(); // the losers end with the caller's signal, and are not reported as failures
    await vi.advanceTimersByTimeAsync(0);
    expect(failures).toEqual([]);
    await l.close();
  });

  it('starting on a lower path, the order wraps around to the better ones last', async () => {
    const { l, paths } = ladder('fail', 'ok', 'fail');
    await ask(l);
    expect(l.working).toBe(1);
    paths[1]!.behaviour = 'fail';
    paths[0]!.behaviour = 'ok';
    expect(await ask(l)).toBe('p0');
    // p1 (working), then p2, then p0.
    expect(paths.map((p) => p.calls)).toEqual([2, 2, 1]);
    expect(l.working).toBe(0);
    expect(logs.at(-1)?.msg).toBe('upstream path restored');
    await l.close();
  });

  it('every path failing rejects with the last path’s error, each path reported', async () => {
    const { l } = ladder('fail', 'fail');
    await expect(ask(l)).rejects.toMatchObject({ reason: 'blocked_sni', message: 'p1 reset' });
    expect(failures.map((f) => f.path)).toEqual(['p0', 'p1']);
    expect(l.lastFailure.map((e) => e?.reason)).toEqual(['blocked_sni', 'blocked_sni']);
    await l.close();
  });

  it('the better paths are probed again with backoff (1 s, 2 s, 4 s, 4 s) and used again once they answer', async () => {
    const { l, paths } = ladder('fail', 'ok');
    await ask(l);
    expect(l.working).toBe(1);
    const probes = () => paths[0]!.calls - 1;
    await vi.advanceTimersByTimeAsync(999);
    expect(probes()).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(probes()).toBe(1);
    await vi.advanceTimersByTimeAsync(2000);
    expect(probes()).toBe(2);
    await vi.advanceTimersByTimeAsync(4000);
    expect(probes()).toBe(3);
    await vi.advanceTimersByTimeAsync(4000);
    expect(probes()).toBe(4);
    paths[0]!.behaviour = 'ok';
    await vi.advanceTimersByTimeAsync(4000);
    expect(l.working).toBe(0);
    expect(logs.at(-1)).toMatchObject({ msg: 'upstream path restored', obj: { how: 'probe answered' } });
    // Back on the best path: no more probes.
    const n = paths[0]!.calls;
    await vi.advanceTimersByTimeAsync(60_000);
    expect(paths[0]!.calls).toBe(n);
    await l.close();
  });

  it('one path alone is passed straight through', async () => {
    const { l, paths } = ladder('ok');
    expect(await ask(l)).toBe('p0');
    expect(paths[0]!.calls).toBe(1);
    await l.close();
  });
});
