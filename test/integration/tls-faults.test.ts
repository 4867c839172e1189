/**
 * TLS failure modes (issue 18 item 4), each tried three times in a row on the same upstream,
 * alone and raced beside a healthy upstream (test/fixtures/tls-faults.ts has the modes):
 * - alone: every query is answered — SERVFAIL while the upstream cannot be used, the right
 *   answer where the mode still lets a DoH answer through (HTTP/1.1, a long chain);
 * - raced: every query gets the healthy upstream's right answer, within its own round trip
 *   (far below the query deadline a stalled handshake would cost);
 * - a certificate turning good → bad → good under a live connection pool;
 * and nothing is logged at error level (no transport restart, no internal error). A throw
 * escaping to the process would fail this file (vitest reports uncaught errors).
 * test/e2e/tls-faults-cli.test.ts runs every mode against the real CLI.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { performance } from 'node:perf_hooks';
import { queryTcp, queryUdp } from '../fixtures/dns-client.js';
import { startDaemon, type RunningDaemon } from '../fixtures/daemon.js';
import { startDohUpstream, stopDohUpstream, type DohServer } from '../fixtures/doh-server.js';
import type { Pki } from '../fixtures/pki.js';
import { startTlsFaultUpstream, TLS_FAULTS, TLS_REFUSED, type TlsFault, type TlsFaultUpstream } from '../fixtures/tls-faults.js';

const ATTEMPTS = 3;
const DEADLINE = 800;

let faulty: TlsFaultUpstream;
let healthy: { pki: Pki; doh: DohServer };
let d: RunningDaemon | undefined;

beforeAll(async () => {
  [faulty, healthy] = await Promise.all([startTlsFaultUpstream(), startDohUpstream({ name: 'healthy' })]);
  // Both upstreams answer from the same records.
  healthy.doh.zone = faulty.zone;
}, 60_000);
afterAll(async () => {
  await Promise.all([faulty?.close(), healthy && stopDohUpstream(healthy)]);
});
afterEach(async () => {
  faulty.setMode('ok', true);
  await d?.stop();
  d = undefined;
});

const faultyUpstream = () => ({ url: faulty.url, bootstrap: ['127.0.0.1'], ca: faulty.pki.caFile, name: 'faulty' });
const healthyUpstream = () => ({ url: healthy.doh.url, ca: healthy.pki.caFile, name: 'healthy' });

let n = 0;
/** A name of its own (never answered from the cache), with an address in the zone. */
function freshName(): { name: string; address: string } {
  n++;
  const name = `q${n}.tls.example.net`;
  const address = `198.51.100.${n % 250}`;
  faulty.zone.add({ name, type: 'A', ttl: 60, data: address });
  return { name, address };
}

function errorLines(r: RunningDaemon) {
  return r.logs.filter((l) => l.level === 'error' || l.level === 'fatal');
}

async function ask(r: RunningDaemon, i: number) {
  const { name, address } = freshName();
  const t0 = performance.now();
  const res = await (i % 2 ? queryTcp : queryUdp)({ host: r.host, port: r.port, name, timeoutMs: DEADLINE + 3000 });
  return { res, address, ms: performance.now() - t0 };
}

describe.each(TLS_FAULTS.map((m) => [m]))('%s', (mode: TlsFault) => {
  it(`alone, ${ATTEMPTS} times in a row: always answered (${TLS_REFUSED.has(mode) ? 'SERVFAIL' : 'the right answer'})`, async () => {
    d = await startDaemon({ upstreams: [faultyUpstream()], timeoutMs: DEADLINE });
    faulty.setMode(mode, true);
    for (let i = 0; i < ATTEMPTS; i++) {
      const { res, address } = await ask(d, i);
      if (TLS_REFUSED.has(mode)) expect(res.response.rcode, `attempt ${i + 1}`).toBe('SERVFAIL');
      else {
        expect(res.response.rcode, `attempt ${i + 1}`).toBe('NOERROR');
        expect(res.response.answers.map((a) => a.data)).toEqual([address]);
      }
    }
    expect(faulty.connections.get(mode) ?? 0).toBeGreaterThan(0);
    expect(errorLines(d)).toEqual([]);
  });

  it(`raced beside a healthy upstream, ${ATTEMPTS} times in a row: the healthy one's answer, within its own round trip`, async () => {
    d = await startDaemon({ upstreams: [faultyUpstream(), healthyUpstream()], timeoutMs: DEADLINE });
    faulty.setMode(mode, true);
    for (let i = 0; i < ATTEMPTS; i++) {
      const { res, address, ms } = await ask(d, i);
      expect(res.response.rcode, `attempt ${i + 1}`).toBe('NOERROR');
      expect(res.response.answers.map((a) => a.data)).toEqual([address]);
      // The healthy upstream answers in a few ms; waiting on the faulty one would cost the deadline
      // (the margin is for a loaded CI machine).
      expect(ms, `attempt ${i + 1}`).toBeLessThan(DEADLINE * 0.8);
    }
    expect(errorLines(d)).toEqual([]);
  });
});

describe('the certificate changing under a live connection pool', () => {
  for (const raced of [false, true]) {
    it(`good → bad → good (${raced ? 'raced' : 'alone'}), ${ATTEMPTS} queries each way, every bad mode`, async () => {
      // Health probes the faulty upstream back in after 100 ms rather than the default second.
      d = await startDaemon({ upstreams: raced ? [faultyUpstream(), healthyUpstream()] : [faultyUpstream()], timeoutMs: DEADLINE, health: { backoffMs: 100 } });
      for (const bad of ['wrongName', 'expired', 'unknownCa'] as const) {
        faulty.setMode('ok', true);
        const good0 = faulty.good.answered;
        for (let i = 0; i < ATTEMPTS; i++) expect((await ask(d, i)).res.response.rcode).toBe('NOERROR');
        if (!raced) expect(faulty.good.answered).toBeGreaterThan(good0);
        // The live connection is cut; the next one meets the bad certificate.
        faulty.setMode(bad, true);
        for (let i = 0; i < ATTEMPTS; i++) expect((await ask(d, i)).res.response.rcode).toBe(raced ? 'NOERROR' : 'SERVFAIL');
        faulty.setMode('ok', true);
        // Good again: the faulty upstream itself answers again.
        const good1 = faulty.good.answered;
        for (let i = 0; i < 30 && faulty.good.answered === good1; i++) {
          expect((await ask(d, i)).res.response.rcode).toMatch(raced ? /NOERROR/ : /NOERROR|SERVFAIL/);
          if (faulty.good.answered === good1) await new Promise((r) => setTimeout(r, 100));
        }
        expect(faulty.good.answered).toBeGreaterThan(good1);
      }
      expect(errorLines(d)).toEqual([]);
    });
  }
});
