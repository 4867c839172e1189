/**
 * The static half of the loop guard: an upstream, forward rule or bootstrap address that
 * is one of dohd's own listening addresses (same IP and port) would send dohd's queries
 * back to dohd. A wildcard listener (0.0.0.0, ::) covers loopback and every address of
 * the machine's interfaces.
 */
import { constants, networkInterfaces, type NetworkInterfaceInfo } from 'node:os';
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

/** Lists the machine's interfaces: `os.networkInterfaces()`, injectable for tests. */
export type InterfaceLister = () => NodeJS.Dict<NetworkInterfaceInfo[]>;

/** The machine's addresses, or why they could not be listed. */
export type LocalAddresses = { addresses: Set<string>; error?: undefined } | { addresses?: undefined; error: string };

/**
 * Addresses of this machine's interfaces, normalized. Listing them needs a netlink socket
 * (libuv's uv_interface_addresses), which a sandbox may refuse (systemd's
 * RestrictAddressFamilies= without AF_NETLINK: EAFNOSUPPORT): then `error` says why, and
 * nothing throws.
 */
export function localAddresses(list: InterfaceLister = networkInterfaces): LocalAddresses {
  let interfaces: NodeJS.Dict<NetworkInterfaceInfo[]>;
  try {
    interfaces = list();
  } catch (err) {
    // libuv names errno 97 "Unknown system error 97": name it from the errno table.
    const e = err as NodeJS.ErrnoException & { info?: { code?: string; errno?: number } };
    const errno = e.info?.errno;
    const name = errno !== undefined ? Object.entries(constants.errno).find(([, v]) => v === Math.abs(errno))?.[0] : undefined;
    return { error: name ?? e.info?.code ?? e.code ?? e.message };
  }
  const out = new Set<string>();
  for (const l of Object.values(interfaces)) {
    for (const a of l ?? []) {
      const n = normalize(a.address);
      if (n) out.add(n.text);
    }
  }
  return { addresses: out };
}

/** What the self-loop check reports besides its problems: interfaces it could not list. */
export interface SelfCheckOptions {
  /** The machine's addresses; listed (only when a listener is a wildcard) if absent. */
  local?: Iterable<string>;
  list?: InterfaceLister;
  /** Called once when the interfaces cannot be listed and the listen addresses stand in for them. */
  warn?: (message: string, error: string) => void;
}

/** The warning logged when interfaces cannot be listed (sandboxed without netlink). */
export const NO_INTERFACES_WARNING =
  "cannot list the machine's network interfaces: the forwarding-loop check of the wildcard listen addresses uses loopback and the listen addresses themselves";

function machineAddresses(listeners: HostPort[], opts: SelfCheckOptions): Iterable<string> {
  if (opts.local) return opts.local;
  // Only a wildcard listener (0.0.0.0, ::) needs the interfaces: do not ask otherwise.
  if (!listeners.some((l) => normalize(l.host)?.ip.range() === 'unspecified')) return [];
  const r = localAddresses(opts.list);
  if (r.addresses) return r.addresses;
  opts.warn?.(NO_INTERFACES_WARNING, r.error);
  return listeners.map((l) => l.host);
}

function isThisMachine(target: NonNullable<ReturnType<typeof normalize>>, local: Iterable<string>): boolean {
  const range = target.ip.range();
  if (range === 'loopback' || range === 'unspecified') return true;
  for (const a of local) if (normalize(a)?.text === target.text) return true;
  return false;
}

/** Does a connection to `target` reach `listener`? */
export function reaches(listener: HostPort, target: { host: string; port: number }, local: Iterable<string>): boolean {
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
export function selfTargetProblems(listeners: HostPort[], targets: QueryTarget[], opts: SelfCheckOptions = {}): string[] {
  const problems: string[] = [];
  if (targets.length === 0) return problems;
  const local = [...machineAddresses(listeners, opts)];
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
