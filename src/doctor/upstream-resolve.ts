/**
 * Check: each name resolved through dohd's DoH upstreams, side by side with the system
 * resolver's answer. A name the system cannot resolve while DoH can is the classic
 * "lookup goproxy.cn: no such host" on a broken or filtering local DNS.
 */
import { DohUpstream } from '../upstream/doh/doh.js';
import { buildSecureUpstream, pathsOf } from '../upstream/strategies/groups.js';
import { RaceStrategy } from '../upstream/strategies/race.js';
import { describeLookup, lookupDoh } from './lookup.js';
import { useDohd } from './resolv-conf.js';
import { deadNameservers, systemAnswer } from './system-resolve.js';
import type { DoctorContext, Section } from './types.js';

const BOGUS = /^(0\.|::$)/;

export async function checkUpstreams(ctx: DoctorContext): Promise<Section> {
  const s: Section = { check: 'doh', title: "Names: system resolver and dohd's DoH upstreams side by side", lines: [], findings: [] };
  const upstreams = ctx.opts.upstreams.map((u) => buildSecureUpstream(u, { connectTimeoutMs: ctx.opts.timeoutMs }));
  try {
    const strategy = new RaceStrategy(upstreams, ctx.opts.timeoutMs);
    await Promise.all(ctx.names.map(async (name) => ctx.doh.set(name, await lookupDoh(strategy, name, ctx.opts.timeoutMs))));
  } finally {
    await Promise.all(upstreams.map((u) => u.close()));
  }
  const width = Math.max(...ctx.names.map((n) => n.length), 4) + 2;
  const col = 36;
  s.lines.push(`${'name'.padEnd(width)}${'system'.padEnd(col)}DoH (${upstreams.map((u) => u.name).join(', ')})`);
  for (const name of ctx.names) {
    s.lines.push(`${name.padEnd(width)}${describeLookup(systemAnswer(ctx, name)).padEnd(col)}${describeLookup(ctx.doh.get(name))}`);
  }

  const dohWorks = ctx.names.filter((n) => ctx.doh.get(n)?.status === 'ok');
  if (dohWorks.length === 0 && ctx.names.length > 0) {
    const sample = ctx.doh.get(ctx.names[0]!);
    s.findings.push({
      check: s.check,
      level: 'warn',
      message: `the DoH upstreams answered none of the names: ${describeLookup(sample)}; dohd could not help until they are reachable`,
      fix: upstreams.flatMap(pathsOf).map((u) => `dohd query ${ctx.names[0]} ${u instanceof DohUpstream ? `--doh ${u.url.href}` : `--dot ${u.url}`}${u.addresses.length ? ` --bootstrap ${u.addresses[0]}` : ''}   # see why`),
    });
  }
  const resolverDown = deadNameservers(ctx).length === (ctx.resolv?.nameservers.length ?? 0);
  for (const name of ctx.names) {
    const sys = systemAnswer(ctx, name);
    const doh = ctx.doh.get(name);
    if (!sys || !doh) continue;
    const bogus = sys.addresses.filter((a) => BOGUS.test(a));
    if (bogus.length) {
      s.findings.push({
        check: s.check,
        level: 'fault',
        message: `the system resolver answers ${name} with ${bogus.join(', ')}, an address that goes nowhere (a blocking or poisoned resolver)`,
        fix: useDohd(ctx.opts.resolvConf),
      });
    } else if (sys.status !== 'ok' && doh.status === 'ok' && !resolverDown) {
      s.findings.push({
        check: s.check,
        level: 'fault',
        message: `the system resolver cannot resolve ${name} (${describeLookup(sys)}) but the DoH upstreams can (${doh.addresses.join(', ')}): this is "lookup ${name}: no such host"`,
        fix: useDohd(ctx.opts.resolvConf),
      });
    } else if (sys.status === 'ok' && doh.status === 'ok' && !sys.addresses.some((a) => doh.addresses.includes(a))) {
      const pin = ctx.opts.pins?.[name];
      if (pin && sys.addresses.every((a) => pin.includes(a))) {
        s.findings.push({
          check: s.check,
          level: 'info',
          message: `${name}: pinned by you to ${pin.join(', ')} (dohd's pins); the DoH upstreams say ${doh.addresses.join(', ')} (the reachability check below tries both)`,
        });
        continue;
      }
      s.findings.push({
        check: s.check,
        level: 'info',
        message: `${name}: the system resolver and DoH give different addresses (normal for CDNs; the reachability check below tries both)`,
      });
    }
  }
  return s;
}
