/**
 * Check: can this machine actually talk to each name? TCP to port 443 (--port) of every
 * address found (hosts file, system resolver, DoH), then a TLS handshake with the name as
 * server name, verified like Go verifies it. An address that answers TCP but shows a
 * certificate for another name is not the real server (DNS pollution, a captive portal).
 */
import { probeCa, probeTls } from '../stages/pins/verify.js';
import { NO_PROXY_REACHED, proxyUrl, reachableProxy, useProxy } from './advice.js';
import { GO_DEFAULT_PROXY } from './go-env.js';
import { removeHostsLine } from './hosts.js';
import { useDohd } from './resolv-conf.js';
import { systemAnswer } from './system-resolve.js';
import type { DoctorContext, Probe, Section } from './types.js';
import { hostPort } from './types.js';

const MAX_PER_NAME = 6;
/** Addresses never worth a connection: unspecified, "this network", multicast, broadcast. */
const UNROUTABLE = /^(0\.|22[4-9]\.|2[3-5]\d\.|::$|ff)/i;

/** One address of a name: TCP, then TLS (the one probe, stages/pins/verify.ts), told the doctor's way. */
export async function probeAddress(address: string, port: number, name: string, ca: string[] | undefined, timeoutMs: number): Promise<Omit<Probe, 'sources' | 'name'>> {
  const r = await probeTls(address, name, { port, timeoutMs, alpn: ['h2', 'http/1.1'], ...(ca ? { ca } : {}) });
  const done = (ok: boolean, stage: Probe['stage'], detail: string, ms: number) => ({ address, port, ok, stage, detail, ms });
  if (r.ok) return done(true, 'done', `TLS ${r.protocol ?? ''} ok, certificate for ${name}${r.issuer ? ` from ${r.issuer}` : ''}`, r.ms);
  const stage = r.stage ?? 'tls';
  if (r.timedOut) return done(false, stage, stage === 'tls' ? `TLS handshake timed out after ${timeoutMs} ms` : `TCP connect timed out after ${timeoutMs} ms`, r.ms);
  const err = r.cause;
  if (stage === 'tcp') {
    const why = err?.code === 'ECONNREFUSED' ? 'connection refused (nothing listens on that port)' : (err?.code ?? err?.message ?? r.error);
    return done(false, 'tcp', `TCP: ${why}`, r.ms);
  }
  return done(false, 'tls', err ? `TLS: ${tlsProblem(err, name)}${err.code ? ` (${err.code})` : ''}` : `TLS: ${r.error}`, r.ms);
}

const UNTRUSTED = new Set(['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'UNABLE_TO_GET_ISSUER_CERT']);

function tlsProblem(err: NodeJS.ErrnoException, name: string): string {
  if (err.code === 'ERR_TLS_CERT_ALTNAME_INVALID') return `the certificate is not for ${name}`;
  if (err.code && UNTRUSTED.has(err.code)) return 'the certificate is not from a trusted authority (an interception proxy or captive portal?)';
  if (err.code === 'CERT_HAS_EXPIRED') return 'the certificate has expired (or this machine\'s clock is wrong)';
  return err.message;
}

export async function checkReachability(ctx: DoctorContext): Promise<Section> {
  const port = ctx.opts.tlsPort;
  const s: Section = { check: 'reachability', title: `Reachability (TCP ${port} and TLS)`, lines: [], findings: [] };
  const ca = probeCa(ctx.opts.ca);

  const wanted: { name: string; address: string; sources: Probe['sources'] }[] = [];
  const add = (name: string, address: string, source: Probe['sources'][number]) => {
    const w = wanted.find((x) => x.name === name && x.address === address);
    if (w) {
      if (!w.sources.includes(source)) w.sources.push(source);
    } else if (wanted.filter((x) => x.name === name).length < MAX_PER_NAME) wanted.push({ name, address, sources: [source] });
  };
  for (const name of ctx.names) {
    const pinned = ctx.hosts.find((e) => e.names.includes(name));
    if (pinned) add(name, pinned.address, 'hosts');
    else for (const a of systemAnswer(ctx, name)?.addresses ?? []) add(name, a, 'system');
    for (const a of ctx.doh.get(name)?.addresses ?? []) add(name, a, 'doh');
  }
  ctx.probes = await Promise.all(
    wanted.map(async (w) => {
      if (UNROUTABLE.test(w.address)) return { ...w, port, ok: false, stage: 'skipped' as const, detail: 'not an address anything can be reached at', ms: 0 };
      return { ...w, ...(await probeAddress(w.address, port, w.name, ca, ctx.opts.timeoutMs)) };
    }),
  );
  for (const p of ctx.probes) s.lines.push(`${p.name.padEnd(24)}${hostPort(p.address, port).padEnd(26)}${`(${p.sources.join(', ')})`.padEnd(18)}${p.ok ? 'OK   ' : 'FAIL '}${p.detail}`);
  if (ctx.probes.length === 0) s.lines.push('no address to try: no name resolved');

  for (const name of ctx.names) {
    const probes = ctx.probes.filter((p) => p.name === name);
    if (probes.length === 0) continue;
    const used = probes.filter((p) => p.sources.includes('hosts') || p.sources.includes('system'));
    const dohOk = probes.filter((p) => p.sources.includes('doh') && p.ok);
    const viaHosts = used.some((p) => p.sources.includes('hosts'));
    if (used.length > 0 && !used.some((p) => p.ok)) {
      const what = used.map((p) => `${hostPort(p.address, port)} (${p.detail})`).join('; ');
      if (dohOk.length > 0) {
        const pinned = isPinned(ctx, name, used.map((p) => p.address));
        const where = viaHosts ? `(fixed in ${ctx.opts.hostsFile})` : pinned ? "(pinned by you in dohd's configuration)" : '(from the system resolver)';
        const works = dohOk.map((p) => p.address);
        const dohAddrs = new Set(ctx.doh.get(name)?.addresses ?? []);
        // Forged plain DNS: the system resolver's address is one DoH does not give, and it fails TLS for the name.
        const forged = !viaHosts && !pinned && used.every((p) => !dohAddrs.has(p.address));
        s.findings.push({
          check: s.check,
          level: 'fault',
          message: `${forged ? `forged plain DNS: the system resolver answers ${name} with ${used.map((p) => p.address).join(', ')}, which DoH does not give and which fails TLS for ${name}. ` : ''}${name}: the address this machine uses ${where} fails: ${what}; ${works.join(', ')} from the DoH upstreams works`,
          fix: viaHosts
            ? [removeHostsLine(ctx.opts.hostsFile, name)]
            : pinned
              ? [`dohd pins learn ${name}   # prints a pin of the addresses that pass TLS now; replace the old pin with it`]
              : [
                  ...useDohd(ctx.opts.resolvConf),
                  `# or pin it in dohd's configuration: pins: { ${name}: [${works.map((a) => JSON.stringify(a)).join(', ')}] }`,
                ],
        });
        continue;
      }
    }
    if (!probes.some((p) => p.ok)) {
      const other = proxyUrl(ctx, name) ? reachableProxy(ctx, [name]) : undefined;
      const fix = viaHosts ? [removeHostsLine(ctx.opts.hostsFile, name)] : [];
      if (other) fix.push(useProxy(ctx, other));
      else fix.push(proxyUrl(ctx, name) ? NO_PROXY_REACHED : '# a firewall or a web proxy is in the way; with a web proxy: export HTTPS_PROXY=http://PROXY:PORT (go honours it)');
      s.findings.push({
        check: s.check,
        level: 'fault',
        message: `${name} cannot be reached on port ${port} at any address: ${probes.map((p) => `${hostPort(p.address, port)} ${p.detail}`).join('; ')}`,
        fix,
      });
    }
  }
  const go = ctx.go;
  if (go?.proxyUnset) {
    const def = new URL(GO_DEFAULT_PROXY.split(',')[0]!).hostname;
    const probes = ctx.probes.filter((p) => p.name === def);
    if (probes.length > 0 && !probes.some((p) => p.ok)) {
      s.findings.push({
        check: s.check,
        level: 'fault',
        message: `GOPROXY is not set, so Go uses ${def}, which cannot be reached from here`,
        fix: [((other) => (other ? useProxy(ctx, other) : NO_PROXY_REACHED))(reachableProxy(ctx, [def]))],
      });
    }
  }
  return s;
}

/** The addresses the machine uses for `name` are dohd's own pin for it. */
export function isPinned(ctx: DoctorContext, name: string, addresses: string[]): boolean {
  const pin = ctx.opts.pins?.[name];
  return !!pin && addresses.length > 0 && addresses.every((a) => pin.includes(a));
}
