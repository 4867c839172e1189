/**
 * systemd socket activation (sd_listen_fds(3)): when LISTEN_PID is our pid, LISTEN_FDS
 * sockets start at fd 3, named by LISTEN_FDNAMES. Node cannot call getsockopt(), so each
 * fd is identified the way `ss` does it: /proc/self/fd/N names the socket's inode, and
 * the kernel's socket tables (/proc/net/udp, udp6, tcp, tcp6) give that inode's protocol,
 * family and local address. The LISTEN_* variables are removed once read, so nothing
 * dohd might start inherits them.
 */
import { readFileSync, readlinkSync } from 'node:fs';
import { formatHostPort, type HostPort } from '../config/address.js';

export const SD_LISTEN_FDS_START = 3;

export interface InheritedSocket {
  fd: number;
  /** From LISTEN_FDNAMES (systemd's FileDescriptorName=), or "unknown". */
  name: string;
  proto: 'udp' | 'tcp';
  address: HostPort;
}

export class ActivationError extends Error {
  override name = 'ActivationError';
}

/**
 * The sockets systemd handed over, or null when dohd was not socket-activated.
 * Throws ActivationError (one line) when the handed-over fds are not usable DNS sockets.
 */
export function takeListenFds(env: NodeJS.ProcessEnv = process.env, pid = process.pid): InheritedSocket[] | null {
  const pidText = env.LISTEN_PID;
  const fdsText = env.LISTEN_FDS;
  const namesText = env.LISTEN_FDNAMES;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDS;
  delete env.LISTEN_FDNAMES;
  if (pidText === undefined || fdsText === undefined) return null;
  // Meant for another process (inherited by accident): not ours to use.
  if (!/^\d+$/.test(pidText) || Number(pidText) !== pid) return null;
  if (!/^\d+$/.test(fdsText)) throw new ActivationError(`socket activation: LISTEN_FDS="${fdsText}" is not a number`);
  const count = Number(fdsText);
  if (count === 0) return null;
  if (count > 64) throw new ActivationError(`socket activation: LISTEN_FDS=${count} is more sockets than dohd can use`);
  const names = namesText ? namesText.split(':') : [];
  const out: InheritedSocket[] = [];
  for (let i = 0; i < count; i++) {
    const fd = SD_LISTEN_FDS_START + i;
    const found = identifySocket(fd);
    if (typeof found === 'string') throw new ActivationError(`socket activation: fd ${fd}${names[i] ? ` (${names[i]})` : ''}: ${found}`);
    out.push({ fd, name: names[i] || 'unknown', ...found });
  }
  return out;
}

const TABLES = [
  { file: 'udp', proto: 'udp', family: 4 },
  { file: 'udp6', proto: 'udp', family: 6 },
  { file: 'tcp', proto: 'tcp', family: 4 },
  { file: 'tcp6', proto: 'tcp', family: 6 },
] as const;

const TCP_LISTEN = '0A';

/** Protocol and local address of an inherited socket fd, or why it cannot serve DNS. */
export function identifySocket(fd: number, procRoots: readonly string[] = ['/proc/self/net', '/proc/1/net']): { proto: 'udp' | 'tcp'; address: HostPort } | string {
  let link: string;
  try {
    link = readlinkSync(`/proc/self/fd/${fd}`);
  } catch (err) {
    return `not an open file descriptor (${(err as NodeJS.ErrnoException).code ?? 'error'})`;
  }
  const m = /^socket:\[(\d+)\]$/.exec(link);
  if (!m) return `not a socket (${link})`;
  const inode = m[1]!;
  // Our own network namespace first; then the host's, for a socket systemd made there.
  for (const root of procRoots) {
    for (const t of TABLES) {
      let text: string;
      try {
        text = readFileSync(`${root}/${t.file}`, 'utf8');
      } catch {
        continue;
      }
      for (const line of text.split('\n').slice(1)) {
        const cols = line.trim().split(/\s+/);
        if (cols.length < 10 || cols[9] !== inode) continue;
        const address = parseProcAddress(cols[1]!, t.family);
        if (!address) return `unreadable address "${cols[1]}" in ${root}/${t.file}`;
        if (t.proto === 'tcp' && cols[3] !== TCP_LISTEN) {
          return `a connected TCP socket (${formatHostPort(address)}); dohd needs listening sockets: use Accept=no in the .socket unit`;
        }
        return { proto: t.proto, address };
      }
    }
  }
  return 'not a UDP or TCP socket of IPv4 or IPv6 (dohd takes ListenDatagram= and ListenStream= on IP addresses only)';
}

/** `0100007F:0035` → 127.0.0.1:53. The kernel prints each 32-bit word in host byte order. */
export function parseProcAddress(text: string, family: 4 | 6): HostPort | null {
  const [hex, portHex] = text.split(':');
  if (!hex || !portHex || hex.length !== (family === 4 ? 8 : 32)) return null;
  const bytes: number[] = [];
  const little = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
  for (let w = 0; w < hex.length; w += 8) {
    const word = hex.slice(w, w + 8).match(/../g)!.map((b) => parseInt(b, 16));
    bytes.push(...(little ? word.reverse() : word));
  }
  const port = parseInt(portHex, 16);
  if (family === 4) return { host: bytes.join('.'), port, family };
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  // Compress to the usual text form via URL parsing (no dependency on a formatter).
  const host = new URL(`http://[${groups.join(':')}]/`).hostname.replace(/^\[|\]$/g, '');
  return { host, port, family };
}

/** Pairs each address's UDP and TCP socket: dohd answers on both (DNS over TCP is required, RFC 7766). */
export function pairByAddress(sockets: InheritedSocket[]): { address: HostPort; udp: InheritedSocket; tcp: InheritedSocket }[] {
  const byAddr = new Map<string, { address: HostPort; udp?: InheritedSocket; tcp?: InheritedSocket }>();
  for (const s of sockets) {
    const key = formatHostPort(s.address);
    const entry = byAddr.get(key) ?? { address: s.address };
    if (entry[s.proto]) throw new ActivationError(`socket activation: two ${s.proto.toUpperCase()} sockets for ${key} (fds ${entry[s.proto]!.fd} and ${s.fd})`);
    entry[s.proto] = s;
    byAddr.set(key, entry);
  }
  return [...byAddr.entries()].map(([key, e]) => {
    if (!e.udp || !e.tcp) {
      throw new ActivationError(
        `socket activation: ${key} came with ${e.udp ? 'UDP' : 'TCP'} only; dohd answers DNS on UDP and TCP, so the .socket unit needs both ListenDatagram=${key} and ListenStream=${key}`,
      );
    }
    return { address: e.address, udp: e.udp, tcp: e.tcp };
  });
}
