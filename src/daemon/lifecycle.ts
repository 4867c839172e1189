/**
 * The daemon's start-up (warm cache, listeners, self-address check, admin listener, loop
 * probe) and its end: drain (answer what is in flight, then stop) and stop (close everything,
 * save the cache).
 */
import type { Logger } from 'pino';
import { formatHostPort } from '../config/address.js';
import { DEFAULT_ADMIN_LISTEN } from '../config/defaults.js';
import { ConfigError } from '../config/load.js';
import { openAdmin } from '../server/admin.js';
import type { InheritedSocket } from '../server/socket-activation.js';
import { saveAtStop, warmStart } from '../stages/cache/persist.js';
import { configTargets, selfTargetProblems } from '../config/self-address.js';
import { DohUpstream } from '../upstream/doh/doh.js';
import { DotUpstream } from '../upstream/dot/dot.js';
import { LadderUpstream } from '../upstream/ladder.js';
import type { Daemon } from './daemon.js';

export interface StartOptions {
  /** Sockets handed over by systemd (socket activation): served instead of binding `listen`. */
  inherited?: InheritedSocket[];
  /** No admin listener: a worker of `--workers N`, whose primary owns it (workers.ts). */
  noAdmin?: boolean;
  /** The cache's wall clock (ms since the epoch); tests pass a manual one instead of waiting out TTLs. */
  clock?: () => number;
}

/** Run on clean shutdown, after in-flight queries are answered. */
export type ShutdownHook = (log: Logger) => Promise<void> | void;

/** Starts a built daemon; on any listen failure everything opened so far is closed again. */
export async function startUp(d: Daemon, opts: StartOptions): Promise<void> {
  const { config, log } = d;
  try {
    if (config.cache.file && d.cache.enabled) warmStart(d.cache, config.cache.file, log);
    d.hostsFile?.start();
    d.pinHealth?.start();
    if (opts.inherited?.length) await d.listenerSet.adopt(opts.inherited);
    else await d.listenerSet.listen();
    // Now that the real addresses are known (port 0, inherited sockets): no upstream may be one of them.
    const problems = selfTargetProblems(d.addresses, configTargets(config), { warn: (msg, error) => log.warn({ error }, msg) });
    if (problems.length) throw new ConfigError(`invalid configuration: ${problems.join('; ')}`, problems);
    if (!opts.noAdmin) await startAdmin(d);
  } catch (err) {
    await stop(d);
    throw err;
  }
  logStarted(d);
  if (config.loopProbe) {
    d.loopProbe = d.loopGuard.probe(d.upstreams).catch((err: unknown) => log.warn({ err }, 'loop probe failed'));
  }
}

/** The admin listener (server/admin.ts openAdmin): `/metrics`, `/healthz`, `/readyz`, `/status`. */
async function startAdmin(d: Daemon): Promise<void> {
  d.admin = await openAdmin(
    d.config.admin,
    {
      metrics: async () => {
        d.sources.sync(d);
        return { body: await d.metrics.render(), contentType: d.metrics.contentType };
      },
      readiness: () => d.readiness(),
      status: () => d.status(),
    },
    d.log,
    DEFAULT_ADMIN_LISTEN,
  );
}

/** The "dohd listening" line: where it answers, and what it forwards to. */
function logStarted(d: Daemon): void {
  const config = d.config;
  d.log.info(
    {
      listen: d.listeners.map((l) => formatHostPort(l.address)),
      admin: d.admin?.bound ?? null,
      upstreams: d.upstreams.map((u) =>
        u instanceof DohUpstream
          ? { name: u.name, url: u.url.href, bootstrap: u.addresses }
          : u instanceof DotUpstream
            ? { name: u.name, url: u.url, bootstrap: u.addresses }
            : u instanceof LadderUpstream
              ? { name: u.name, paths: u.rungs.map((r) => r.name) }
              : { name: u.name },
      ),
      pins: Object.keys(config.pins).length,
      ...(config.strategy !== 'race' ? { strategy: config.strategy } : {}),
      ...(Object.keys(config.groups).length
        ? { groups: Object.fromEntries([...d.groups.groups].filter(([n]) => n !== 'default').map(([n, g]) => [n, g.upstreams.map((u) => u.name)])) }
        : {}),
      ...(config.fallback ? { fallback: config.fallback } : {}),
      ...(config.hosts ? { hosts: config.hosts.file } : {}),
    },
    'dohd listening',
  );
}

/**
 * Clean shutdown: stop accepting (UDP ignores new queries, TCP takes no new connections or
 * queries), let queries in flight be answered (bounded: they all end by their deadline),
 * save the cache, run the shutdown hooks, close everything. Returns how many queries were
 * still unanswered.
 */
export async function drain(d: Daemon, boundMs: number): Promise<{ unfinished: number }> {
  d.draining = true;
  d.listenerSet.stopAccepting();
  const until = Date.now() + boundMs;
  while (d.handler.inflight > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
  const unfinished = d.handler.inflight;
  await stop(d);
  for (const hook of d.shutdownHooks) {
    try {
      await hook(d.log);
    } catch (err) {
      d.log.error({ err }, 'shutdown step failed');
    }
  }
  return { unfinished };
}

/** Closes everything (listeners, admin, stages, upstream groups) and saves the cache (`cache.file`). */
export async function stop(d: Daemon): Promise<void> {
  if (d.stopped) return;
  d.stopped = true;
  d.listenerSet.stopWaiting();
  d.loopGuard.stop();
  await d.loopProbe;
  await Promise.all([...d.listenerSet.closeEach(), d.admin?.close()]);
  d.cacheStage.close();
  d.pinHealth?.close();
  d.hostsFile?.close();
  if (d.listeners.length && d.config.cache.file && d.cache.enabled) saveAtStop(d.cache, d.config.cache.file, d.log);
  const retired = [...d.retired].map(([t, g]) => {
    clearTimeout(t);
    return g;
  });
  d.retired.clear();
  d.reporter.stop(); // requests still lingering fail because they are closed now: not upstream failures
  await Promise.all([d.groups.close(), ...retired.map((g) => g.close())]);
}
