import { describe, expect, it } from 'vitest';
import dnsPacket from 'dns-packet';
import { buildClientQuery } from '../../../../src/dns/client.js';
import { decodeQuery, type Query } from '../../../../src/dns/message.js';
import { Exchange } from '../../../../src/upstream/doh/doh.js';
import type { UpstreamError } from '../../../../src/upstream/errors.js';
import type { CheckedAnswer } from '../../../../src/upstream/validate.js';

// The handler is driven here as undici drives it (start, headers, data, end / error), so that
// what it still holds once settled can be looked at. Its life on a real HTTP/2 connection is
// in test/integration/doh-connection.test.ts and faults.test.ts.
function query(): Query {
  const d = decodeQuery(buildClientQuery('held.example.net', 'A', { id: 0 }).wire);
  if (!d.ok) throw new Error('query did not decode');
  return d.query;
}

function answerFor(q: Query): Buffer {
  return dnsPacket.encode({ type: 'response', id: 0, flags: 0x8180, questions: [{ name: 'held.example.net', type: 'A', class: 'IN' }], answers: [{ name: 'held.example.net', type: 'A', ttl: 60, data: '192.0.2.7' }] });
}

function start() {
  const q = query();
  const ctl = new AbortController();
  const heard: number[] = [];
  let settled: { answer?: CheckedAnswer; err?: UpstreamError } | null = null;
  const resolve = (answer: CheckedAnswer) => (settled = { answer });
  const reject = (err: UpstreamError) => (settled = { err });
  const onHeard = (ms: number) => heard.push(ms);
  const ex = new Exchange(q, ctl.signal, onHeard, resolve, reject);
  const controller = { aborted: false, abort: () => void (controller.aborted = true) };
  ex.onRequestStart(controller as never);
  /** What of the query's own things the exchange still points to. */
  const held = () => Object.values(ex).filter((v) => v === q || v === ctl.signal || v === resolve || v === reject || v === onHeard || (Array.isArray(v) && v.length > 0));
  return { q, ctl, ex, heard, held, settled: () => settled, controller };
}

describe('a DoH exchange lets go of its query once settled (undici and the stream keep it longer)', () => {
  it('answered: the checked answer goes out, and nothing of the query is left in the handler', () => {
    const t = start();
    expect(t.held().length).toBeGreaterThan(0); // while running, it does hold them
    t.ex.onResponseStart(t.controller as never, 200, { 'content-type': 'application/dns-message' });
    t.ex.onResponseData(t.controller as never, answerFor(t.q));
    expect(t.held()).toContain(t.q);
    t.ex.onResponseEnd();
    expect(t.settled()?.answer?.rcode).toBe(0);
    expect(t.heard).toHaveLength(1);
    expect(t.held()).toEqual([]);
    // The caller's deadline firing later reaches nothing.
    t.ctl.abort();
    expect(t.settled()?.answer).toBeDefined();
  });

  it('failed (HTTP 503), cancelled or aborted: the same, and the stream is stopped', () => {
    const failed = start();
    failed.ex.onResponseStart(failed.controller as never, 503, {});
    expect(failed.settled()?.err?.reason).toBe('http_status');
    expect(failed.controller.aborted).toBe(true);
    expect(failed.held()).toEqual([]);

    const cancelled = start();
    cancelled.ex.cancel();
    expect(cancelled.settled()?.err?.reason).toBe('aborted');
    expect(cancelled.held()).toEqual([]);

    const aborted = start();
    aborted.ex.onResponseData(aborted.controller as never, Buffer.from([1, 2, 3]));
    aborted.ctl.abort();
    expect(aborted.settled()?.err?.reason).toBe('aborted');
    expect(aborted.controller.aborted).toBe(true);
    expect(aborted.held()).toEqual([]);
  });
});
