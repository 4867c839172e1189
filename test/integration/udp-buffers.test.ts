/**
 * UDP listener socket buffers and kernel drops (issue 18 item 6): the configured
 * SO_RCVBUF/SO_SNDBUF are asked for and what the kernel granted is known; datagrams the kernel
 * drops for a full receive buffer show in /metrics (the socket's own counter and the
 * namespace's RcvbufErrors). The flood: a deliberately tiny receive buffer, and the event
 * loop held busy while datagrams are sent (so dohd cannot read them).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import dgram from 'node:dgram';
import dnsPacket from 'dns-packet';
import { startDaemon, type RunningDaemon } from '../fixtures/daemon.js';
import { startDohUpstream, stopDohUpstream, type DohServer } from '../fixtures/doh-server.js';
import type { Pki } from '../fixtures/pki.js';
import { parseProm } from '../fixtures/prom.js';
import { queryUdp } from '../fixtures/dns-client.js';
import { until } from '../fixtures/resources.js';
import { validateConfig } from '../../src/config/load.js';

let up: { pki: Pki; doh: DohServer };
let d: RunningDaemon | undefined;

beforeAll(async () => {
  up = await startDohUpstream({ name: 'up' });
});
afterAll(async () => {
  await stopDohUpstream(up);
});
afterEach(async () => {
  await d?.stop();
  d = undefined;
});

const upstream = () => ({ url: up.doh.url, ca: up.pki.caFile, name: 'up' });

async function scrape(r: RunningDaemon) {
  return parseProm(await r.daemon.metrics.render());
}

describe('UDP socket buffers', () => {
  it('defaults to 4 MiB each way (the systemd socket unit asks the same)', () => {
    const c = validateConfig({});
    expect(c.udp).toEqual({ receiveBufferBytes: 4 * 1024 * 1024, sendBufferBytes: 4 * 1024 * 1024 });
  });

  it('asks the kernel for the configured sizes; what it granted is known and logged when short', async () => {
    d = await startDaemon({ upstreams: [upstream()], udp: { receiveBufferBytes: 65_536, sendBufferBytes: 32_768 } });
    const l = d.daemon.listeners[0]!;
    // Linux reports twice what was set.
    expect(l.udp.buffers).toEqual({ receive: 131_072, send: 65_536 });
    expect(d.logs.some((x) => /smaller than configured/.test(x.msg))).toBe(false);
  });

  it('past net.core.rmem_max: the kernel caps it, and a warning says so', async () => {
    d = await startDaemon({ upstreams: [upstream()], udp: { receiveBufferBytes: 1024 * 1024 * 1024, sendBufferBytes: 4096 } });
    const l = d.daemon.listeners[0]!;
    expect(l.udp.buffers!.receive).toBeLessThan(2 * 1024 * 1024 * 1024);
    const warn = d.logs.find((x) => /smaller than configured/.test(x.msg));
    expect(warn).toBeDefined();
    expect((warn!.granted as { receiveBytes: number }).receiveBytes).toBe(l.udp.buffers!.receive / 2);
  });

  it('kernel drops of a flood against a tiny buffer are counted in /metrics; queries after it are answered', async () => {
    d = await startDaemon({ upstreams: [upstream()], udp: { receiveBufferBytes: 1024, sendBufferBytes: 4096 }, rateLimit: { qps: 0 } });
    const before = await scrape(d);
    const listen = `127.0.0.1:${d.port}`;
    expect(before.types.get('dohd_udp_socket_drops_total')).toBe('counter');
    expect(before.value('dohd_udp_socket_drops_total', { listen })).toBe(0);
    const errorsBefore = before.value('dohd_udp_receive_buffer_errors_total');

    const client = dgram.createSocket('udp4');
    await new Promise<void>((r) => client.bind(0, '127.0.0.1', () => r()));
    client.connect(d.port, '127.0.0.1');
    await new Promise<void>((r) => client.once('connect', () => r()));
    const q = dnsPacket.encode({ type: 'query', id: 1, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name: 'example.com', type: 'A', class: 'IN' }] });
    // Sent while this (dohd's) event loop is held: nothing reads the socket, its buffer overflows.
    const SENT = 2000;
    let sent = 0;
    for (let i = 0; i < SENT; i++) client.send(q, () => sent++);
    await until(() => sent === SENT, 5000, 'every datagram sent');
    client.close();

    const after = await scrape(d);
    const drops = after.value('dohd_udp_socket_drops_total', { listen });
    expect(drops).toBeGreaterThan(0);
    expect(drops).toBeLessThan(SENT);
    expect(after.value('dohd_udp_receive_buffer_errors_total') - errorsBefore).toBeGreaterThanOrEqual(drops);
    // The flood still queued in the 1 KB buffer is read first; a query sent meanwhile may be
    // dropped like the flood was: asked again (500 ms apart) until the daemon has caught up.
    const rcode = await until(
      () => queryUdp({ host: d!.host, port: d!.port, name: 'example.com', timeoutMs: 500 }).then((r) => r.response.rcode, () => undefined),
      5000,
      'an answer after the flood',
    );
    expect(rcode).toBe('NOERROR');
  });
});
