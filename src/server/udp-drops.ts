/**
 * What the kernel dropped before dohd could read it: a UDP listener whose receive buffer is
 * full loses datagrams silently (a flood, an event-loop stall). Two views, both read from
 * /proc at scrape time only:
 *
 *   dohd_udp_socket_drops_total{listen}   each listening socket's own drop counter (the `drops`
 *                                         column of /proc/net/udp and /proc/net/udp6, matched by
 *                                         the socket's inode among this process's descriptors)
 *   dohd_udp_receive_buffer_errors_total  the network namespace's UDP RcvbufErrors (/proc/net/snmp
 *                                         Udp plus /proc/net/snmp6 Udp6): every UDP socket, not
 *                                         only dohd's
 *
 * Where /proc is not there (not Linux), the families stay empty.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { Counter, type Registry } from 'prom-client';
import { procNetRows } from './port-owner.js';

/** A listening UDP socket: its `host:port` label and local port. */
export interface UdpSocketInfo {
  listen: string;
  port: number;
}

/** Inodes of the sockets this process holds open (`socket:[N]` in /proc/self/fd). */
function ownSocketInodes(): Set<string> {
  const out = new Set<string>();
  let fds: string[];
  try {
    fds = readdirSync('/proc/self/fd');
  } catch {
    return out;
  }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`));
      if (m) out.add(m[1]!);
    } catch {
      /* closed meanwhile */
    }
  }
  return out;
}

/** Drops per local port, of this process's UDP sockets (/proc/net/udp and udp6). */
export function socketDrops(): Map<number, number> {
  const inodes = ownSocketInodes();
  const drops = new Map<number, number>();
  for (const { fields: f } of procNetRows(['/proc/net/udp', '/proc/net/udp6'])) {
    if (f.length < 13 || !inodes.has(f[9]!)) continue;
    const port = parseInt(f[1]!.slice(f[1]!.lastIndexOf(':') + 1), 16);
    drops.set(port, (drops.get(port) ?? 0) + Number(f[12]));
  }
  return drops;
}

/** The namespace's UDP receive-buffer errors (IPv4 + IPv6), or null without /proc. */
export function receiveBufferErrors(): number | null {
  let total: number | null = null;
  try {
    const lines = readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Udp:'));
    const names = lines[0]!.split(/\s+/);
    const values = lines[1]!.split(/\s+/);
    const i = names.indexOf('RcvbufErrors');
    if (i > 0) total = Number(values[i]);
  } catch {
    /* no /proc */
  }
  try {
    const m = /^Udp6RcvbufErrors\s+(\d+)/m.exec(readFileSync('/proc/net/snmp6', 'utf8'));
    if (m) total = (total ?? 0) + Number(m[1]);
  } catch {
    /* no IPv6 */
  }
  return total;
}

/** Registers both families; `sockets` lists the listening UDP sockets at scrape time. */
export function registerUdpDrops(registry: Registry, sockets: () => UdpSocketInfo[]): void {
  new Counter({
    name: 'dohd_udp_socket_drops_total',
    help: 'Datagrams the kernel dropped on a listening UDP socket before dohd read them (receive buffer full), by listen address',
    labelNames: ['listen'],
    registers: [registry],
    collect() {
      const drops = socketDrops();
      this.reset();
      for (const s of sockets()) this.inc({ listen: s.listen }, drops.get(s.port) ?? 0);
    },
  });
  new Counter({
    name: 'dohd_udp_receive_buffer_errors_total',
    help: 'UDP datagrams dropped for a full receive buffer in this network namespace, every socket (RcvbufErrors of /proc/net/snmp and snmp6)',
    registers: [registry],
    collect() {
      const n = receiveBufferErrors();
      this.reset();
      if (n !== null) this.inc(n);
    },
  });
}
