/**
 * Check: each path of each upstream (DoH by name, IP-literal DoH, DoT), asked one query
 * directly, with the verdict when it fails: "IP unreachable" (one bootstrap IP drops packets
 * while another connects), "unreachable" (all do), "blocked by SNI" (the handshake naming the
 * provider is reset, while one naming nobody completes on the same address), "intercepted"
 * (the certificate is someone else's; the issuer is named). Each comes with its fix. With the
 * default upstreams, when nothing gets through, it says that the `cn` preset exists.
 */
import { performance } from 'node:perf_hooks';
import tls from 'node:tls';
import dnsPacket from 'dns-packet';
import { CN_HINT } from '../config/presets.js';
import type { UpstreamInput } from '../config/schema.js';
import { decodeQuery } from '../dns/message.js';
import { buildUpstreamQuery } from '../dns/upstream-query.js';
import type { RaceAttempt } from '../upstream/connect-race.js';
import { DohUpstream } from '../upstream/doh/doh.js';
import { DotUpstream } from '../upstream/dot/dot.js';
import { asUpstreamError } from '../upstream/errors.js';
import { usesDefaultPreset } from '../upstream/preset-hint.js';
import { verdictOf } from '../upstream/verdict.js';
import type { DoctorContext, Finding, Section } from './types.js';

export interface PathResult {
  upstream: string;
  url: string;
  ok: boolean;
  ms: number;
  /** Failure reason (UpstreamFailure), or 'ok'. */
  reason: string;
  /** What the verdict says, for people. */
  verdict: string;
  detail: string;
  fix?: string;
}

/** Whether a TLS handshake naming nobody completes at address:port (the SNI-filter test). */
function handshakeWithoutSni(address: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: address, port, rejectUnauthorized: false });
    const done = (ok: boolean) => {
      clearTimeout(t);
      s.destroy();
      resolve(ok);
    };
    const t = setTimeout(() => done(false), timeoutMs);
    s.once('secureConnect', () => done(true));
    s.once('error', () => done(false));
  });
}

function probeQuery() {
  const raw = dnsPacket.encode({ type: 'query', id: 0, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name: '.', type: 'NS', class: 'IN' }] });
  const d = decodeQuery(raw);
  if (!d.ok) throw new Error('probe query');
  return { wire: buildUpstreamQuery(d.query), query: d.query };
}

/** IP-unreachable: addresses that gave no answer while another address connected. */
function droppedWhileOtherConnected(attempts: readonly RaceAttempt[]): string[] {
  if (!attempts.some((a) => a.outcome === 'ok')) return [];
  return attempts.filter((a) => (a.outcome === 'lost' || a.outcome === 'ETIMEDOUT') && !a.tcpConnected).map((a) => a.address);
}

export async function probePath(upstream: string, cfg: UpstreamInput, timeoutMs: number): Promise<PathResult> {
  const u = cfg.url.startsWith('tls:') ? new DotUpstream(cfg, { connectTimeoutMs: timeoutMs }) : new DohUpstream(cfg, { connectTimeoutMs: timeoutMs });
  const { wire, query } = probeQuery();
  const t0 = performance.now();
  try {
    // The connection race gives up first (timeoutMs), so a silent path is named, not just timed out.
    await u.exchange(wire, query, AbortSignal.timeout(timeoutMs + 1000));
    const ms = performance.now() - t0;
    const dropped = droppedWhileOtherConnected(u.lastAttempts);
    if (dropped.length > 0) {
      return {
        upstream,
        url: cfg.url,
        ok: true,
        ms,
        reason: 'ip_unreachable',
        verdict: `IP unreachable: ${dropped.join(', ')} (packets dropped) while ${u.currentAddress} connects`,
        detail: `answered via ${u.currentAddress}`,
        fix: `leave ${dropped.join(', ')} out of bootstrap, or keep it: dohd races the bootstrap IPs, so it costs 250 ms once per connection`,
      };
    }
    return { upstream, url: cfg.url, ok: true, ms, reason: 'ok', verdict: 'works', detail: `answered via ${u.currentAddress} in ${Math.round(ms)} ms` };
  } catch (err) {
    const ms = performance.now() - t0;
    const e = asUpstreamError(err);
    const reason = e.reason === 'aborted' ? 'timeout' : e.reason;
    let verdict = verdictOf(e.reason)?.label ?? (reason === 'timeout' ? `no answer within ${timeoutMs} ms` : reason);
    if (e.reason === 'blocked_sni') {
      // Confirm: the same address completes a handshake that names nobody.
      const addr = u.lastAttempts.find((a) => a.tcpConnected)?.address ?? u.currentAddress;
      const port = u instanceof DotUpstream ? u.port : Number(new URL(cfg.url).port || 443);
      verdict = (await handshakeWithoutSni(addr, port, timeoutMs))
        ? `blocked by SNI: the handshake naming the provider is reset, one naming nobody completes at ${addr}`
        : 'connection reset during the TLS handshake (also without a server name: the address itself is blocked)';
    }
    const fix = verdictOf(e.reason)?.fix;
    return { upstream, url: cfg.url, ok: false, ms, reason, verdict, detail: e.message, ...(fix ? { fix } : {}) };
  } finally {
    await u.close();
  }
}

export async function checkUpstreamPaths(ctx: DoctorContext): Promise<Section> {
  const s: Section = { check: 'paths', title: "Upstream paths: each way to each of dohd's upstreams, asked directly", lines: [], findings: [] };
  const jobs: Promise<PathResult>[] = [];
  for (const u of ctx.opts.upstreams) {
    const name = u.name ?? new URL(u.url).hostname;
    const common = { ...(u.ca ? { ca: u.ca } : ctx.opts.ca ? { ca: ctx.opts.ca } : {}) };
    jobs.push(probePath(name, { url: u.url, ...(u.bootstrap ? { bootstrap: u.bootstrap } : {}), ...common }, ctx.opts.timeoutMs));
    for (const a of u.alternates ?? []) jobs.push(probePath(name, { url: a.url, ...(a.bootstrap ? { bootstrap: a.bootstrap } : {}), ...common }, ctx.opts.timeoutMs));
  }
  const results = await Promise.all(jobs);
  ctx.paths = results;
  const w = Math.max(10, ...results.map((r) => r.upstream.length)) + 2;
  const uw = Math.max(10, ...results.map((r) => r.url.length)) + 2;
  for (const r of results) s.lines.push(`${r.upstream.padEnd(w)}${r.url.padEnd(uw)}${r.ok ? 'OK   ' : 'FAIL '}${r.ok ? r.detail : r.verdict}${r.ok && r.reason !== 'ok' ? `; ${r.verdict}` : ''}`);

  const anyOk = results.some((r) => r.ok);
  for (const r of results) {
    if (r.ok && r.reason === 'ok') continue;
    const f: Finding = {
      check: s.check,
      level: r.ok ? 'info' : anyOk ? 'warn' : 'fault',
      message: `${r.upstream} via ${r.url}: ${r.verdict}${r.ok ? '' : ` (${r.detail})`}`,
      ...(r.fix ? { fix: [r.fix] } : {}),
    };
    s.findings.push(f);
  }
  if (!anyOk && results.length > 0 && usesDefaultPreset(ctx.opts.upstreams)) {
    s.findings.push({ check: s.check, level: 'fault', message: 'no path to the default upstreams works from here', fix: [CN_HINT, 'dohd run --preset cn   # or upstreams: cn in the config'] });
  }
  return s;
}
