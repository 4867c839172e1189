/**
 * `dohd doctor`, in order: resolv.conf, the Go environment, the system resolver asked directly,
 * the DoH upstreams side by side, the hosts file, TCP+TLS reachability, what containers are
 * given as DNS; then the verdict.
 * Each check is one file; later checks read what earlier ones found (DoctorContext).
 */
import { GO_PROXY_NAMES } from '../config/defaults.js';
import { checkContainers } from './containers.js';
import { reconcileAdvice } from './advice.js';
import { checkGoEnv } from './go-env.js';
import { checkHosts } from './hosts.js';
import { checkReachability } from './reachability.js';
import { checkResolvConf } from './resolv-conf.js';
import { checkSystemResolver } from './system-resolve.js';
import type { DoctorContext, DoctorOptions, Finding, Section } from './types.js';
import { checkUpstreamPaths } from './upstream-paths.js';
import { checkUpstreams } from './upstream-resolve.js';

export interface DoctorReport {
  sections: Section[];
  /** Every warn and fault, in the order found. */
  problems: Finding[];
  faults: number;
  warnings: number;
}

export async function runDoctor(opts: DoctorOptions): Promise<DoctorReport> {
  const ctx: DoctorContext = { opts, names: [], resolv: null, go: null, hosts: [], system: new Map(), doh: new Map(), probes: [] };
  const sections: Section[] = [];
  sections.push(checkResolvConf(ctx));
  sections.push(await checkGoEnv(ctx));
  ctx.names = opts.names ?? defaultNames(ctx);
  sections.push(await checkSystemResolver(ctx));
  sections.push(await checkUpstreams(ctx));
  sections.push(await checkUpstreamPaths(ctx));
  sections.push(checkHosts(ctx));
  sections.push(await checkReachability(ctx));
  sections.push(checkContainers(ctx));
  reconcileAdvice(ctx, sections);
  const problems = sections.flatMap((s) => s.findings.filter((f) => f.level === 'warn' || f.level === 'fault'));
  return { sections, problems, faults: problems.filter((p) => p.level === 'fault').length, warnings: problems.filter((p) => p.level === 'warn').length };
}

/** The Go proxy names dohd knows, then the hosts of GOPROXY and GOSUMDB. */
function defaultNames(ctx: DoctorContext): string[] {
  const names: string[] = [...GO_PROXY_NAMES];
  for (const h of [...(ctx.go?.proxyHosts ?? []), ...(ctx.go?.sumdbHost ? [ctx.go.sumdbHost] : [])]) if (!names.includes(h)) names.push(h);
  return names;
}

const MARK: Record<Finding['level'], string> = { ok: 'OK   ', info: 'note ', warn: 'WARN ', fault: 'FAULT' };

export function renderReport(r: DoctorReport): string {
  const out: string[] = [];
  for (const s of r.sections) {
    out.push(`== ${s.title}`);
    for (const l of s.lines) out.push(`   ${l}`);
    for (const f of s.findings) out.push(`   ${MARK[f.level]} ${f.message}`);
    out.push('');
  }
  out.push('== Verdict');
  if (r.problems.length === 0) {
    out.push('   OK: the resolver answers, the names resolve, and their servers answer TLS.');
    return `${out.join('\n')}\n`;
  }
  const head = r.faults ? `${r.faults} problem${r.faults > 1 ? 's' : ''} to fix` : 'nothing broken';
  out.push(`   ${head}${r.warnings ? `, ${r.warnings} warning${r.warnings > 1 ? 's' : ''}` : ''}:`);
  const sorted = [...r.problems.filter((p) => p.level === 'fault'), ...r.problems.filter((p) => p.level === 'warn')];
  sorted.forEach((p, i) => {
    out.push(`   ${i + 1}. ${MARK[p.level].trim()} [${p.check}] ${p.message}`);
    if (p.fix?.length) for (const c of p.fix) out.push(`        ${c}`);
  });
  const commands = [...new Set(sorted.flatMap((p) => p.fix ?? []))];
  if (commands.length) {
    out.push('', '   To fix all of it, in this order:');
    for (const c of commands) out.push(`     ${c}`);
    out.push('   then run "dohd doctor" again.');
  }
  return `${out.join('\n')}\n`;
}
