/**
 * Check: the system resolver, asked directly: each resolv.conf nameserver (the first three,
 * as glibc and Go use them) is asked for each name's A and AAAA records.
 */
import { useDohd } from './resolv-conf.js';
import { describeLookup, lookupPlain } from './lookup.js';
import type { DoctorContext, Finding, Lookup, Section } from './types.js';
import { hostPort } from './types.js';

/** A nameserver that answered nothing at all (every query timed out or was refused). */
export function deadNameservers(ctx: DoctorContext): string[] {
  const servers = ctx.resolv?.nameservers ?? [];
  return servers.filter((ns) =>
    ctx.names.every((n) => {
      const l = ctx.system.get(n)?.get(ns);
      return !l || l.status === 'timeout' || l.status === 'unreachable';
    }),
  );
}

/** What this machine's programs get for a name: the first nameserver that answered. */
export function systemAnswer(ctx: DoctorContext, name: string): Lookup | undefined {
  const per = ctx.system.get(name);
  if (!per) return undefined;
  const all = [...per.values()];
  return all.find((l) => l.status !== 'timeout' && l.status !== 'unreachable') ?? all[0];
}

export async function checkSystemResolver(ctx: DoctorContext): Promise<Section> {
  const servers = ctx.resolv?.nameservers ?? [];
  const s: Section = { check: 'system-resolver', title: 'System resolver (asked directly)', lines: [], findings: [] };
  await Promise.all(
    ctx.names.map(async (name) => {
      const per = new Map<string, Lookup>();
      ctx.system.set(name, per);
      await Promise.all(servers.map(async (ns) => per.set(ns, await lookupPlain(ns, ctx.opts.dnsPort, name, ctx.opts.timeoutMs))));
    }),
  );
  for (const ns of servers) {
    const answered = ctx.names.filter((n) => {
      const l = ctx.system.get(n)?.get(ns);
      return l && l.status !== 'timeout' && l.status !== 'unreachable';
    }).length;
    s.lines.push(`${hostPort(ns, ctx.opts.dnsPort)}: answered ${answered} of ${ctx.names.length} names`);
  }
  const dead = deadNameservers(ctx);
  for (const ns of dead) {
    const sample = ctx.system.get(ctx.names[0]!)?.get(ns);
    const why = describeLookup(sample);
    const all = dead.length === servers.length;
    const f: Finding = {
      check: s.check,
      level: all ? 'fault' : 'warn',
      message: `nameserver ${hostPort(ns, ctx.opts.dnsPort)} does not answer: ${why}${all ? ' (the system resolver is down: every lookup on this machine fails)' : ' (lookups wait for it, then try the next one)'}`,
      fix: fixFor(ns, ctx.opts.resolvConf),
    };
    s.findings.push(f);
  }
  return s;
}

function fixFor(ns: string, resolvConf: string): string[] {
  if (ns === '127.0.0.53') return ['sudo systemctl restart systemd-resolved   # or replace it with dohd: see "Living with systemd-resolved" in docs/operations.md'];
  if (ns.startsWith('127.') || ns === '::1') return ['sudo systemctl restart dohd   # if dohd is this resolver', 'journalctl -u dohd -n 50   # why it stopped'];
  return useDohd(resolvConf);
}
