/**
 * Built-in local zones (RFC 6761, 6303, 7686, 8375, 9462, the Firefox canary): answered by
 * dohd itself, with no request reaching the DoH upstream (counted there); turned off by
 * `localZones`; pins, hosts and `forward` rules win.
 */
import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { queryTcp, queryUdp } from '../fixtures/dns-client.js';
import type { RunningDaemon } from '../fixtures/daemon.js';
import { useDohUpstream } from '../fixtures/doh-pair.js';
import { startDohServer } from '../fixtures/doh-server.js';
import { Zone } from '../fixtures/zone.js';
import { validateConfig } from '../../src/config/load.js';
import { LOCAL_ZONES } from '../../src/stages/local-zones/zones.js';

const up = useDohUpstream();
let d: RunningDaemon | undefined;

const upstreams = () => [{ url: up.doh.url, ca: up.pki.caFile }];

async function ask(name: string, type = 'A') {
  return (await queryUdp({ port: d!.port, name, type })).response;
}

/** A name strictly inside the zone, and the rcode there. */
function probeOf(zone: string, kind: string): { name: string; type: string; rcode: string } {
  if (kind === 'localhost') return { name: `app.${zone}`, type: 'MX', rcode: 'NOERROR' };
  if (kind === 'nodata') return { name: `_dns.${zone}`, type: 'SVCB', rcode: 'NOERROR' };
  return { name: `x.${zone}`, type: zone.endsWith('.arpa') ? 'PTR' : 'A', rcode: 'NXDOMAIN' };
}

describe('local zones', () => {
  it('answers every built-in zone itself, with the zone SOA in negative answers, and sends none upstream', async () => {
    d = await up.start({ upstreams: upstreams() });
    for (const z of LOCAL_ZONES) {
      const p = probeOf(z.zone, z.kind);
      const r = await ask(p.name, p.type);
      expect(r.rcode, `${p.name} ${p.type}`).toBe(p.rcode);
      expect(r.answers, p.name).toEqual([]);
      expect(r.authorities.map((a) => [a.name, a.type, a.data.mname, a.data.rname, a.data.minimum]), p.name).toEqual([
        [z.zone, 'SOA', 'localhost', 'nobody.invalid', 10800],
      ]);
      expect((r.flags ?? 0) & 0x0400, `${p.name}: AA`).toBe(0x0400);
    }
    expect(up.doh.requests).toBe(0);
    // Each zone was counted once, under its own name.
    const answered = d.daemon.localZones.answered;
    expect(answered.size).toBe(LOCAL_ZONES.length);
    expect([...answered.values()].every((n) => n === 1)).toBe(true);
    // And a name outside them all goes upstream.
    expect((await ask('example.com')).answers.map((a) => a.data)).toEqual(['192.0.2.1']);
    expect(up.doh.requests).toBe(1);
  });

  it('localhost: A 127.0.0.1 and AAAA ::1 for it and every name under it (any letter case), NODATA otherwise; PTR localhost', async () => {
    d = await up.start({ upstreams: upstreams() });
    for (const name of ['localhost', 'foo.localhost', 'A.B.LocalHost']) {
      const a = await ask(name, 'A');
      expect(a.rcode).toBe('NOERROR');
      expect(a.answers.map((x) => [x.name, x.type, x.data, x.ttl])).toEqual([[name, 'A', '127.0.0.1', 10800]]);
      expect((await ask(name, 'AAAA')).answers.map((x) => x.data)).toEqual(['::1']);
    }
    const txt = await ask('localhost', 'TXT');
    expect([txt.rcode, txt.answers.length, txt.authorities[0]?.type]).toEqual(['NOERROR', 0, 'SOA']);
    expect((await ask('1.0.0.127.in-addr.arpa', 'PTR')).answers.map((x) => x.data)).toEqual(['localhost']);
    expect((await ask(`1.${'0.'.repeat(31)}ip6.arpa`, 'PTR')).answers.map((x) => x.data)).toEqual(['localhost']);
    expect((await ask('2.0.0.127.in-addr.arpa', 'PTR')).rcode).toBe('NXDOMAIN');
    // The apex of a local zone holds its SOA and NS; other types there are NODATA, not NXDOMAIN.
    expect((await ask('10.in-addr.arpa', 'SOA')).answers.map((x) => x.type)).toEqual(['SOA']);
    expect((await ask('home.arpa', 'NS')).answers.map((x) => x.data)).toEqual(['localhost']);
    expect((await ask('invalid', 'A')).rcode).toBe('NOERROR');
    // Over TCP too.
    const tcp = await queryTcp({ port: d.port, name: 'localhost', type: 'A' });
    expect(tcp.response.answers.map((x) => x.data)).toEqual(['127.0.0.1']);
    expect(up.doh.requests).toBe(0);
  });

  it('the names of the issue: private reverse lookups, mDNS, home.arpa, DDR and the Firefox canary stay local', async () => {
    d = await up.start({ upstreams: upstreams() });
    const want: [string, string, string][] = [
      ['invalid', 'A', 'NOERROR'],
      ['printer.local', 'A', 'NXDOMAIN'],
      ['router.home.arpa', 'A', 'NXDOMAIN'],
      ['5.1.168.192.in-addr.arpa', 'PTR', 'NXDOMAIN'],
      ['3.2.1.10.in-addr.arpa', 'PTR', 'NXDOMAIN'],
      ['1.0.20.172.in-addr.arpa', 'PTR', 'NXDOMAIN'],
      ['1.0.100.100.in-addr.arpa', 'PTR', 'NXDOMAIN'],
      ['1.2.0.192.in-addr.arpa', 'PTR', 'NXDOMAIN'],
      ['resolver.arpa', 'SVCB', 'NOERROR'],
      ['_dns.resolver.arpa', 'SVCB', 'NOERROR'],
      ['use-application-dns.net', 'A', 'NXDOMAIN'],
      ['use-application-dns.net', 'AAAA', 'NXDOMAIN'],
      ['secret.onion', 'A', 'NXDOMAIN'],
      ['doh.test', 'A', 'NXDOMAIN'],
    ];
    for (const [name, type, rcode] of want) {
      const r = await ask(name, type);
      expect([name, type, r.rcode, r.answers.length]).toEqual([name, type, rcode, 0]);
    }
    expect(up.doh.requests).toBe(0);
    // Neighbours of the local ranges are not local: 172.32/16 and 100.128/16 go upstream.
    await ask('1.0.32.172.in-addr.arpa', 'PTR');
    await ask('1.0.128.100.in-addr.arpa', 'PTR');
    await ask('notlocal', 'A');
    await ask('example.net', 'A');
    expect(up.doh.requests).toBe(4);
  });

  it('localZones turns zones off (one zone, every zone under a name, or all), and they go upstream again', async () => {
    d = await up.start({ upstreams: upstreams(), localZones: { local: false, 'in-addr.arpa': false } });
    await ask('printer.local');
    await ask('5.1.168.192.in-addr.arpa', 'PTR');
    await ask('1.0.20.172.in-addr.arpa', 'PTR');
    expect(up.doh.requests).toBe(3);
    expect((await ask('localhost')).answers.map((x) => x.data)).toEqual(['127.0.0.1']);
    expect((await ask('x.8.e.f.ip6.arpa', 'PTR')).rcode).toBe('NXDOMAIN');
    expect(up.doh.requests).toBe(3);
    await d.stop();
    d = await up.start({ upstreams: upstreams(), localZones: false });
    up.doh.reset();
    await ask('localhost');
    await ask('use-application-dns.net');
    expect(up.doh.requests).toBe(2);
  });

  it('a forward rule wins: home.arpa and its reverse zone go to the LAN group', async () => {
    const lanZone = new Zone([
      { name: 'router.home.arpa', type: 'A', data: '192.168.1.1' },
      { name: '1.1.168.192.in-addr.arpa', type: 'PTR', data: 'router.home.arpa' },
    ]);
    const lan = await startDohServer({ pki: up.pki, zone: lanZone, name: 'lan' });
    try {
      d = await up.start({
        upstreams: upstreams(),
        groups: { lan: { upstreams: [{ url: lan.url, ca: up.pki.caFile }] } },
        forward: { 'home.arpa': 'lan', '168.192.in-addr.arpa': 'lan' },
      });
      expect((await ask('router.home.arpa')).answers.map((x) => x.data)).toEqual(['192.168.1.1']);
      expect((await ask('1.1.168.192.in-addr.arpa', 'PTR')).answers.map((x) => x.data)).toEqual(['router.home.arpa']);
      expect(lan.requests).toBe(2);
      // Other local zones stay local.
      expect((await ask('5.0.0.10.in-addr.arpa', 'PTR')).rcode).toBe('NXDOMAIN');
      expect(lan.requests + up.doh.requests).toBe(2);
    } finally {
      await lan.close();
    }
  });

  it('pins and the hosts file win over local zones', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dohd-local-zones-'));
    try {
      const file = join(dir, 'hosts');
      writeFileSync(file, '10.0.0.7 nas.home.arpa\n');
      d = await up.start({ upstreams: upstreams(), hosts: { file }, pins: { 'printer.local': ['192.0.2.80'] } });
      expect((await ask('nas.home.arpa')).answers.map((x) => x.data)).toEqual(['10.0.0.7']);
      expect((await ask('7.0.0.10.in-addr.arpa', 'PTR')).answers.map((x) => x.data)).toEqual(['nas.home.arpa']);
      expect((await ask('printer.local')).answers.map((x) => x.data)).toEqual(['192.0.2.80']);
      expect((await ask('other.home.arpa')).rcode).toBe('NXDOMAIN');
      expect(up.doh.requests).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('counts local answers by zone in the metrics', async () => {
    d = await up.start({ upstreams: upstreams(), admin: { listen: '127.0.0.1:0' } });
    await ask('localhost');
    await ask('foo.localhost', 'AAAA');
    await ask('5.1.168.192.in-addr.arpa', 'PTR');
    const port = Number(d.daemon.admin!.bound!.split(':').pop());
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(text).toMatch(/^dohd_local_answers_total\{zone="localhost"\} 2$/m);
    expect(text).toMatch(/^dohd_local_answers_total\{zone="168\.192\.in-addr\.arpa"\} 1$/m);
    expect(text).toMatch(/^dohd_queries_total\{.*source="local".*\} \d+$/m);
  });

  it('localZones changes on reload (SIGHUP), without a restart', async () => {
    d = await up.start({ upstreams: upstreams() });
    expect((await ask('printer.local')).rcode).toBe('NXDOMAIN');
    expect(up.doh.requests).toBe(0);
    const r = d.daemon.reload(validateConfig({ ...d.daemon.config, localZones: { local: false } }));
    expect(r).toEqual({ ok: true, live: ['localZones'], restart: [] });
    await ask('printer.local');
    expect(up.doh.requests).toBe(1);
    expect((await ask('localhost')).answers.map((x) => x.data)).toEqual(['127.0.0.1']);
    expect(up.doh.requests).toBe(1);
  });

  it('rejects a localZones key that names no built-in zone', () => {
    expect(() => validateConfig({ localZones: { 'example.com': false } })).toThrow(/is not a built-in local zone/);
    expect(validateConfig({}).localZones).toEqual({});
    expect(validateConfig({ localZones: { 'arpa.': false } }).localZones).toEqual({ 'arpa.': false });
  });
});
