/**
 * Check: what /etc/resolv.conf points at (nameservers, search list, ndots, edns0), the way
 * glibc and Go's resolver read it (first three nameservers; ndots default 1).
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { DoctorContext, ResolvConf, Section } from './types.js';

export function parseResolvConf(text: string): ResolvConf {
  const conf: ResolvConf = { nameservers: [], search: [], ndots: 1, edns0: false, options: [] };
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    if (!line) continue;
    const [key, ...rest] = line.split(/\s+/);
    if (key === 'nameserver' && rest[0]) conf.nameservers.push(rest[0].replace(/%.*$/, ''));
    else if (key === 'search' || key === 'domain') conf.search = rest;
    else if (key === 'options') {
      for (const o of rest) {
        conf.options.push(o);
        const nd = /^ndots:(\d+)$/.exec(o);
        if (nd) conf.ndots = Math.min(15, Number(nd[1]));
        if (o === 'edns0') conf.edns0 = true;
      }
    }
  }
  return conf;
}

export function checkResolvConf(ctx: DoctorContext): Section {
  const file = ctx.opts.resolvConf;
  const s: Section = { check: 'resolv.conf', title: `resolv.conf (${file})`, lines: [], findings: [] };
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    s.findings.push({
      check: s.check,
      level: 'fault',
      message: `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): programs fall back to a resolver on 127.0.0.1:53`,
      fix: [pointAtDohd(file)],
    });
    ctx.resolv = { nameservers: ['127.0.0.1'], search: [], ndots: 1, edns0: false, options: [] };
    return s;
  }
  const conf = parseResolvConf(text);
  ctx.resolv = conf;
  s.lines.push(
    `nameservers: ${conf.nameservers.join(', ') || '(none)'}; search: ${conf.search.join(' ') || '(none)'}; ndots: ${conf.ndots}; edns0: ${conf.edns0 ? 'yes' : 'no'}`,
  );
  if (conf.nameservers.length === 0) {
    conf.nameservers.push('127.0.0.1');
    s.findings.push({ check: s.check, level: 'info', message: 'no nameserver line: glibc and Go then ask 127.0.0.1:53' });
  }
  const bad = conf.nameservers.filter((n) => isIP(n) === 0);
  for (const n of bad) s.findings.push({ check: s.check, level: 'fault', message: `"nameserver ${n}" is not an IP address: it is ignored`, fix: [pointAtDohd(file)] });
  conf.nameservers = conf.nameservers.filter((n) => isIP(n) !== 0);
  if (conf.nameservers.length > 3) {
    s.findings.push({ check: s.check, level: 'warn', message: `${conf.nameservers.length} nameservers: only the first 3 are ever used (${conf.nameservers.slice(3).join(', ')} never are)` });
    conf.nameservers = conf.nameservers.slice(0, 3);
  }
  for (const n of conf.nameservers) {
    if (n === '127.0.0.53') s.findings.push({ check: s.check, level: 'info', message: '127.0.0.53 is systemd-resolved\'s stub listener: it forwards to the servers shown by "resolvectl status"' });
    else if (n.startsWith('127.') || n === '::1') s.findings.push({ check: s.check, level: 'info', message: `${n} is a resolver on this machine (dohd listens on 127.0.0.1 and ::1 by default)` });
  }
  if (conf.ndots > 1 && conf.search.length > 0) {
    s.findings.push({
      check: s.check,
      level: 'info',
      message: `ndots:${conf.ndots} with ${conf.search.length} search domains: a name with fewer than ${conf.ndots} dots (goproxy.cn has 1) is first tried as ${conf.search
        .slice(0, 2)
        .map((d) => `goproxy.cn.${d}`)
        .join(', ')}${conf.search.length > 2 ? ', ...' : ''}: ${conf.search.length} extra lookups before the real one (a trailing dot avoids them)`,
    });
  }
  if (!conf.edns0) s.findings.push({ check: s.check, level: 'info', message: 'no "options edns0": answers larger than 512 bytes come back truncated and are asked again over TCP' });
  return s;
}

/** The fix for a resolver that fails this machine: dohd running, and `resolvConf` pointing at it. */
export function useDohd(resolvConf: string): string[] {
  return ['sudo systemctl enable --now dohd', pointAtDohd(resolvConf)];
}

/** The command that makes `file` point at dohd on loopback. */
export function pointAtDohd(file: string): string {
  return `printf 'nameserver 127.0.0.1\\nnameserver ::1\\noptions edns0 trust-ad\\n' | sudo tee ${file}`;
}
