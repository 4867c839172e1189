/**
 * The fast lane in the daemon as it is built from a configuration (every stage the config
 * turns on, hosts file included): a cache hit is answered without a promise, over UDP and
 * TCP alike, with the client's ID and question; a pinned or hosts name likewise; a miss
 * through the asynchronous path.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import dnsPacket from 'dns-packet';
import { queryTcp, queryUdp } from '../fixtures/dns-client.js';
import { startDaemon, type RunningDaemon } from '../fixtures/daemon.js';
import { startDohUpstream, stopDohUpstream, type DohServer } from '../fixtures/doh-server.js';
import type { Pki } from '../fixtures/pki.js';
import { useTempDir } from '../fixtures/temp-dir.js';

let pki: Pki;
let doh: DohServer;
let d: RunningDaemon;

const tmp = useTempDir('dohd-fast-');

beforeAll(async () => {
  ({ pki, doh } = await startDohUpstream());
  writeFileSync(join(tmp.path, 'hosts'), '192.0.2.77 printer.lan\n');
  d = await startDaemon({
    upstreams: [{ url: doh.url, ca: pki.caFile }],
    pins: { 'goproxy.cn': ['192.0.2.53'] },
    hosts: { file: join(tmp.path, 'hosts') },
  });
});
afterAll(async () => {
  await d.stop();
  await stopDohUpstream({ pki, doh });
});

const raw = (name: string, id: number, edns = false) =>
  dnsPacket.encode({
    type: 'query',
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ name, type: 'A', class: 'IN' }],
    ...(edns ? { additionals: [{ name: '.', type: 'OPT', udpPayloadSize: 1232 } as never] } : {}),
  });
const decode = (b: unknown) => dnsPacket.decode(b as Buffer) as unknown as { id: number; rcode: string; questions: { name: string }[]; answers: { data: unknown }[]; additionals: { type: string }[] };
const client = { address: '127.0.0.1', port: 40000 };

describe('the fast lane in a configured daemon', () => {
  it('answers cache hits, pins and hosts names synchronously; a miss asynchronously', async () => {
    const miss = d.daemon.handler.answer(raw('example.com', 1), 'udp', client);
    expect(miss).toBeInstanceOf(Promise);
    expect(decode(await miss).answers[0]!.data).toBe('192.0.2.1');
    for (const transport of ['udp', 'tcp'] as const) {
      const hit = d.daemon.handler.answer(raw('Example.COM', 4321, true), transport, client);
      expect(Buffer.isBuffer(hit)).toBe(true);
      const r = decode(hit);
      expect(r.id).toBe(4321);
      expect(r.questions[0]!.name).toBe('Example.COM');
      expect(r.answers[0]!.data).toBe('192.0.2.1');
      expect(r.additionals.map((a) => a.type)).toEqual(['OPT']);
    }
    expect(decode(d.daemon.handler.answer(raw('goproxy.cn', 2), 'udp', client)).answers[0]!.data).toBe('192.0.2.53');
    expect(decode(d.daemon.handler.answer(raw('printer.lan', 3), 'udp', client)).answers[0]!.data).toBe('192.0.2.77');
    expect(doh.requests).toBe(1);
    expect(d.daemon.handler.inflight).toBe(0);
  });

  it('over the sockets, hits answer the same as the miss did', async () => {
    const first = await queryUdp({ port: d.port, name: 'www.example.com' });
    const again = await queryUdp({ port: d.port, name: 'www.example.com', id: 77 });
    const tcp = await queryTcp({ port: d.port, name: 'WWW.example.com', id: 78 });
    expect(again.response.id).toBe(77);
    expect(tcp.response.id).toBe(78);
    for (const r of [first, again, tcp]) expect(r.response.answers[0]!.data).toBe('192.0.2.3');
    expect(tcp.response.questions![0]!.name).toBe('WWW.example.com');
  });
});
