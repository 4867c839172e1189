/**
 * The static half of the loop guard: an upstream, forward rule or bootstrap address that
 * is one of dohd's own listening addresses (same IP and port) would send dohd's queries
 * back to dohd. A wildcard listener (0.0.0.0, ::) covers loopback and every address of
 * the machine's interfaces.
 */
import { networkInterfaces } from 'node:os';
import ipaddr from 'ipaddr.js';
import { formatHostPort, parseHostPort, type HostPort } from './address.js';

/** Somewhere dohd sends queries: `key` names it for the operator (e.g. `upstreams[0].url`). */
export interface QueryTarget {
  key: string;
  /** What the operator wrote (a URL, an address). */
  text: string;
  host: string;
  port: number;
}

/** Normalized text of an IP (IPv4-mapped IPv6 as IPv4), or null if `host` is not an IP. */
function normalize(host: string): { text: string; kind: 'ipv4' | 'ipv6'; ip: ipaddr.IPv4 | ipaddr.IPv6 } | null {
  const h = host.replace(/^\[|\]$/g, '').replace(/%.*$/, '');
  if (!ipaddr.isValid(h)) return null;
  const ip = ipaddr.process(h);
  return { text: ip.toNormalizedString(), kind: ip.kind(), ip };
}

/** Addresses of this machine's interfaces, normalized. */
export function localAddresses(): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      const n = normalize(a.address);
      if (n) out.add(n.text);
    }
  }
  return out;
}

function isThisMachine(target: NonNullable<ReturnType<typeof normalize>>, local: Iterable<string>): boolean {
  const range = target.ip.range();
  if (range === 'loopback' || range === 'unspecified') return true;
  for (const a of local) if (normalize(a)?.text === target.text) return true;
  return false;
}

/** Does a connection to `target` reach `listener`? */
export function reaches(listener: HostPort, target: { host: string; port: number }, local: Iterable<string> = localAddresses()): boolean {
  if (listener.port === 0 || listener.port !== target.port) return false;
  const l = normalize(listener.host);
  const t = normalize(target.host);
  if (!l || !t || l.kind !== t.kind) return false;
  if (l.ip.range() === 'unspecified') return isThisMachine(t, local);
  // Connecting to 0.0.0.0 or :: reaches the loopback address.
  if (t.ip.range() === 'unspecified') return l.ip.range() === 'loopback';
  return l.text === t.text;
}

/** One line per target that points at one of dohd's own listeners. */
export function selfTargetProblems(listeners: HostPort[], targets: QueryTarget[], local: Iterable<string> = localAddresses()): string[] {
  const problems: string[] = [];
  for (const t of targets) {
    const l = listeners.find((x) => reaches(x, t, local));
    if (l) problems.push(`${t.key}: ${t.text} is dohd's own listening address ${formatHostPort(l)}: queries would come straight back (a forwarding loop)`);
  }
  return problems;
}

/** The addresses dohd's DoH upstreams are reached at: the URL's IP host, and every bootstrap IP, on the URL's port. */
export function upstreamTargets(
  upstreams: readonly { url: string; bootstrap?: string[] | undefined; alternates?: { url: string; bootstrap?: string[] | undefined }[] | undefined }[],
  prefix = 'upstreams',
): QueryTarget[] {
  const out: QueryTarget[] = [];
  upstreams.forEach((u, i) => {
    if (u.alternates) out.push(...upstreamTargets(u.alternates, `${prefix}[${i}].alternates`));
    let url: URL;
    try {
      url = new URL(u.url);
    } catch {
      return;
    }
    const port = url.port ? Number(url.port) : url.protocol === 'tls:' ? 853 : 443;
    if (normalize(url.hostname)) out.push({ key: `${prefix}[${i}].url`, text: u.url, host: url.hostname, port });
    u.bootstrap?.forEach((b, j) => out.push({ key: `${prefix}[${i}].bootstrap[${j}]`, text: `${b} (port ${port})`, host: b, port }));
  });
  return out;
}

/** Every group upstream (DoH, `udp://`/`tcp://` URL or `address`), keyed `groups.NAME.upstreams[i]`. */
export function groupTargets(groups: Readonly<Record<string, { upstreams: readonly { url?: string | undefined; address?: string | undefined; bootstrap?: string[] | undefined }[] }>>): QueryTarget[] {
  const out: QueryTarget[] = [];
  for (const [name, g] of Object.entries(groups)) {
    const prefix = `groups.${name}.upstreams`;
    g.upstreams.forEach((u, i) => {
      if (u.url?.startsWith('https:') || u.url?.startsWith('tls:')) {
        out.push(...upstreamTargets([{ url: u.url, ...(u.bootstrap ? { bootstrap: u.bootstrap } : {}) }], prefix).map((t) => ({ ...t, key: t.key.replace(`${prefix}[0]`, `${prefix}[${i}]`) })));
        return;
      }
      let host: string | undefined;
      let port = 53;
      if (u.address) {
        const a = parseHostPort(u.address);
        if (typeof a === 'string') return;
        host = a.host;
        port = a.port;
      } else if (u.url) {
        try {
          const url = new URL(u.url);
          host = url.hostname;
          port = url.port ? Number(url.port) : 53;
        } catch {
          return;
        }
      }
      if (host && normalize(host)) out.push({ key: `${prefix}[${i}]`, text: u.address ?? u.url ?? '', host, port });
    });
  }
  return out;
}

/** Everywhere the config makes dohd send queries: the default upstreams and every group's. */
export function configTargets(config: { upstreams: Parameters<typeof upstreamTargets>[0]; groups: Parameters<typeof groupTargets>[0] }): QueryTarget[] {
  return [...upstreamTargets(config.upstreams), ...groupTargets(config.groups)];
}
