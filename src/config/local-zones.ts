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
import ipaddr from 'ipaddr.js';

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

/**
 * The reverse zones (in-addr.arpa, ip6.arpa) that cover an address prefix, as RFC 6303 §3
 * lists them: a zone per label, so a prefix that ends inside an octet (IPv4) or a nibble
 * (IPv6) is every zone one label longer: 172.16.0.0/12 is 16.172 to 31.172, fe80::/10 is
 * 8.e.f to b.e.f.
 */
export function reverseZones(prefix: string): string[] {
  const [addr, bits] = ipaddr.parseCIDR(prefix);
  const v4 = addr.kind() === 'ipv4';
  const width = v4 ? 8 : 4;
  const digits = addr.toByteArray().flatMap((b) => (v4 ? [b] : [b >> 4, b & 15]));
  const whole = Math.floor(bits / width);
  const spare = bits % width;
  const label = (d: number): string => (v4 ? String(d) : d.toString(16));
  const zone = (ds: number[]): string => [...ds].reverse().map(label).join('.') + (v4 ? '.in-addr.arpa' : '.ip6.arpa');
  if (spare === 0) return [zone(digits.slice(0, whole))];
  const first = digits[whole]! & ~((1 << (width - spare)) - 1);
  return Array.from({ length: 1 << (width - spare) }, (_, i) => zone([...digits.slice(0, whole), first + i]));
}

/** The `nxdomain` reverse zones of these prefixes, each explained by its RFC and prefix. */
function reverse(rfc: string, ...prefixes: string[]): LocalZone[] {
  return prefixes.flatMap((p) => reverseZones(p).map((zone) => z(zone, 'nxdomain', rfc, p)));
}

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
  // RFC 6303 §4 and the IANA locally-served zones registry: the reverse zones of private,
  // shared (RFC 6598), loopback, "this network", documentation (RFC 5737) and link-local space.
  ...reverse('RFC 6303', '10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '169.254.0.0/16'),
  ...reverse('RFC 6598', '100.64.0.0/10'),
  ...reverse('RFC 6303', '127.0.0.0/8', '0.0.0.0/8'),
  ...reverse('RFC 5737', '192.0.2.0/24', '198.51.100.0/24', '203.0.113.0/24'),
  ...reverse('RFC 6303', '255.255.255.255/32', '::1/128', '::/128', 'fd00::/8', 'fc00::/8', 'fe80::/10', '2001:db8::/32'),
];

/** The names that answer PTR localhost (RFC 6761 §6.3; Unbound does the same). */
export const LOCALHOST_PTR: readonly string[] = [...reverseZones('127.0.0.1/32'), ...reverseZones('::1/128')];

/** Names `localZones` accepts as keys: every built-in zone and every name above one (`in-addr.arpa` turns off them all). */
export function isLocalZoneKey(name: string): boolean {
  const n = name.replace(/\.$/, '').toLowerCase();
  return LOCAL_ZONES.some((l) => l.zone === n || l.zone.endsWith(`.${n}`));
}
