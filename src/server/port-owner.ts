/**
 * Which program holds a port: the socket's inode from /proc/net/{udp,udp6,tcp,tcp6}, then the
 * process whose /proc/PID/fd has `socket:[INODE]`. Best effort: another user's processes (without
 * root) and other network namespaces stay unnamed, and then the caller says "another program".
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { isIPv4 } from 'node:net';
import ipaddr from 'ipaddr.js';

export interface PortOwner {
  pid: number;
  /** The process name (/proc/PID/comm). */
  command: string;
}

/** /proc/net hex address ("0100007F", or 32 hex digits for IPv6) to a normalized address. */
function procAddress(hex: string): string {
  const bytes: number[] = [];
  // Each 32-bit word is in host (little-endian) order.
  for (let w = 0; w < hex.length; w += 8) {
    const word = hex.slice(w, w + 8);
    for (let b = 6; b >= 0; b -= 2) bytes.push(parseInt(word.slice(b, b + 2), 16));
  }
  return ipaddr.fromByteArray(bytes).toNormalizedString();
}

function normalize(host: string): string {
  try {
    return ipaddr.parse(host).toNormalizedString();
  } catch {
    return host;
  }
}

/**
 * The rows of the /proc/net socket tables at `paths` (tcp, udp6, ...), each split into its
 * fields (1: local address:port in hex, 3: state, 9: inode, 12: drops), with the table it came
 * from; a table that cannot be read (no /proc, no IPv6) gives none.
 */
export function procNetRows(paths: readonly string[]): { path: string; fields: string[] }[] {
  const rows: { path: string; fields: string[] }[] = [];
  for (const path of paths) {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) if (line.trim()) rows.push({ path, fields: line.trim().split(/\s+/) });
  }
  return rows;
}

/** Socket inodes bound to `port` whose address overlaps `host` (the same address, or either is a wildcard). */
export function socketInodes(proto: 'udp' | 'tcp', host: string, port: number, procRoot = '/proc'): number[] {
  const want = normalize(host);
  const v4 = isIPv4(host);
  const wildcard = new Set([normalize('0.0.0.0'), normalize('::')]);
  const inodes: number[] = [];
  for (const { path, fields: f } of procNetRows([`${procRoot}/net/${proto}`, `${procRoot}/net/${proto}6`])) {
    if (f.length < 10) continue;
    const [addrHex, portHex] = f[1]!.split(':');
    if (parseInt(portHex!, 16) !== port) continue;
    if (proto === 'tcp' && f[3] !== '0A') continue; // LISTEN only
    let addr = procAddress(addrHex!);
    // An IPv4-mapped address in udp6/tcp6 is the IPv4 address.
    const mapped = /^0:0:0:0:0:ffff:/.exec(addr) ? ipaddr.parse(addr) : null;
    if (mapped && mapped.kind() === 'ipv6' && (mapped as ipaddr.IPv6).isIPv4MappedAddress()) addr = (mapped as ipaddr.IPv6).toIPv4Address().toNormalizedString();
    const overlaps = addr === want || wildcard.has(want) || (wildcard.has(addr) && (path.endsWith('6') || v4));
    if (!overlaps) continue;
    const inode = Number(f[9]);
    if (inode > 0) inodes.push(inode);
  }
  return inodes;
}

/** The process holding one of these socket inodes, if /proc lets us see it. */
export function processOfInodes(inodes: number[], procRoot = '/proc'): PortOwner | null {
  if (!inodes.length) return null;
  const targets = new Set(inodes.map((i) => `socket:[${i}]`));
  let pids: string[];
  try {
    pids = readdirSync(procRoot).filter((d) => /^\d+$/.test(d));
  } catch {
    return null;
  }
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`${procRoot}/${pid}/fd`);
    } catch {
      continue; // gone, or not ours to read
    }
    for (const fd of fds) {
      let link: string;
      try {
        link = readlinkSync(`${procRoot}/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      if (!targets.has(link)) continue;
      let command = '?';
      try {
        command = readFileSync(`${procRoot}/${pid}/comm`, 'utf8').trim();
      } catch {
        /* keep "?" */
      }
      return { pid: Number(pid), command };
    }
  }
  return null;
}

export function portOwner(proto: 'udp' | 'tcp', host: string, port: number): PortOwner | null {
  try {
    return processOfInodes(socketInodes(proto, host, port));
  } catch {
    return null;
  }
}

/** The `ss` command that lists who listens on the port, for the protocol. */
export function ssCommand(proto: 'udp' | 'tcp', port: number): string {
  return `ss -${proto === 'udp' ? 'lunp' : 'ltnp'} 'sport = :${port}'`;
}
