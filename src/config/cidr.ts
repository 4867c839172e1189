/**
 * CIDR ranges as written in the configuration (`10.0.0.0/8`, `fc00::/7`, or a bare IP for
 * one host), parsed with ipaddr.js. Only the standard notations are accepted (no `127.1`).
 */
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

export type IpAddr = ipaddr.IPv4 | ipaddr.IPv6;
export type Cidr = [IpAddr, number];

/** Parses `ADDR/BITS` or a bare address; returns an error message instead of throwing. */
export function parseCidr(text: string): Cidr | string {
  const s = text.trim();
  const slash = s.indexOf('/');
  const host = slash === -1 ? s : s.slice(0, slash);
  const family = isIP(host);
  if (family === 0) return `"${text}" is not an IP address or CIDR range (like 192.168.0.0/16 or fc00::/7)`;
  const max = family === 4 ? 32 : 128;
  let bits = max;
  if (slash !== -1) {
    const b = s.slice(slash + 1);
    if (!/^\d{1,3}$/.test(b) || Number(b) > max) return `"${text}" has an invalid prefix length (0 to ${max})`;
    bits = Number(b);
  }
  return [ipaddr.parse(host), bits];
}

/** A client address as a socket reports it, IPv4-mapped IPv6 turned into IPv4; null when unreadable. */
export function parseClientAddress(address: string): IpAddr | null {
  if (!address || !ipaddr.isValid(address)) return null;
  try {
    return ipaddr.process(address);
  } catch {
    return null;
  }
}

/** A list of CIDR ranges to test addresses against. */
export class CidrList {
  private readonly v4: Cidr[] = [];
  private readonly v6: Cidr[] = [];

  constructor(ranges: readonly string[]) {
    for (const text of ranges) {
      const c = parseCidr(text);
      if (typeof c === 'string') throw new Error(c);
      (c[0].kind() === 'ipv4' ? this.v4 : this.v6).push(c);
    }
  }

  get size(): number {
    return this.v4.length + this.v6.length;
  }

  has(addr: IpAddr): boolean {
    const list = addr.kind() === 'ipv4' ? this.v4 : this.v6;
    for (const range of list) if (addr.match(range)) return true;
    return false;
  }
}
