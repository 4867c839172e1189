/** Presents a decoded DNS message the way `dig` does, for `dohd query`. */
import type dnsPacket from 'dns-packet';
import { EDE_NAMES, EDE_OPTION } from './ede.js';
import { EXPLAIN_OPTION } from './explain.js';

const OPCODES = ['QUERY', 'IQUERY', 'STATUS', 'OPCODE3', 'NOTIFY', 'UPDATE'];
const RCODES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED', 'YXDOMAIN', 'YXRRSET', 'NXRRSET', 'NOTAUTH', 'NOTZONE'];
const FLAG_BITS: [number, string][] = [
  [0x8000, 'qr'],
  [0x0400, 'aa'],
  [0x0200, 'tc'],
  [0x0100, 'rd'],
  [0x0080, 'ra'],
  [0x0020, 'ad'],
  [0x0010, 'cd'],
];

type Rr = { name: string; type: string; class?: string; ttl?: number; data?: unknown; options?: { code: number; data?: Buffer }[]; udpPayloadSize?: number; flags?: number };

export function typeName(type: string): string {
  const m = /^UNKNOWN_(\d+)$/.exec(type);
  if (!m) return type;
  return ({ 64: 'SVCB', 65: 'HTTPS' } as Record<string, string>)[m[1]!] ?? `TYPE${m[1]}`;
}

export function rcodeName(rcode: number): string {
  return RCODES[rcode] ?? `RCODE${rcode}`;
}

const fqdn = (n: string) => (n.endsWith('.') ? n : `${n}.`);

function quote(b: Buffer | string): string {
  const s = Buffer.isBuffer(b) ? b.toString('latin1') : b;
  return `"${s.replace(/[\\"]/g, (c) => `\\${c}`).replace(/[^\x20-\x7e]/g, (c) => `\\${String(c.charCodeAt(0)).padStart(3, '0')}`)}"`;
}

/** The record data in presentation format, as dig prints it. */
export function rdata(rr: Rr): string {
  const d = rr.data as Record<string, unknown> | string | Buffer | Buffer[] | undefined;
  switch (rr.type) {
    case 'A':
    case 'AAAA':
      return String(d);
    case 'CNAME':
    case 'NS':
    case 'PTR':
    case 'DNAME':
      return fqdn(String(d));
    case 'MX': {
      const mx = d as { preference: number; exchange: string };
      return `${mx.preference} ${fqdn(mx.exchange)}`;
    }
    case 'TXT':
      return (Array.isArray(d) ? d : [d as Buffer]).map((x) => quote(x as Buffer)).join(' ');
    case 'SOA': {
      const s = d as { mname: string; rname: string; serial: number; refresh: number; retry: number; expire: number; minimum: number };
      return `${fqdn(s.mname)} ${fqdn(s.rname)} ${s.serial} ${s.refresh} ${s.retry} ${s.expire} ${s.minimum}`;
    }
    case 'SRV': {
      const s = d as { priority: number; weight: number; port: number; target: string };
      return `${s.priority} ${s.weight} ${s.port} ${fqdn(s.target)}`;
    }
    case 'CAA': {
      const c = d as { flags: number; tag: string; value: string };
      return `${c.flags} ${c.tag} ${quote(c.value)}`;
    }
    default:
      if (Buffer.isBuffer(d)) return `\\# ${d.length}${d.length ? ` ${d.toString('hex').toUpperCase()}` : ''}`;
      return JSON.stringify(d);
  }
}

function rrLine(rr: Rr): string {
  return `${fqdn(rr.name)}\t\t${rr.ttl ?? 0}\t${rr.class ?? 'IN'}\t${typeName(rr.type)}\t${rdata(rr)}`;
}

export interface FormatInfo {
  /** Free lines for the footer (";; SERVER: ...", ";; ANSWERED BY: ..."). */
  footer: string[];
}

/** The whole message, dig style: header, flags, OPT pseudosection, sections, footer. */
export function formatMessage(packet: dnsPacket.DecodedPacket, wire: Buffer, info: FormatInfo): string {
  const flags = wire.readUInt16BE(2);
  const opcode = (flags >> 11) & 0xf;
  const rcode = flags & 0xf;
  const additionals = (packet.additionals ?? []) as Rr[];
  const opt = additionals.find((r) => r.type === 'OPT');
  const out: string[] = [];
  out.push(`;; ->>HEADER<<- opcode: ${OPCODES[opcode] ?? opcode}, status: ${rcodeName(rcode)}, id: ${wire.readUInt16BE(0)}`);
  out.push(
    `;; flags: ${FLAG_BITS.filter(([bit]) => flags & bit)
      .map(([, n]) => n)
      .join(' ')}; QUERY: ${wire.readUInt16BE(4)}, ANSWER: ${wire.readUInt16BE(6)}, AUTHORITY: ${wire.readUInt16BE(8)}, ADDITIONAL: ${wire.readUInt16BE(10)}`,
  );
  if (opt) {
    out.push('', ';; OPT PSEUDOSECTION:');
    out.push(`; EDNS: version: 0, flags:${(opt.flags ?? 0) & 0x8000 ? ' do' : ''}; udp: ${opt.udpPayloadSize ?? 512}`);
    // Extended DNS Errors (RFC 8914), the way dig prints them.
    for (const o of ((opt as { options?: { code: number; data?: Buffer }[] }).options ?? [])) {
      if (o.code !== EDE_OPTION || !o.data || o.data.length < 2) continue;
      const code = o.data.readUInt16BE(0);
      const text = o.data.length > 2 ? `: (${o.data.toString('utf8', 2)})` : '';
      out.push(`; EDE: ${code}${EDE_NAMES[code] ? ` (${EDE_NAMES[code]})` : ''}${text}`);
    }
  }
  out.push('', ';; QUESTION SECTION:');
  for (const q of packet.questions ?? []) out.push(`;${fqdn(q.name)}\t\t\t${q.class ?? 'IN'}\t${typeName(q.type)}`);
  const sections: [string, Rr[]][] = [
    ['ANSWER', (packet.answers ?? []) as Rr[]],
    ['AUTHORITY', (packet.authorities ?? []) as Rr[]],
    ['ADDITIONAL', additionals.filter((r) => r.type !== 'OPT')],
  ];
  for (const [title, rrs] of sections) {
    if (rrs.length === 0) continue;
    out.push('', `;; ${title} SECTION:`);
    for (const rr of rrs) out.push(rrLine(rr));
  }
  out.push('', ...info.footer, '');
  return out.join('\n');
}

/** `+short`: the record data of the answer section, one per line. */
export function formatShort(packet: dnsPacket.DecodedPacket): string {
  return ((packet.answers ?? []) as Rr[]).map((rr) => `${rdata(rr)}\n`).join('');
}

/** The explain option dohd adds for `dohd query`, if present. */
export function explainOption(packet: dnsPacket.DecodedPacket): Buffer | null {
  const opt = ((packet.additionals ?? []) as Rr[]).find((r) => r.type === 'OPT');
  const o = opt?.options?.find((x) => x.code === EXPLAIN_OPTION);
  return o?.data ?? null;
}
