/**
 * The local-zones stage on its own: which names it takes, and that a name it does not take
 * costs no string (the fast lane's cache hits never build the lower-cased name).
 */
import { describe, expect, it } from 'vitest';
import dnsPacket from 'dns-packet';
import { parseQueryFast, WireQuery } from '../../../../src/dns/fast-query.js';
import { decodeQuery, type Query } from '../../../../src/dns/message.js';
import { PASS, type Context, type Result } from '../../../../src/pipeline/types.js';
import { LocalZonesStage } from '../../../../src/stages/local-zones/stage.js';
import { LOCAL_ZONES, LOCALHOST_PTR, reverseZones } from '../../../../src/config/local-zones.js';

function wire(name: string, type = 'A'): Buffer {
  return dnsPacket.encode({ type: 'query', id: 1, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type: type as dnsPacket.RecordType, class: 'IN' }] });
}
const ctx = (query: Query): Context => ({ query, transport: 'udp', client: { address: '127.0.0.1', port: 1 }, signal: new AbortController().signal, received: 0 });

describe('local-zones stage', () => {
  const stage = new LocalZonesStage({});

  it('passes names outside every local zone without building their lower-cased name', () => {
    for (const name of ['example.com', 'Example.NET', 'a.b.example.org', 'localhostx', 'xlocalhost', 'fuse-application-dns.net', 'arpa.example.com', 'netlocal', 'test.example.com', 'com', '']) {
      const q = parseQueryFast(wire(name));
      expect(q, name).toBeInstanceOf(WireQuery);
      expect(stage.decide(ctx(q!)), name).toBe(PASS);
      expect((q as unknown as { lower?: string }).lower, name).toBeUndefined();
    }
  });

  it('takes every name inside a zone, fast-lane or fully decoded, in any letter case', () => {
    for (const name of ['localhost', 'A.LocalHost', 'x.test', 'y.INVALID', 'z.local', 'h.home.arpa', '5.1.168.192.in-addr.arpa', 'use-application-dns.net', 'a.Use-Application-DNS.net']) {
      for (const q of [parseQueryFast(wire(name))!, (decodeQuery(wire(name)) as { query: Query }).query]) {
        const r = stage.decide(ctx(q)) as Result;
        expect(r, name).not.toBe(PASS);
        expect(r.source).toBe('local');
      }
    }
    // A neighbour of a reverse zone is not in it.
    expect(stage.decide(ctx(parseQueryFast(wire('1.0.32.172.in-addr.arpa', 'PTR'))!))).toBe(PASS);
    // Only class IN.
    const ch = dnsPacket.encode({ type: 'query', id: 1, questions: [{ name: 'localhost', type: 'A', class: 'CH' }] });
    expect(stage.decide(ctx(parseQueryFast(ch)!))).toBe(PASS);
  });

  it('a forward rule covering the name wins; localZones: false takes nothing', () => {
    const forwarded = new LocalZonesStage({}, (lname) => lname.endsWith('home.arpa'));
    expect(forwarded.decide(ctx(parseQueryFast(wire('router.home.arpa'))!))).toBe(PASS);
    expect(forwarded.decide(ctx(parseQueryFast(wire('printer.local'))!))).not.toBe(PASS);
    const off = new LocalZonesStage(false);
    expect(off.enabled).toEqual([]);
    expect(off.decide(ctx(parseQueryFast(wire('localhost'))!))).toBe(PASS);
  });
});

describe('reverse zones of a prefix (RFC 6303 §3)', () => {
  it.each([
    ['10.0.0.0/8', ['10.in-addr.arpa']],
    ['192.0.2.0/24', ['2.0.192.in-addr.arpa']],
    ['255.255.255.255/32', ['255.255.255.255.in-addr.arpa']],
    ['2001:db8::/32', ['8.b.d.0.1.0.0.2.ip6.arpa']],
    ['fe80::/10', ['8.e.f.ip6.arpa', '9.e.f.ip6.arpa', 'a.e.f.ip6.arpa', 'b.e.f.ip6.arpa']],
    ['fc00::/7', ['c.f.ip6.arpa', 'd.f.ip6.arpa']],
    ['::1/128', [`1.${'0.'.repeat(31)}ip6.arpa`]],
  ])('%s', (prefix, zones) => {
    expect(reverseZones(prefix)).toEqual(zones);
  });

  it('a prefix that ends inside an octet is every zone one label longer', () => {
    const z = reverseZones('172.16.0.0/12');
    expect(z).toHaveLength(16);
    expect(z[0]).toBe('16.172.in-addr.arpa');
    expect(z[15]).toBe('31.172.in-addr.arpa');
    expect(reverseZones('100.64.0.0/10')).toEqual(Array.from({ length: 64 }, (_, i) => `${64 + i}.100.in-addr.arpa`));
  });

  it('the table holds each zone once, with its RFC and prefix, and PTR localhost for both loopbacks', () => {
    const names = LOCAL_ZONES.map((l) => l.zone);
    expect(new Set(names).size).toBe(names.length);
    expect(LOCAL_ZONES.find((l) => l.zone === '20.172.in-addr.arpa')).toEqual({ zone: '20.172.in-addr.arpa', kind: 'nxdomain', why: 'RFC 6303 172.16.0.0/12' });
    expect(LOCAL_ZONES.find((l) => l.zone === '99.100.in-addr.arpa')?.why).toBe('RFC 6598 100.64.0.0/10');
    expect(LOCALHOST_PTR).toEqual(['1.0.0.127.in-addr.arpa', `1.${'0.'.repeat(31)}ip6.arpa`]);
  });
});
