/**
 * The zones dohd answers itself, never sending them upstream: the special-use names of
 * RFC 6761 and its registry, and the locally served reverse zones of RFC 6303 (the zones
 * Unbound serves by default, plus `local.` and Firefox's DoH canary).
 *
 * - `localhost`: A 127.0.0.1 and AAAA ::1 for the name and every name under it; other
 *   types NODATA. Its reverse names (127.0.0.1, ::1) answer PTR localhost.
 * - `nxdomain`: every name below the apex is NXDOMAIN with the zone's SOA in the authority
 *   section (so it is cached as a negative answer); the apex itself has only SOA and NS.
 * - `nodata`: every name answers NOERROR with no records and the zone's SOA.
 * - `always-nxdomain`: NXDOMAIN for the apex too (the Firefox canary must not exist).
 *
 * Data only: the config schema (the names `localZones` accepts) and the local-zones stage
 * (stages/local-zones/, which also builds their SOA) read it. It lives in config/ because the
 * schema needs it and config/ imports nothing above it.
 */
export type LocalZoneKind = 'localhost' | 'nxdomain' | 'nodata' | 'always-nxdomain';

export interface LocalZone {
  /** Lower-case, no trailing dot. */
  readonly zone: string;
  readonly kind: LocalZoneKind;
  /** Why it is local, as `dohd query` shows it: "RFC 6761 localhost". */
  readonly why: string;
}

function z(zone: string, kind: LocalZoneKind, rfc: string, what: string): LocalZone {
  return { zone, kind, why: `${rfc} ${what}` };
}

/** The IPv4 reverse zones of a /8 or of every /16 in [from, to] under `second.first`. */
function v4Range(first: number, from: number, to: number, rfc: string, what: string): LocalZone[] {
  const out: LocalZone[] = [];
  for (let i = from; i <= to; i++) out.push(z(`${i}.${first}.in-addr.arpa`, 'nxdomain', rfc, what));
  return out;
}

const IP6_ZERO_31 = Array.from({ length: 31 }, () => '0').join('.');

export const LOCAL_ZONES: readonly LocalZone[] = [
  // RFC 6761 §6.3: localhost answers loopback addresses itself.
  z('localhost', 'localhost', 'RFC 6761', 'localhost'),
  // RFC 6761 §6.2, §6.4; RFC 7686; RFC 6762 (mDNS names never go to unicast DNS); RFC 8375.
  z('test', 'nxdomain', 'RFC 6761', 'test'),
  z('invalid', 'nxdomain', 'RFC 6761', 'invalid'),
  z('onion', 'nxdomain', 'RFC 7686', 'onion'),
  z('local', 'nxdomain', 'RFC 6762', 'mDNS local'),
  z('home.arpa', 'nxdomain', 'RFC 8375', 'home.arpa'),
  // RFC 9462: DDR answers would tell clients to bypass dohd for another resolver.
  z('resolver.arpa', 'nodata', 'RFC 9462', 'resolver.arpa'),
  // Firefox keeps the system resolver (dohd) when this name does not exist.
  z('use-application-dns.net', 'always-nxdomain', 'Firefox', 'DoH canary'),
  // RFC 6303 §4.1 and the IANA locally-served zones registry: IPv4 reverse zones.
  z('10.in-addr.arpa', 'nxdomain', 'RFC 6303', '10.0.0.0/8'),
  ...v4Range(172, 16, 31, 'RFC 6303', '172.16.0.0/12'),
  z('168.192.in-addr.arpa', 'nxdomain', 'RFC 6303', '192.168.0.0/16'),
  z('254.169.in-addr.arpa', 'nxdomain', 'RFC 6303', '169.254.0.0/16'),
  ...v4Range(100, 64, 127, 'RFC 6598', '100.64.0.0/10'),
  z('127.in-addr.arpa', 'nxdomain', 'RFC 6303', '127.0.0.0/8'),
  z('0.in-addr.arpa', 'nxdomain', 'RFC 6303', '0.0.0.0/8'),
  z('2.0.192.in-addr.arpa', 'nxdomain', 'RFC 5737', '192.0.2.0/24'),
  z('100.51.198.in-addr.arpa', 'nxdomain', 'RFC 5737', '198.51.100.0/24'),
  z('113.0.203.in-addr.arpa', 'nxdomain', 'RFC 5737', '203.0.113.0/24'),
  z('255.255.255.255.in-addr.arpa', 'nxdomain', 'RFC 6303', '255.255.255.255/32'),
  // IPv6 reverse zones.
  z(`1.${IP6_ZERO_31}.ip6.arpa`, 'nxdomain', 'RFC 6303', '::1'),
  z(`0.${IP6_ZERO_31}.ip6.arpa`, 'nxdomain', 'RFC 6303', '::'),
  z('d.f.ip6.arpa', 'nxdomain', 'RFC 6303', 'fd00::/8'),
  z('c.f.ip6.arpa', 'nxdomain', 'RFC 6303', 'fc00::/8'),
  z('8.e.f.ip6.arpa', 'nxdomain', 'RFC 6303', 'fe80::/10'),
  z('9.e.f.ip6.arpa', 'nxdomain', 'RFC 6303', 'fe80::/10'),
  z('a.e.f.ip6.arpa', 'nxdomain', 'RFC 6303', 'fe80::/10'),
  z('b.e.f.ip6.arpa', 'nxdomain', 'RFC 6303', 'fe80::/10'),
  z('8.b.d.0.1.0.0.2.ip6.arpa', 'nxdomain', 'RFC 6303', '2001:db8::/32'),
];

/** The names that answer PTR localhost (RFC 6761 §6.3; Unbound does the same). */
export const LOCALHOST_PTR: readonly string[] = ['1.0.0.127.in-addr.arpa', `1.${IP6_ZERO_31}.ip6.arpa`];

/** Names `localZones` accepts as keys: every built-in zone and every name above one (`in-addr.arpa` turns off them all). */
export function isLocalZoneKey(name: string): boolean {
  const n = name.replace(/\.$/, '').toLowerCase();
  return LOCAL_ZONES.some((l) => l.zone === n || l.zone.endsWith(`.${n}`));
}
