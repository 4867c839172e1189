/**
 * Check: /etc/hosts entries for the names being checked. An entry answers before DNS is
 * ever asked, so a stale or wrong one breaks a name whatever the resolver does.
 */
import { readFileSync } from 'node:fs';
import { parseHosts } from '../stages/hosts/hosts-file.js';
import type { DoctorContext, Section } from './types.js';

/** The sed command that deletes every line naming `name` from `file` (a .bak copy is kept). */
export function removeHostsLine(file: string, name: string): string {
  const re = name.replace(/[.[\]*^$\\+?(){}|]/g, (c) => `\\${c}`);
  return `sudo sed -i.bak -E '/^[^#]*[[:space:]]${re}([[:space:]]|#|$)/d' ${file}`;
}

export function checkHosts(ctx: DoctorContext): Section {
  const file = ctx.opts.hostsFile;
  const s: Section = { check: 'hosts', title: `hosts file (${file})`, lines: [], findings: [] };
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    s.lines.push(`cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): nothing is fixed there`);
    return s;
  }
  const all = parseHosts(text);
  const wanted = new Set(ctx.names);
  ctx.hosts = all.filter((e) => e.names.some((n) => wanted.has(n)));
  if (ctx.hosts.length === 0) {
    s.lines.push(`no entry for ${ctx.names.join(', ')}`);
    return s;
  }
  for (const e of ctx.hosts) {
    for (const name of e.names.filter((n) => wanted.has(n))) {
      const doh = ctx.doh.get(name);
      const line = `${name} is fixed to ${e.address} (line ${e.line}): DNS is never asked for it`;
      if (doh?.status === 'ok' && !doh.addresses.includes(e.address)) {
        s.findings.push({
          check: s.check,
          level: 'warn',
          message: `${line}, and the DoH upstreams say ${doh.addresses.join(', ')}`,
          fix: [removeHostsLine(file, name)],
        });
      } else {
        s.lines.push(line + (doh?.status === 'ok' ? ' (the DoH upstreams agree)' : ''));
      }
    }
  }
  return s;
}
