/**
 * DNS over TCP per RFC 7766, and what slow or hostile TCP clients can (not) hold:
 * pipelining with out-of-order answers, partial reads and writes, idle timeout, the
 * connection cap, the per-connection in-flight cap, frame deadline, stalled readers.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import dnsPacket from 'dns-packet';
import { buildQuery, queryUdp, TcpDnsClient } from '../fixtures/dns-client.js';
import { startDaemon, type RunningDaemon } from '../fixtures/daemon.js';
import { startDohUpstream, stopDohUpstream, type DohServer } from '../fixtures/doh-server.js';
import type { Pki } from '../fixtures/pki.js';
import { until } from '../fixtures/resources.js';
import { frame, frameReader } from '../fixtures/tcp-frames.js';
import type { ConfigInput } from '../../src/config/schema.js';

let pki: Pki;
let doh: DohServer;
let d: RunningDaemon | undefined;
const sockets = new Set<net.Socket>();

beforeAll(async () => {
  ({ pki, doh } = await startDohUpstream());
});
afterAll(() => stopDohUpstream({ pki, doh }));
afterEach(async () => {
  for (const s of sockets) s.destroy();
  sockets.clear();
  await d?.stop();
  d = undefined;
  doh.reset();
});

async function start(extra: ConfigInput = {}): Promise<RunningDaemon> {
  d = await startDaemon({ upstreams: [{ url: doh.url, ca: pki.caFile }], pins: { 'pinned.example.net': ['192.0.2.99'] }, ...extra });
  return d;
}

/** A raw TCP connection collecting the DNS frames it receives. */
async function rawConnection(port: number) {
  const socket = net.connect({ host: '127.0.0.1', port });
  sockets.add(socket);
  socket.setNoDelay(true);
  socket.on('error', () => {});
  await new Promise((r) => socket.once('connect', r));
  const frames: dnsPacket.DecodedPacket[] = [];
  let closedAt = 0;
  const opened = performance.now();
  socket.on(
    'data',
    frameReader((m) => {
      frames.push(dnsPacket.decode(m));
    }),
  );
  const closed = new Promise<number>((resolve) =>
    socket.once('close', () => {
      closedAt = performance.now();
      resolve(closedAt - opened);
    }),
  );
  return { socket, frames, closed, get isClosed() { return closedAt > 0; } };
}

describe('RFC 7766 behaviour', () => {
  it('pipelined queries are answered as they complete, out of order', async () => {
    await start();
    doh.delayMs = 300;
    const c = await TcpDnsClient.connect('127.0.0.1', d!.port);
    try {
      const order: string[] = [];
      const slow = c.query({ name: 'example.com' }).then((r) => order.push(`slow:${String(r.response.answers[0]!.data)}`));
      await sleep(20);
      const fast = c.query({ name: 'pinned.example.net' }).then((r) => order.push(`fast:${String(r.response.answers[0]!.data)}`));
      await Promise.all([slow, fast]);
      expect(order).toEqual(['fast:192.0.2.99', 'slow:192.0.2.1']);
    } finally {
      c.close();
    }
  });

  it('reads frames split anywhere (even inside the length) and several frames in one segment', async () => {
    await start();
    const c = await rawConnection(d!.port);
    const q1 = frame(buildQuery({ name: 'pinned.example.net', id: 1 }).wire);
    const q2 = frame(buildQuery({ name: 'pinned.example.net', id: 2 }).wire);
    const q3 = frame(buildQuery({ name: 'pinned.example.net', id: 3 }).wire);
    // q1 byte by byte, then q2 and q3 in one write.
    for (const b of q1) {
      c.socket.write(Buffer.from([b]));
      await sleep(2);
    }
    c.socket.write(Buffer.concat([q2, q3]));
    await until(() => c.frames.length === 3, 3000, 'three answers');
    expect(c.frames.map((f) => f.id).sort()).toEqual([1, 2, 3]);
    expect(c.frames.every((f) => (f.answers![0] as { data: string }).data === '192.0.2.99')).toBe(true);
    // Zero-length frames are skipped; the connection stays usable.
    c.socket.write(Buffer.concat([Buffer.from([0, 0]), frame(buildQuery({ name: 'pinned.example.net', id: 4 }).wire)]));
    await until(() => c.frames.length === 4, 3000, 'fourth answer');
    expect(c.isClosed).toBe(false);
  });

  it('partial writes: a client that stops reading for a while still gets every answer, intact', async () => {
    await start({ tcp: { maxBufferedBytes: 65_536 } });
    await queryUdp({ port: d!.port, name: 'big.example.net', type: 'TXT', edns: { udpSize: 4096 } }); // warm the cache
    const c = await rawConnection(d!.port);
    c.socket.pause();
    const n = 600; // ~1.7 MB of answers
    const queries: Buffer[] = [];
    for (let i = 0; i < n; i++) queries.push(frame(buildQuery({ name: 'big.example.net', type: 'TXT', id: i }).wire));
    c.socket.write(Buffer.concat(queries));
    // The client's buffer is full: from here dohd's writes back up until it reads again.
    await until(() => c.socket.readableLength >= c.socket.readableHighWaterMark, 5000, 'client buffer full');
    await sleep(50);
    c.socket.resume();
    await until(() => c.frames.length === n, 10_000, `${n} answers`);
    expect(new Set(c.frames.map((f) => f.id)).size).toBe(n);
    expect(c.frames.every((f) => f.answers!.length === 40)).toBe(true);
  });

  it('closes an idle connection after idleTimeoutMs, but not while a query is in flight', async () => {
    await start({ tcp: { idleTimeoutMs: 300 } });
    const idle = await rawConnection(d!.port);
    const ms = await idle.closed;
    expect(ms).toBeGreaterThanOrEqual(250);
    expect(ms).toBeLessThan(3000);
    await until(() => d!.daemon.listeners[0]!.tcp.closed.idle === 1, 2000, 'idle close counted');
    // An answer slower than the idle timeout still arrives.
    doh.delayMs = 700;
    const c = await TcpDnsClient.connect('127.0.0.1', d!.port);
    try {
      const r = await c.query({ name: 'example.com', timeoutMs: 3000 });
      expect(r.response.answers[0]!.data).toBe('192.0.2.1');
    } finally {
      c.close();
    }
  });

  it('caps open connections; the ones over the cap are closed at once, and counted', async () => {
    await start({ tcp: { maxConnections: 3 } });
    const open = await Promise.all([1, 2, 3].map(() => rawConnection(d!.port)));
    await until(() => d!.daemon.listeners[0]!.tcp.connections === 3, 2000, 'three connections');
    const extra = await rawConnection(d!.port);
    await extra.closed;
    expect(d!.daemon.listeners[0]!.tcp.rejectedConnections).toBe(1);
    open[0]!.socket.destroy();
    await until(() => d!.daemon.listeners[0]!.tcp.connections === 2, 2000, 'one closed');
    const c = await TcpDnsClient.connect('127.0.0.1', d!.port);
    expect((await c.query({ name: 'pinned.example.net' })).response.rcode).toBe('NOERROR');
    c.close();
  });

  it('runs at most maxInflightPerConnection queries of one connection at once', async () => {
    await start({ tcp: { maxInflightPerConnection: 2 } });
    await queryUdp({ port: d!.port, name: 'example.com' }); // the upstream connection is up
    doh.delayMs = 200;
    // As each query reaches the upstream: how many of the connection's queries dohd is running.
    let most = 0;
    doh.onQuery = () => {
      most = Math.max(most, d!.daemon.handler.inflight);
    };
    const c = await TcpDnsClient.connect('127.0.0.1', d!.port);
    try {
      const all = Promise.allSettled(['a', 'b', 'c', 'd', 'e'].map((n) => c.query({ name: `${n}.example.com`, timeoutMs: 5000 })));
      const rs = await all;
      expect(most).toBe(2);
      expect(rs.map((r) => (r.status === 'fulfilled' ? r.value.response.rcode : String(r.reason)))).toEqual(['NXDOMAIN', 'NXDOMAIN', 'NXDOMAIN', 'NXDOMAIN', 'NXDOMAIN']);
      expect(doh.requests).toBe(1 + 5);
    } finally {
      doh.onQuery = undefined;
      c.close();
    }
  });

  it('half-close: queries sent before the client\'s FIN are answered, then the connection ends', async () => {
    await start();
    const c = await rawConnection(d!.port);
    c.socket.end(Buffer.concat([1, 2, 3].map((id) => frame(buildQuery({ name: id === 2 ? 'example.com' : 'pinned.example.net', id }).wire))));
    await c.closed;
    expect(c.frames.map((f) => f.id).sort()).toEqual([1, 2, 3]);
    await until(() => d!.daemon.listeners[0]!.tcp.closed.done === 1, 2000, 'close counted');
  });
});

describe('slow and stalled clients cannot hold resources', () => {
  it('a client trickling one query byte by byte is closed at the frame deadline', async () => {
    await start({ tcp: { frameTimeoutMs: 400, idleTimeoutMs: 10_000 } });
    const c = await rawConnection(d!.port);
    const q = frame(buildQuery({ name: 'pinned.example.net', id: 5 }).wire);
    let sent = 0;
    const trickle = setInterval(() => {
      if (c.isClosed || sent >= q.length) return clearInterval(trickle);
      c.socket.write(q.subarray(sent, ++sent));
    }, 60);
    const ms = await c.closed;
    clearInterval(trickle);
    expect(sent).toBeLessThan(q.length);
    expect(ms).toBeGreaterThanOrEqual(350);
    expect(ms).toBeLessThan(3000);
    expect(c.frames).toEqual([]);
    await until(() => d!.daemon.listeners[0]!.tcp.closed['frame-timeout'] === 1, 2000, 'frame timeout counted');
  });

  it('a length prefix promising more than ever comes is closed at the frame deadline', async () => {
    await start({ tcp: { frameTimeoutMs: 300 } });
    const c = await rawConnection(d!.port);
    c.socket.write(Buffer.from([0xff, 0xff, 1, 2, 3]));
    await c.closed;
    await until(() => d!.daemon.listeners[0]!.tcp.closed['frame-timeout'] === 1, 2000, 'frame timeout counted');
  });

  it('a client that never reads its answers is closed once its unsent answers back up', async () => {
    await start({ tcp: { maxBufferedBytes: 65_536, idleTimeoutMs: 500 } });
    await queryUdp({ port: d!.port, name: 'big.example.net', type: 'TXT', edns: { udpSize: 4096 } });
    const c = await rawConnection(d!.port);
    c.socket.pause(); // never reads
    const one = frame(buildQuery({ name: 'big.example.net', type: 'TXT', id: 1 }).wire);
    // ~30 MB of answers asked for: far more than the socket buffers of both sides hold.
    const burst = Buffer.concat(Array.from({ length: 1000 }, () => one));
    for (let i = 0; i < 10 && !c.isClosed; i++) {
      c.socket.write(burst);
      await sleep(50);
    }
    const tcp = d!.daemon.listeners[0]!.tcp;
    await until(() => (tcp.closed.stalled ?? 0) + (tcp.closed.idle ?? 0) === 1, 8000, 'connection closed by dohd');
    // Closed with a reset: the client learns it as soon as it uses the connection again.
    c.socket.resume();
    if (!c.isClosed) c.socket.write(one);
    const ms = await Promise.race([c.closed, sleep(8000).then(() => -1)]);
    expect(ms).toBeGreaterThan(0);
    await until(() => tcp.connections === 0 && d!.daemon.handler.inflight === 0, 3000, 'connection released');
    // The daemon is fine.
    expect((await queryUdp({ port: d!.port, name: 'pinned.example.net' })).response.rcode).toBe('NOERROR');
  });

  it('stopping the daemon closes open connections', async () => {
    await start();
    const c = await rawConnection(d!.port);
    c.socket.write(Buffer.from([0, 40, 1])); // a frame in progress
    await until(() => d!.daemon.listeners[0]!.tcp.connections === 1, 2000, 'connection seen');
    const tcp = d!.daemon.listeners[0]!.tcp;
    await d!.stop();
    await c.closed;
    expect(tcp.closed.shutdown).toBe(1);
  });
});
