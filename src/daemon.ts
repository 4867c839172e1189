/**
 * Builds the daemon from a validated config: upstreams, the resolve pipeline, the
 * listeners. Owns start-up and shutdown.
 */
import type { Logger } from 'pino';
import { formatHostPort, parseHostPort, type HostPort } from './config/address.js';
import { staleClientTimeout } from './config/check.js';
import { ConfigError } from './config/load.js';
import type { Config } from './config/schema.js';
import { configTargets, selfTargetProblems } from './config/self-address.js';
import { AnswerCache } from './cache/answer-cache.js';
import { loadCache, saveCache } from './cache/persist.js';
import { HostsFile } from './hosts/hosts-file.js';
import { PinHealth } from './pins/health.js';
import { CacheStage } from './resolver/cache.js';
import { CoalesceStage } from './resolver/coalesce.js';
import { ForwardStage } from './resolver/forward.js';
import { HostsStage } from './resolver/hosts.js';
import { LoopStage } from './resolver/loop.js';
import { Pipeline } from './resolver/pipeline.js';
import { buildPins, PinsStage } from './resolver/pins.js';
import { PolicyStage, policyOptionsFrom } from './resolver/policy.js';
import { RouteStage } from './resolver/route.js';
import type { Stage } from './resolver/types.js';
import { QueryHandler } from './server/handler.js';
import { TcpServer } from './server/tcp.js';
import { UdpServer } from './server/udp.js';
import { ListenError } from './server/bind-error.js';
import { pairByAddress, type InheritedSocket } from './server/socket-activation.js';
import { DohUpstream } from './upstream/doh.js';
import { UpstreamGroups } from './upstream/groups.js';
import { LoopGuard } from './upstream/loop-guard.js';
import { UpstreamReporter } from './upstream/report.js';
import type { Upstream } from './upstream/types.js';

export interface Listener {
  udp: UdpServer;
  tcp: TcpServer;
  address: HostPort;
}

export interface StartOptions {
  /** Sockets handed over by systemd (socket activation): served instead of binding `listen`. */
  inherited?: InheritedSocket[];
}

export class Daemon {
  readonly listeners: Listener[] = [];
  readonly upstreams: Upstream[];
  readonly reporter: UpstreamReporter;
  readonly cache: AnswerCache;
  readonly cacheStage: CacheStage;
  readonly pinsStage: PinsStage;
  readonly policy: PolicyStage;
  readonly coalesceStage: CoalesceStage;
  readonly routeStage: RouteStage;
  readonly groups: UpstreamGroups;
  readonly hostsFile: HostsFile | undefined;
  readonly pinHealth: PinHealth | undefined;
  readonly pipeline: Pipeline;
  readonly handler: QueryHandler;
  /** Forwarding-loop detection; `loopGuard.status()` / `loopGuard.ok` feed readiness. */
  readonly loopGuard: LoopGuard;
  private loopProbe: Promise<void> | null = null;
  private stopped = false;

  constructor(
    readonly config: Config,
    readonly log: Logger,
  ) {
    this.reporter = new UpstreamReporter(log);
    const defaults = config.upstreams.map((u) => new DohUpstream(u, { log }));
    this.loopGuard = new LoopGuard(log);
    this.groups = new UpstreamGroups(config, this.reporter, { default: defaults, log, wrap: (u) => this.loopGuard.wrap(u) });
    this.reporter.add(this.groups.health);
    this.upstreams = this.groups.raw;
    const c = config.cache;
    this.cache = new AnswerCache({
      maxEntries: c.maxEntries,
      maxBytes: c.maxBytes,
      minTtl: c.minTtl,
      maxTtl: c.maxTtl,
      negativeMaxTtl: c.negativeMaxTtl,
      staleWindow: c.staleWindow,
    });
    this.cacheStage = new CacheStage(this.cache, {
      staleTtl: c.staleTtl,
      staleClientTimeoutMs: staleClientTimeout(config),
      staleRecheckMs: c.staleRecheckMs,
      prefetchHits: c.prefetchHits,
      prefetchThreshold: c.prefetchThreshold,
      refreshTimeoutMs: config.timeoutMs,
      log,
    });
    const pins = buildPins(config);
    this.pinHealth = [...pins.values()].some((p) => p.verify) ? new PinHealth(pins, { ...config.pinVerify, log }) : undefined;
    this.pinsStage = new PinsStage(pins, this.pinHealth);
    this.hostsFile = config.hosts ? new HostsFile(config.hosts.file, { pollMs: config.hosts.pollMs, log }) : undefined;
    this.coalesceStage = new CoalesceStage({ timeoutMs: config.timeoutMs });
    this.routeStage = new RouteStage(config.forward);
    this.policy = new PolicyStage(policyOptionsFrom(config));
    // policy → loop → pins → hosts → cache → coalesce → route → forward (upstream group strategy)
    const stages: Stage[] = [this.policy, new LoopStage(this.loopGuard), this.pinsStage];
    if (this.hostsFile) stages.push(new HostsStage(this.hostsFile, config.hosts!.ttl));
    stages.push(this.cacheStage, this.coalesceStage, this.routeStage, new ForwardStage(this.groups.defaultStrategy, this.groups));
    this.pipeline = new Pipeline(stages);
    this.handler = new QueryHandler({
      pipeline: this.pipeline,
      timeoutMs: config.timeoutMs,
      log,
      screenReject: (transport, client, reason, hasReply) => this.policy.screenReject(transport, client, reason, hasReply),
    });
  }

  /** Builds and starts a daemon; on any listen failure everything opened so far is closed again. */
  static async start(config: Config, log: Logger, opts: StartOptions = {}): Promise<Daemon> {
    const d = new Daemon(config, log);
    try {
      d.warmStart();
      d.hostsFile?.start();
      d.pinHealth?.start();
      if (opts.inherited?.length) await d.adopt(opts.inherited);
      else await d.listen();
      // Now that the real addresses are known (port 0, inherited sockets): no upstream may be one of them.
      const problems = selfTargetProblems(d.addresses, configTargets(config));
      if (problems.length) throw new ConfigError(`invalid configuration: ${problems.join('; ')}`, problems);
    } catch (err) {
      await d.stop();
      throw err;
    }
    log.info(
      {
        listen: d.listeners.map((l) => formatHostPort(l.address)),
        upstreams: d.upstreams.map((u) => (u instanceof DohUpstream ? { name: u.name, url: u.url.href, bootstrap: u.addresses } : { name: u.name })),
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
    if (config.loopProbe) {
      d.loopProbe = d.loopGuard.probe(d.upstreams).catch((err: unknown) => log.warn({ err }, 'loop probe failed'));
    }
    return d;
  }

  /** Serves on sockets systemd handed over, UDP and TCP per address, instead of binding. */
  private async adopt(inherited: InheritedSocket[]): Promise<void> {
    for (const pair of pairByAddress(inherited)) {
      const l: Listener = { udp: new UdpServer(this.handler, pair.address), tcp: new TcpServer(this.handler, pair.address, this.config.tcp), address: pair.address };
      this.listeners.push(l); // closed by stop() if anything below fails
      await l.udp.listen(pair.udp.fd);
      await l.tcp.listen(pair.tcp.fd);
    }
    this.log.info(
      {
        sockets: inherited.map((s) => ({ fd: s.fd, name: s.name, proto: s.proto, address: formatHostPort(s.address) })),
        unusedListen: this.config.listen,
      },
      'socket activation: serving on the sockets systemd passed (the "listen" setting is not used)',
    );
  }

  private async listen(): Promise<void> {
    for (const text of this.config.listen) {
      const addr = parseHostPort(text);
      if (typeof addr === 'string') throw new ListenError(addr, 'EINVAL');
      this.listeners.push(await this.listenOne(addr));
    }
  }

  /** UDP and TCP on one address; port 0 picks one free port that both protocols get. */
  private async listenOne(addr: HostPort): Promise<Listener> {
    for (let attempt = 0; ; attempt++) {
      const udp = new UdpServer(this.handler, addr);
      const bound = await udp.listen();
      const tcp = new TcpServer(this.handler, { ...addr, port: bound.port }, this.config.tcp);
      try {
        await tcp.listen();
        return { udp, tcp, address: { ...addr, port: bound.port } };
      } catch (err) {
        await udp.close();
        if (addr.port !== 0 || attempt >= 20 || (err as ListenError).code !== 'EADDRINUSE') throw err;
      }
    }
  }

  /** Bound addresses (with the real ports when 0 was asked for). */
  get addresses(): HostPort[] {
    return this.listeners.map((l) => l.address);
  }

  /** Loads the saved cache (`cache.file`), if there is one; a bad file is logged and ignored. */
  private warmStart(): void {
    const file = this.config.cache.file;
    if (!file || !this.cache.enabled) return;
    try {
      const r = loadCache(this.cache, file);
      this.log.info({ file, ...r }, 'cache loaded');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') this.log.info({ file }, 'no saved cache yet');
      else this.log.warn({ file, err: code ?? (err as Error).message }, 'saved cache unusable; starting empty');
    }
  }

  private saveCache(): void {
    const file = this.config.cache.file;
    if (!file || !this.cache.enabled) return;
    try {
      const entries = saveCache(this.cache, file);
      this.log.info({ file, entries }, 'cache saved');
    } catch (err) {
      this.log.warn({ file, err: (err as NodeJS.ErrnoException).code ?? (err as Error).message }, 'could not save the cache');
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.loopGuard.stop();
    await this.loopProbe;
    await Promise.all(this.listeners.flatMap((l) => [l.udp.close(), l.tcp.close()]));
    this.cacheStage.close();
    this.pinHealth?.close();
    this.hostsFile?.close();
    if (this.listeners.length) this.saveCache();
    await this.groups.close();
  }
}
