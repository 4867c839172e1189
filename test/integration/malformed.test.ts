/**
 * Malformed and odd client input through a real daemon (in-process, real sockets, the real
 * DoH fixture upstream):
 * - a question name compressed into the header (`… 03 61 62 63 c0 04 …`, issue 18) is decoded
 *   the way dns-packet decodes it and answered, over UDP and TCP, with no error in the log;
 * - a bug met while handling a query (a RangeError thrown by a stage) is logged at error
 *   level once, counted in dohd_internal_errors_total, and the client gets SERVFAIL.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import { sendRawUdp } from '../fixtures/dns-client.js';
import { startDaemon, type RunningDaemon } from '../fixtures/daemon.js';
import { startDohUpstream, stopDohUpstream, type DohServer } from '../fixtures/doh-server.js';
import type { Pki } from '../fixtures/pki.js';
import { parseProm } from '../fixtures/prom.js';
import { frame, frameReader } from '../fixtures/tcp-frames.js';
import type { Strategy } from '../../src/upstream/strategies/strategy.js';

let up: { pki: Pki; doh: DohServer };
let d: RunningDaemon | undefined;

beforeAll(async () => {
  up = await startDohUpstream({ name: 'up' });
  up.doh.zone.add({ name: 'abc', type: 'A', ttl: 300, data: '192.0.2.77' });
});
afterAll(async () => {
  await stopDohUpstream(up);
});
afterEach(async () => {
  await d?.stop();
  d = undefined;
});

/** Header (ID, RD, one question) + `03 61 62 63 c0 <at>` + type A, class IN. */
function headerPointerQuery(id: number, at = 4): Buffer {
  const h = Buffer.from([id >> 8, id & 0xff, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
  return Buffer.concat([h, Buffer.from([3, 0x61, 0x62, 0x63, 0xc0, at, 0, 1, 0, 1])]);
}

function tcpExchange(port: number, msg: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.on('connect', () => s.write(frame(msg)));
    s.on(
      'data',
      frameReader((answer) => {
        s.destroy();
        resolve(answer);
        return false;
      }),
    );
    s.on('error', reject);
    setTimeout(() => reject(new Error('no TCP answer')), 5000).unref();
  });
}

function rcodeOf(b: Buffer): { rcode: string } {
  return dnsPacket.decode(b) as unknown as { rcode: string };
}

function errorLines(r: RunningDaemon) {
  return r.logs.filter((l) => l.level === 'error' || l.level === 'fatal' || (l.level as unknown) === 50 || (l.level as unknown) === 60);
}

async function metric(r: RunningDaemon, name: string, labels: Record<string, string> = {}): Promise<number> {
  return parseProm(await r.daemon.metrics.render()).value(name, labels);
}

describe('a question name compressed into the header', () => {
  it('is answered as dns-packet reads it (abc/A), over UDP and TCP, three times each, with no error logged', async () => {
    d = await startDaemon({ upstreams: [{ url: up.doh.url, ca: up.pki.caFile, name: 'up' }] });
    const raw = headerPointerQuery(0x1234);
    // What dns-packet makes of it: the pointer goes to offset 4, QDCOUNT's high byte, a zero: the root.
    expect(dnsPacket.decode(raw).questions![0]!.name).toBe('abc');
    for (let i = 0; i < 3; i++) {
      for (const reply of [await sendRawUdp(d.host, d.port, headerPointerQuery(0x1234 + i)), await tcpExchange(d.port, headerPointerQuery(0x2234 + i))]) {
        expect(reply).not.toBeNull();
        const p = dnsPacket.decode(reply!) as dnsPacket.DecodedPacket & { rcode: string };
        expect(p.rcode).toBe('NOERROR');
        expect(p.questions![0]!.name).toBe('abc');
        expect(p.answers!.map((a) => (a as { data: unknown }).data)).toEqual(['192.0.2.77']);
      }
    }
    // The upstream was asked the plain name.
    expect(up.doh.queries.some((q) => q.questions?.[0]?.name === 'abc')).toBe(true);
    expect(errorLines(d)).toEqual([]);
    expect(await metric(d, 'dohd_internal_errors_total')).toBe(0);
  });

  it('a pointer dns-packet refuses (forward, or a loop) gets FORMERR, not SERVFAIL', async () => {
    d = await startDaemon({ upstreams: [{ url: up.doh.url, ca: up.pki.caFile, name: 'up' }] });
    for (const at of [12, 16, 0x3fff]) {
      const reply = await sendRawUdp(d.host, d.port, headerPointerQuery(0x4000 + at, at));
      expect(reply).not.toBeNull();
      expect(rcodeOf(reply!).rcode).toBe('FORMERR');
    }
    expect(errorLines(d)).toEqual([]);
  });
});

describe('a bug while handling a query', () => {
  it('is logged at error level once, counted, and the clients get SERVFAIL (coalesced queries too)', async () => {
    d = await startDaemon({ upstreams: [{ url: up.doh.url, ca: up.pki.caFile, name: 'up' }] });
    let calls = 0;
    const buggy: Strategy = {
      name: 'buggy',
      resolve: () => {
        calls++;
        // What a buffer read past its end throws.
        return Promise.reject(Object.assign(new RangeError('The value of "offset" is out of range.'), { code: 'ERR_OUT_OF_RANGE' }));
      },
    };
    d.daemon.forwardStage.update(buggy);
    const q = dnsPacket.encode({ type: 'query', id: 7, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name: 'bug.example.net', type: 'A', class: 'IN' }] });
    const replies = await Promise.all([sendRawUdp(d.host, d.port, q), sendRawUdp(d.host, d.port, q), tcpExchange(d.port, q)]);
    for (const r of replies) expect(rcodeOf(r!).rcode).toBe('SERVFAIL');
    const errors = errorLines(d);
    // One exchange per distinct flight: each is logged once, however many clients shared it.
    expect(errors.length).toBe(calls);
    expect(errors[0]!.msg).toMatch(/internal error/);
    expect(await metric(d, 'dohd_internal_errors_total', { where: 'resolve', kind: 'RangeError' })).toBe(calls);
  });
});
