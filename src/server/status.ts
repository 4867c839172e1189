/**
 * The admin listener's `GET /status` (JSON), read by `dohd status`: each upstream's state,
 * path, round trips and errors (last minute and since start), the cache, the pins and the
 * listeners. With `--workers N` the primary asks every worker and adds their reports up
 * (`mergeStatus`). The shape is documented in docs/admin-api.md; fields are only ever added.
 */
import { readFileSync } from 'node:fs';
import { formatHostPort } from '../config/address.js';
import { buildPins } from '../stages/pins/stage.js';
import { DohUpstream } from '../upstream/doh/doh.js';
import { DotUpstream } from '../upstream/dot/dot.js';
import { LadderUpstream } from '../upstream/ladder.js';
import { PlainUpstream } from '../upstream/plain/plain.js';
import { mergeCounts, type UpstreamStats, type WindowCounts } from '../upstream/stats.js';
import type { Readiness } from './admin.js';
import type { Daemon } from '../daemon/daemon.js';

export interface UpstreamStatus {
  name: string;
  group: string;
  kind: 'doh' | 'dot' | 'plain';
  /** How it is reached: the URL and the address connected to, or the plain DNS target. */
  path: string;
  /** `in`: asked; `out`: taken out after failures, probed back in. */
  state: 'in' | 'out';
  nextProbeInMs?: number;
  consecutiveFailures: number;
  lastError?: string;
  lastMinute: WindowCounts;
  sinceStart: WindowCounts;
}

export interface PinStatus {
  name: string;
  verify: boolean;
  addresses: { address: string; state: 'verified' | 'failing' | 'unchecked' }[];
}

export interface StatusReport {
  version: string;
  pid: number;
  uptimeS: number;
  workers: number;
  ready: Readiness;
  listeners: string[];
  upstreams: UpstreamStatus[];
  cache: { entries: number; bytes: number; hits: number; misses: number; staleServed: number; prefetches: number; hitRatio: number | null };
  pins: PinStatus[];
}

let version: string | undefined;
export function dohdVersion(): string {
  try {
    version ??= (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    version = 'unknown';
  }
  return version;
}

function pathOf(u: unknown, name: string): { kind: 'doh' | 'dot' | 'plain'; path: string } {
  if (u instanceof LadderUpstream) {
    // A provider reached by several paths: the one queries go to now.
    const r = u.rungs[u.working]!;
    const p = pathOf(r, r.name);
    return { kind: p.kind, path: `${p.path} (path ${u.working + 1} of ${u.rungs.length}: ${r.name})` };
  }
  if (u instanceof DohUpstream) return { kind: 'doh', path: `${u.url.href} via ${u.currentAddress}` };
  if (u instanceof DotUpstream) return { kind: 'dot', path: `${u.url} via ${u.currentAddress}` };
  if (u instanceof PlainUpstream) return { kind: 'plain', path: name };
  return { kind: 'plain', path: name };
}

/** This process's report. */
export async function buildStatus(d: Daemon, stats: UpstreamStats, startedAt: number): Promise<StatusReport> {
  const ready = await d.readiness();
  const health = new Map(d.groups.health.snapshot().map((h) => [h.name, h]));
  const upstreams: UpstreamStatus[] = [];
  for (const [group, g] of d.groups.groups) {
    for (const wrapped of g.upstreams) {
      const raw = d.upstreams.find((u) => u.name === wrapped.name) ?? wrapped;
      const h = health.get(wrapped.name);
      upstreams.push({
        name: wrapped.name,
        group,
        ...pathOf(raw, wrapped.name),
        state: h && !h.up ? 'out' : 'in',
        ...(h?.nextProbeInMs !== undefined ? { nextProbeInMs: Math.round(h.nextProbeInMs) } : {}),
        consecutiveFailures: h?.consecutiveFailures ?? 0,
        ...(h?.lastError ? { lastError: h.lastError } : {}),
        ...stats.windows(wrapped.name),
      });
    }
  }
  const c = d.cacheStage;
  const probes = d.pinHealth?.state() ?? [];
  const pins: PinStatus[] = [...buildPins(d.config)].map(([name, pin]) => ({
    name,
    verify: !!pin.verify,
    addresses: [...pin.v4, ...pin.v6].map((address) => {
      const p = probes.find((x) => x.name === name && x.address === address);
      return { address, state: !p || p.checks === 0 ? 'unchecked' : p.up ? 'verified' : 'failing' };
    }),
  }));
  return {
    version: dohdVersion(),
    pid: process.pid,
    uptimeS: Math.round((Date.now() - startedAt) / 1000),
    workers: 1,
    ready,
    listeners: d.listeners.map((l) => formatHostPort(l.address)),
    upstreams,
    cache: {
      entries: d.cache.size,
      bytes: d.cache.bytes,
      hits: c.hits,
      misses: c.misses,
      staleServed: c.staleServed,
      prefetches: c.prefetches,
      hitRatio: c.hits + c.misses > 0 ? c.hits / (c.hits + c.misses) : null,
    },
    pins,
  };
}

/** The workers' reports as one: counts added up, an upstream `in` when any worker has it in. */
export function mergeStatus(reports: StatusReport[], primary: { pid: number; uptimeS: number }): StatusReport {
  const first = reports[0]!;
  const upstreams = first.upstreams.map((u) => {
    const all = reports.map((r) => r.upstreams.find((x) => x.name === u.name && x.group === u.group)).filter((x): x is UpstreamStatus => !!x);
    const inAny = all.some((x) => x.state === 'in');
    const probes = all.map((x) => x.nextProbeInMs).filter((x): x is number => x !== undefined);
    return {
      ...u,
      state: inAny ? ('in' as const) : ('out' as const),
      ...(inAny || probes.length === 0 ? { nextProbeInMs: undefined } : { nextProbeInMs: Math.min(...probes) }),
      consecutiveFailures: Math.max(...all.map((x) => x.consecutiveFailures)),
      lastMinute: mergeCounts(all.map((x) => x.lastMinute)),
      sinceStart: mergeCounts(all.map((x) => x.sinceStart)),
    };
  });
  const sum = (f: (r: StatusReport) => number) => reports.reduce((n, r) => n + f(r), 0);
  const hits = sum((r) => r.cache.hits);
  const misses = sum((r) => r.cache.misses);
  const notReady = reports.filter((r) => !r.ready.ready);
  return {
    version: first.version,
    pid: primary.pid,
    uptimeS: primary.uptimeS,
    workers: reports.length,
    ready: notReady.length
      ? { ready: false, detail: `${notReady.length} of ${reports.length} workers not ready: ${notReady[0]!.ready.detail}` }
      : { ready: true, detail: `${reports.length} workers ready; ${first.ready.detail}` },
    listeners: first.listeners,
    upstreams: upstreams.map((u) => (u.nextProbeInMs === undefined ? (({ nextProbeInMs: _, ...rest }) => rest)(u) : u)),
    cache: {
      // Every worker keeps a copy of what the others stored: the entries of one, not the sum.
      entries: Math.max(...reports.map((r) => r.cache.entries)),
      bytes: Math.max(...reports.map((r) => r.cache.bytes)),
      hits,
      misses,
      staleServed: sum((r) => r.cache.staleServed),
      prefetches: sum((r) => r.cache.prefetches),
      hitRatio: hits + misses > 0 ? hits / (hits + misses) : null,
    },
    pins: first.pins.map((p) => ({
      ...p,
      addresses: p.addresses.map((a) => {
        const states = reports.map((r) => r.pins.find((x) => x.name === p.name)?.addresses.find((x) => x.address === a.address)?.state);
        return { address: a.address, state: states.includes('verified') ? 'verified' : states.includes('failing') ? 'failing' : 'unchecked' };
      }),
    })),
  };
}
