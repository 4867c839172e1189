/**
 * Socket-level soak, bounded in time: tens of thousands of random and mutated datagrams
 * and hundreds of garbage TCP streams, interleaved with valid queries over UDP and TCP
 * that must all be answered correctly. Afterwards: every connection released, nothing in
 * flight, resident memory grown by less than RSS_BOUND_MB (and the live heap, after a
 * full collection, by less than HEAP_BOUND_MB), no handle or timer left.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes, randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import v8 from 'node:v8';
import vm from 'node:vm';
import { setTimeout as sleep } from 'node:timers/promises';
import { buildQuery, queryUdp, TcpDnsClient, type DnsResult } from '../fixtures/dns-client.js';
import { startDaemon, type RunningDaemon } from '../fixtures/daemon.js';
import { startDohUpstream, stopDohUpstream, type DohServer } from '../fixtures/doh-server.js';
import type { Pki } from '../fixtures/pki.js';
import { countResources, leaksAfter, until, watchUnhandledRejections } from '../fixtures/resources.js';
import { frame } from '../fixtures/tcp-frames.js';

/** The stated bound: resident memory growth of this process (daemon in-process) over the soak. */
const RSS_BOUND_MB = 150;
/** Live JavaScript heap growth after a full collection: what the daemon still holds. */
const HEAP_BOUND_MB = 32;
const GARBAGE_DATAGRAMS = Number(process.env.SOAK_DATAGRAMS ?? 40_000);
const GARBAGE_STREAMS = 400;
const BATCH = 100;

// A full garbage collection on demand, without starting node with --expose-gc.
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

let pki: Pki;
let doh: DohServer;
let d: RunningDaemon;
const rejections = watchUnhandledRejections();

beforeAll(async () => {
  ({ pki, doh } = await startDohUpstream());
});
afterAll(async () => {
  rejections.stop();
  await stopDohUpstream({ pki, doh });
});

/** The answers every valid query must get. */
const EXPECTED: { name: string; type: string; check: (r: DnsResult) => boolean }[] = [
  { name: 'example.com', type: 'A', check: (r) => data(r) === '192.0.2.1' },
  { name: 'example.com', type: 'AAAA', check: (r) => data(r) === '2001:db8::1' },
  { name: 'www.example.com', type: 'A', check: (r) => data(r) === '192.0.2.3' },
  { name: 'pinned.example.net', type: 'A', check: (r) => data(r) === '192.0.2.99' },
  { name: 'nope.example.com', type: 'A', check: (r) => r.response.rcode === 'NXDOMAIN' },
];

function data(r: DnsResult): unknown {
  const a = r.response.answers?.[0] as { data?: unknown } | undefined;
  return r.response.rcode === 'NOERROR' ? a?.data : undefined;
}

/** One garbage datagram: random bytes, a mutated valid query, a response, or a cut query. */
function garbageDatagram(): Buffer {
  const base = buildQuery({ name: EXPECTED[randomInt(EXPECTED.length)]!.name, type: 'A' }).wire;
  switch (randomInt(5)) {
    case 0:
      return randomBytes(randomInt(0, 700));
    case 1: {
      const m = Buffer.from(base);
      for (let i = randomInt(1, 6); i > 0; i--) m[randomInt(m.length)] = randomInt(256);
      return m;
    }
    case 2: {
      const m = Buffer.from(base);
      m.writeUInt16BE(m.readUInt16BE(2) | 0x8000, 2); // a response: must be dropped
      return m;
    }
    case 3:
      return base.subarray(0, randomInt(base.length));
    default:
      return Buffer.concat([base.subarray(0, 12), randomBytes(randomInt(0, 300))]);
  }
}

/** A garbage TCP stream: random bytes, a huge length prefix, junk frames, or a stalled half frame. */
async function garbageStream(port: number): Promise<void> {
  const s = net.connect({ host: '127.0.0.1', port });
  s.on('error', () => {});
  s.on('data', () => {});
  await new Promise<void>((resolve) => {
    s.once('connect', () => resolve());
    s.once('close', () => resolve());
  });
  if (s.destroyed) return;
  switch (randomInt(4)) {
    case 0:
      s.write(randomBytes(randomInt(1, 4000)));
      break;
    case 1:
      s.write(Buffer.concat([Buffer.from([0xff, 0xff]), randomBytes(randomInt(0, 100))])); // left to the frame deadline
      break;
    case 2: {
      const frames = Array.from({ length: randomInt(1, 20) }, () => frame(randomBytes(randomInt(0, 200))));
      s.write(Buffer.concat(frames));
      break;
    }
    default:
      s.write(Buffer.from([0x00])); // half a length prefix, then silence
  }
  // Half of them hang up at once, the rest are left for the daemon to reap (frame deadline, idle timeout).
  if (randomInt(2) === 0) s.end();
}

async function validUdp(port: number, i: number): Promise<boolean> {
  const e = EXPECTED[i % EXPECTED.length]!;
  for (let attempt = 0; attempt < 4; attempt++) {
    try {
      const r = await queryUdp({ port, name: e.name, type: e.type, timeoutMs: 1000 });
      return e.check(r);
    } catch {
      // lost in the flood (kernel buffer): retry, as a real client does
    }
  }
  return false;
}

describe('soak', () => {
  it('survives garbage floods while answering every valid query correctly; memory stays bounded', { timeout: 60_000 }, async () => {
    const before = countResources();
    d = await startDaemon({
      upstreams: [{ url: doh.url, ca: pki.caFile }],
      pins: { 'pinned.example.net': ['192.0.2.99'] },
      rateLimit: { qps: 0 },
      tcp: { idleTimeoutMs: 1500, frameTimeoutMs: 800 },
      log: { level: 'warn' },
    });
    const port = d.port;
    // Warm up (upstream connection, cache), then take the memory baseline.
    for (let i = 0; i < EXPECTED.length; i++) expect(await validUdp(port, i)).toBe(true);
    gc();
    const rssBefore = process.memoryUsage().rss;
    const heapBefore = process.memoryUsage().heapUsed;
    const started = performance.now();

    const senders = Array.from({ length: 4 }, () => {
      const s = dgram.createSocket('udp4');
      s.on('message', () => {});
      s.on('error', () => {});
      return s;
    });
    const tcpClient = await TcpDnsClient.connect('127.0.0.1', port);
    let sent = 0;
    let streams = 0;
    let validOk = 0;
    let validBad = 0;
    const tcpChecks: Promise<boolean>[] = [];
    const pendingStreams: Promise<void>[] = [];
    for (let batch = 0; sent < GARBAGE_DATAGRAMS; batch++) {
      for (let i = 0; i < BATCH; i++, sent++) senders[i % senders.length]!.send(garbageDatagram(), port, '127.0.0.1');
      if (streams < GARBAGE_STREAMS && batch % 1 === 0) {
        for (let i = 0; i < 2; i++, streams++) pendingStreams.push(garbageStream(port));
      }
      // Valid queries interleaved: UDP every batch, TCP (pipelined on one connection) every other batch.
      const ok = await validUdp(port, batch);
      if (ok) validOk++;
      else validBad++;
      if (batch % 2 === 0) {
        const e = EXPECTED[batch % EXPECTED.length]!;
        tcpChecks.push(tcpClient.query({ name: e.name, type: e.type, timeoutMs: 5000 }).then(e.check, () => false));
        tcpChecks.push(tcpClient.query({ name: 'big.example.net', type: 'TXT', timeoutMs: 5000 }).then((r) => r.response.answers?.length === 40, () => false));
      }
    }
    await Promise.all(pendingStreams);
    const tcpResults = await Promise.all(tcpChecks);
    const elapsed = performance.now() - started;
    tcpClient.close();
    for (const s of senders) s.close();

    expect(sent).toBe(GARBAGE_DATAGRAMS);
    expect(streams).toBe(GARBAGE_STREAMS);
    expect(validBad).toBe(0);
    expect(validOk).toBe(GARBAGE_DATAGRAMS / BATCH);
    expect(tcpResults.filter((x) => !x)).toHaveLength(0);
    expect(tcpResults.length).toBe(GARBAGE_DATAGRAMS / BATCH);

    // Everything the garbage opened is released by the daemon's own timeouts.
    const tcp = d.daemon.listeners[0]!.tcp;
    await until(() => tcp.connections === 0 && d.daemon.handler.inflight === 0, 10_000, 'connections reaped');
    const c = d.daemon.policy.counters;
    expect(c.dropped.response).toBeGreaterThan(GARBAGE_DATAGRAMS / 10);
    expect(Object.values(c.rejected).reduce((a, b) => a + b, 0)).toBeGreaterThan(GARBAGE_DATAGRAMS / 3);
    expect((tcp.closed['frame-timeout'] ?? 0) + (tcp.closed.idle ?? 0)).toBeGreaterThan(0);

    // Still answering after all that.
    expect(await validUdp(port, 0)).toBe(true);
    gc();
    const rssGrowthMb = (process.memoryUsage().rss - rssBefore) / 2 ** 20;
    const heapGrowthMb = (process.memoryUsage().heapUsed - heapBefore) / 2 ** 20;
    console.log(
      `soak: ${sent} datagrams, ${streams} streams, ${validOk} UDP + ${tcpResults.length} TCP valid queries in ${Math.round(elapsed)} ms; ` +
        `rss growth ${rssGrowthMb.toFixed(1)} MB (bound ${RSS_BOUND_MB}), heap ${heapGrowthMb.toFixed(1)} MB after gc (bound ${HEAP_BOUND_MB}); tcp closed ${JSON.stringify(tcp.closed)}; rejected ${JSON.stringify(c.rejected)}`,
    );
    expect(rssGrowthMb).toBeLessThan(RSS_BOUND_MB);
    expect(heapGrowthMb).toBeLessThan(HEAP_BOUND_MB);

    await d.stop();
    await sleep(50);
    expect(await leaksAfter(before, 5000)).toEqual([]);
    expect(rejections.seen).toEqual([]);
  });
});
