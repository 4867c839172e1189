/**
 * Fault injection: one broken upstream per mode, against the suite's own DoH server.
 * For each mode: beside a healthy upstream the client still gets the right answer; alone,
 * the client gets SERVFAIL within the deadline; the failure is counted against that
 * upstream with its reason and logged once; no promise rejection goes unhandled and,
 * once the daemon is stopped, no socket or timer is left behind.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { setTimeout as sleep } from 'node:timers/promises';
import { queryUdp } from '../fixtures/dns-client.js';
import { startDaemon, type RunningDaemon } from '../fixtures/daemon.js';
import { startDohServer, type DohMode, type DohServer } from '../fixtures/doh-server.js';
import { makePki, type Pki } from '../fixtures/pki.js';
import { countResources, leaksAfter, until, watchUnhandledRejections } from '../fixtures/resources.js';
import type { UpstreamError, UpstreamFailure } from '../../src/upstream/errors.js';
import type { Upstream } from '../../src/upstream/types.js';

const DEADLINE = 800;

interface Fault {
  name: string;
  mode: DohMode;
  delayMs?: number;
  /** Serve with a certificate from a CA dohd does not trust. */
  untrusted?: boolean;
  /** Failure reasons acceptable for this mode; null: the upstream answers (in time). */
  reasons: UpstreamFailure[] | null;
  /** The failure only shows at the deadline (no fast SERVFAIL). */
  slow?: boolean;
}

const FAULTS: Fault[] = [
  { name: 'hang', mode: 'hang', reasons: ['timeout'], slow: true },
  { name: 'slow, just under the deadline', mode: 'slow', delayMs: DEADLINE - 450, reasons: null },
  { name: 'slow, just over the deadline', mode: 'slow', delayMs: DEADLINE + 400, reasons: ['timeout'], slow: true },
  { name: 'HTTP 500', mode: 'http500', reasons: ['http_status'] },
  { name: 'HTTP 429', mode: 'http429', reasons: ['http_status'] },
  { name: 'HTTP 404', mode: 'http404', reasons: ['http_status'] },
  { name: 'connection reset mid-body', mode: 'reset', reasons: ['reset'] },
  { name: 'HTTP/2 GOAWAY', mode: 'goaway', reasons: ['goaway', 'reset'] },
  { name: 'garbage body', mode: 'garbage', reasons: ['malformed', 'wrong_question'] },
  { name: 'truncated body', mode: 'truncated', reasons: ['malformed'] },
  { name: 'wrong content-type', mode: 'wrongContentType', reasons: ['content_type'] },
  { name: 'wrong question', mode: 'wrongQuestion', reasons: ['wrong_question'] },
  { name: 'oversized body', mode: 'oversized', reasons: ['oversized'] },
  { name: 'wrong ID', mode: 'wrongId', reasons: ['wrong_question'] },
  { name: 'untrusted certificate', mode: 'ok', untrusted: true, reasons: ['intercepted'] },
];

let pki: Pki;
let otherPki: Pki;
let good: DohServer;
let bad: DohServer;
let untrusted: DohServer;
let d: RunningDaemon | undefined;
const rejections = watchUnhandledRejections();

beforeAll(async () => {
  [pki, otherPki] = await Promise.all([makePki(), makePki()]);
  good = await startDohServer({ pki, name: 'good' });
  bad = await startDohServer({ pki, name: 'bad' });
  untrusted = await startDohServer({ pki: otherPki, name: 'untrusted' });
});
afterAll(async () => {
  rejections.stop();
  await Promise.all([good.close(), bad.close(), untrusted.close()]);
  await Promise.all([pki.cleanup(), otherPki.cleanup()]);
});
afterEach(async () => {
  await d?.stop();
  d = undefined;
  for (const s of [good, bad, untrusted]) s.reset();
  expect(rejections.seen).toEqual([]);
});

/** Failures the daemon counted, per upstream name. */
function observe(daemon: RunningDaemon) {
  const failures: { upstream: string; reason: UpstreamFailure }[] = [];
  daemon.daemon.reporter.add({
    success: () => {},
    failure: (u: Upstream, err: UpstreamError) => failures.push({ upstream: u.name, reason: err.reason }),
  });
  return failures;
}

function brokenUpstream(f: Fault) {
  const server = f.untrusted ? untrusted : bad;
  server.mode = f.mode;
  server.delayMs = f.delayMs ?? 0;
  // Always our CA: for the untrusted server it is the wrong one.
  return { url: server.url, ca: pki.caFile, name: 'broken' };
}

describe.each(FAULTS)('upstream fault: $name', (f) => {
  it('beside a healthy upstream, the client gets the right answer', async () => {
    const before = countResources();
    d = await startDaemon({ upstreams: [brokenUpstream(f), { url: good.url, ca: pki.caFile, name: 'good' }], timeoutMs: DEADLINE });
    const failures = observe(d);
    for (const [name, ip] of [['example.com', '192.0.2.1'], ['www.example.com', '192.0.2.3']] as const) {
      const r = await queryUdp({ port: d.port, name, timeoutMs: DEADLINE + 2000 });
      expect(r.response.rcode).toBe('NOERROR');
      expect(r.response.answers.map((a) => a.data)).toEqual([ip]);
    }
    // Failures are counted against the broken upstream only (one cancelled because the
    // healthy upstream won first is not a failure).
    await sleep(100);
    expect(failures.filter((x) => x.upstream !== 'broken' || !f.reasons?.includes(x.reason))).toEqual([]);
    await d.stop();
    d = undefined;
    expect(await leaksAfter(before)).toEqual([]);
  });

  it('alone, the client gets SERVFAIL within the deadline (or the answer, when it comes in time), logged once', async () => {
    const before = countResources();
    d = await startDaemon({ upstreams: [brokenUpstream(f)], timeoutMs: DEADLINE });
    const failures = observe(d);
    const names = ['example.com', 'a.example.com', 'b.example.com'];
    const results = await Promise.all(names.map((name) => queryUdp({ port: d!.port, name, timeoutMs: DEADLINE + 3000 })));
    for (const r of results) {
      if (f.reasons === null) {
        expect(r.response.rcode).not.toBe('SERVFAIL');
        continue;
      }
      expect(r.response.rcode).toBe('SERVFAIL');
      expect(r.ms).toBeLessThan(DEADLINE + 1000);
      if (f.slow) expect(r.ms).toBeGreaterThanOrEqual(DEADLINE - 100);
    }
    if (f.reasons) {
      expect(failures.length).toBe(names.length);
      expect(failures.filter((x) => x.upstream !== 'broken' || !f.reasons!.includes(x.reason))).toEqual([]);
      const logged = d.logs.filter((l) => l.msg === 'upstream failed' && l.upstream === 'broken');
      expect(logged.map((l) => l.reason).filter((r, i, all) => all.indexOf(r) === i)).toHaveLength(logged.length); // once per reason
      expect(logged.length).toBeGreaterThanOrEqual(1);
      expect(f.reasons).toContain(logged[0]!.reason);
      expect(typeof logged[0]!.detail).toBe('string');
    } else {
      expect(failures).toEqual([]);
    }
    await d.stop();
    d = undefined;
    expect(await leaksAfter(before)).toEqual([]);
  });
});

describe('upstream connection use', () => {
  it('queries to one upstream run concurrently over one HTTP/2 connection', async () => {
    d = await startDaemon({ upstreams: [{ url: good.url, ca: pki.caFile }] });
    await queryUdp({ port: d.port, name: 'example.com' });
    good.delayMs = 400;
    const answered = good.answered;
    const pending = ['a', 'b', 'c', 'd'].map((n) => queryUdp({ port: d!.port, name: `${n}.example.com` }));
    // All four are at the upstream before the first of them is answered.
    await until(() => good.requests === 1 + 4, 3000, 'four requests');
    expect(good.answered).toBe(answered);
    expect(good.handshakes).toBe(1);
    expect((await Promise.all(pending)).map((r) => r.response.rcode)).toEqual(['NXDOMAIN', 'NXDOMAIN', 'NXDOMAIN', 'NXDOMAIN']);
  });

  it('one failed stream does not fail the queries running beside it on the same connection', async () => {
    d = await startDaemon({ upstreams: [{ url: bad.url, ca: pki.caFile, name: 'broken' }], timeoutMs: 3000 });
    await queryUdp({ port: d.port, name: 'example.com' });
    bad.mode = 'slow';
    bad.delayMs = 500;
    const beside = ['a', 'b', 'c'].map((n) => queryUdp({ port: d!.port, name: `${n}.example.com`, timeoutMs: 4000 }));
    await until(() => bad.requests === 4, 2000, 'three queries at the upstream');
    bad.mode = 'reset';
    bad.delayMs = 0;
    const failed = await queryUdp({ port: d.port, name: 'www.example.com', timeoutMs: 4000 });
    expect(failed.response.rcode).toBe('SERVFAIL');
    expect((await Promise.all(beside)).map((r) => r.response.rcode)).toEqual(['NXDOMAIN', 'NXDOMAIN', 'NXDOMAIN']);
  });

  it('an upstream that recovers is used again', async () => {
    bad.mode = 'http500';
    d = await startDaemon({ upstreams: [{ url: bad.url, ca: pki.caFile, name: 'broken' }], timeoutMs: DEADLINE });
    expect((await queryUdp({ port: d.port, name: 'example.com' })).response.rcode).toBe('SERVFAIL');
    bad.mode = 'ok';
    expect((await queryUdp({ port: d.port, name: 'example.com' })).response.rcode).toBe('NOERROR');
  });
});
