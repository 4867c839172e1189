/**
 * Builds the daemon from a validated config: upstream groups, the resolve pipeline, the
 * listeners, the admin listener. Owns start-up, reload (SIGHUP), drain and shutdown.
 */
import dnsPacket from 'dns-packet';
import type { Logger } from 'pino';
import { formatHostPort, parseHostPort, type HostPort } from '../config/address.js';
import { staleClientTimeout } from '../config/check.js';
import { DEFAULT_ADMIN_LISTEN } from '../config/defaults.js';
import { ConfigError } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { configTargets, selfTargetProblems } from '../stages/loop/self-address.js';
import { AnswerCache } from '../stages/cache/answer-cache.js';
import { saveAtStop, warmStart } from '../stages/cache/persist.js';
import { decodeQuery } from '../dns/message.js';
import { explainAnswer } from '../server/explain.js';
import { answerObserver } from '../server/query-log.js';
import { buildUpstreamQuery } from '../dns/upstream-query.js';
import { HostsFile } from '../stages/hosts/hosts-file.js';
import { setLogFormat } from '../log/log.js';
import { Metrics } from '../metrics/metrics.js';
import { MetricSources } from '../metrics/metric-sources.js';
import { PinHealth } from '../stages/pins/health.js';
import { effectiveConfig, planReload, type ReloadPlan } from './reload.js';
import { CacheStage } from '../stages/cache/stage.js';
import { CoalesceStage } from '../stages/coalesce/stage.js';
import { ForwardStage } from '../stages/forward/stage.js';
import { HostsStage } from '../stages/hosts/stage.js';
import { LoopStage } from '../stages/loop/stage.js';
import { Pipeline } from '../pipeline/pipeline.js';
import { buildPins, PinsStage } from '../stages/pins/stage.js';
import { PolicyStage, policyOptionsFrom } from '../stages/admission/stage.js';
import { RouteStage } from '../stages/forward/route.js';
import { LocalZonesStage } from '../stages/local-zones/stage.js';
import type { Stage } from '../pipeline/types.js';
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import { openAdmin, type AdminServer, type Readiness } from '../server/admin.js';
import { buildStatus, type StatusReport } from '../server/status.js';
import { UpstreamStats } from '../upstream/stats.js';
import { ListenError } from '../server/bind-error.js';
import { errorKind, QueryHandler } from '../server/handler.js';
import { registerUdpDrops } from '../server/udp-drops.js';
import { pairByAddress, type InheritedSocket } from '../server/socket-activation.js';
import { TcpServer } from '../server/tcp.js';
import { UdpServer } from '../server/udp.js';
import { DohUpstream } from '../upstream/doh/doh.js';
import { DotUpstream } from '../upstream/dot/dot.js';
import { LadderUpstream } from '../upstream/ladder.js';
import { PresetHint, usesDefaultPreset } from '../upstream/preset-hint.js';
import { buildSecureUpstream, UpstreamGroups } from '../upstream/strategies/groups.js';
import { LoopGuard } from '../stages/loop/probe.js';
import { UpstreamReporter } from '../upstream/report.js';
import type { Upstream } from '../upstream/types.js';
import type { UpstreamError } from '../upstream/errors.js';

export interface Listener {
  udp: UdpServer;
  tcp: TcpServer;
  address: HostPort;
}

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

export interface ReloadOutcome extends ReloadPlan {
  ok: boolean;
  error?: string;
}

/** Keys that rebuild the upstream groups, routing and strategies when they change on reload. */
const UPSTREAM_KEYS = ['upstreams', 'strategy', 'groups', 'forward', 'fallback', 'hedge', 'failover', 'health', 'ladder'];

export class Daemon {
  readonly listeners: Listener[] = [];
  readonly reporter: UpstreamReporter;
  readonly metrics: Metrics;
  readonly handler: QueryHandler;
  readonly policy: PolicyStage;
  /** Forwarding-loop detection; `loopGuard.status()` / `loopGuard.ok` feed readiness. */
  readonly loopGuard: LoopGuard;
  readonly hostsFile: HostsFile | undefined;
  groups!: UpstreamGroups;
  /** Every upstream transport (DoH, plain) of every group. */
  upstreams: Upstream[] = [];
  cache!: AnswerCache;
  cacheStage!: CacheStage;
  pinsStage!: PinsStage;
  pinHealth: PinHealth | undefined;
  coalesceStage!: CoalesceStage;
  routeStage!: RouteStage;
  localZones!: LocalZonesStage;
  forwardStage!: ForwardStage;
  pipeline!: Pipeline;
  admin: AdminServer | null = null;
  /** Round trips and errors per upstream, for `dohd status`. */
  readonly stats = new UpstreamStats();
  private readonly startedAt = Date.now();
  private readonly sources: MetricSources;
  private loopProbe: Promise<void> | null = null;
  private stopped = false;
  private draining = false;
  private readonly shutdownHooks: ShutdownHook[] = [];
  /** Upstream groups replaced by a reload, closed once the queries using them are done. */
  private readonly retired = new Map<NodeJS.Timeout, UpstreamGroups>();
  private probing: Promise<void> | null = null;
  /** `listen` addresses no interface had at start-up, by address: their retry timer. */
  private readonly pending = new Map<string, NodeJS.Timeout>();

  constructor(
    public config: Config,
    readonly log: Logger,
    private readonly clock: () => number = Date.now,
  ) {
    this.reporter = new UpstreamReporter(log);
    this.loopGuard = new LoopGuard(log);
    this.policy = new PolicyStage(policyOptionsFrom(config));
    this.hostsFile = config.hosts ? new HostsFile(config.hosts.file, { pollMs: config.hosts.pollMs, log }) : undefined;
    this.buildUpstreams(config);
    this.buildCache(config);
    this.buildPins(config);
    this.coalesceStage = new CoalesceStage({ timeoutMs: config.timeoutMs });
    this.metrics = new Metrics({ inflight: () => this.handler.inflight, cacheEntries: () => this.cache.size });
    this.sources = new MetricSources(this.metrics);
    registerUdpDrops(this.metrics.registry, () =>
      this.listeners.flatMap((l) => (l.udp.port === undefined ? [] : [{ listen: formatHostPort({ ...l.address, port: l.udp.port }), port: l.udp.port }])),
    );
    this.reporter.add(this.metrics.upstreamObserver);
    this.reporter.add(this.stats);
    // After health (added in buildUpstreams): it reads whether every default upstream is out.
    this.reporter.add(
      new PresetHint(
        log,
        () => this.groups.health.allDown(this.groups.groups.get('default')?.upstreams ?? []),
        () => usesDefaultPreset(this.config.upstreams),
      ),
    );
    this.pipeline = this.composePipeline();
    this.handler = new QueryHandler({
      pipeline: this.pipeline,
      timeoutMs: config.timeoutMs,
      log,
      screenReject: (transport, client, reason, hasReply) => this.policy.screenReject(transport, client, reason, hasReply),
      onAnswer: answerObserver(this.metrics, log, () => this.config.log.queries),
      onReject: (transport, reason) => this.metrics.reject(transport, reason),
      onInternalError: (where, err) => this.metrics.internalError(where, errorKind(err)),
      decorate: explainAnswer,
    });
  }

  /** admission → loop → pins → hosts → local zones → cache → coalesce → route → forward (upstream group strategy) */
  private composePipeline(): Pipeline {
    const stages: Stage[] = [this.policy, new LoopStage(this.loopGuard), this.pinsStage];
    if (this.hostsFile) stages.push(new HostsStage(this.hostsFile, this.config.hosts!.ttl));
    const route = this.routeStage;
    this.localZones = new LocalZonesStage(this.config.localZones, (lname) => route.groupFor(lname) !== undefined);
    stages.push(this.localZones, this.cacheStage, this.coalesceStage, this.routeStage, this.forwardStage);
    return new Pipeline(stages);
  }

  /** Failures of the paths inside a ladder (metrics only: health and logs see the provider). */
  private readonly pathObserver = { failure: (u: Upstream, err: UpstreamError, ms: number) => this.metrics?.upstreamObserver.failure(u, err, ms) };

  private buildUpstreams(config: Config): void {
    const guard = { onRestart: (upstream: string, reason: string) => this.metrics.upstreamRestart(upstream, reason) };
    const defaults = config.upstreams.map((u) => buildSecureUpstream(u, { log: this.log, ladder: config.ladder, observer: this.pathObserver, guard }));
    this.groups = new UpstreamGroups(config, this.reporter, { default: defaults, log: this.log, wrap: (u) => this.loopGuard.wrap(u), guard });
    this.reporter.add(this.groups.health);
    this.upstreams = this.groups.raw;
    this.routeStage = new RouteStage(config.forward);
    this.forwardStage = new ForwardStage(this.groups.defaultStrategy, this.groups);
  }

  private buildCache(config: Config): void {
    const c = config.cache;
    this.cache = new AnswerCache({
      maxEntries: c.maxEntries,
      maxBytes: c.maxBytes,
      minTtl: c.minTtl,
      maxTtl: c.maxTtl,
      negativeMaxTtl: c.negativeMaxTtl,
      staleWindow: c.staleWindow,
      now: this.clock,
    });
    this.cacheStage = new CacheStage(this.cache, {
      staleTtl: c.staleTtl,
      staleClientTimeoutMs: staleClientTimeout(config),
      staleRecheckMs: c.staleRecheckMs,
      prefetchHits: c.prefetchHits,
      prefetchThreshold: c.prefetchThreshold,
      refreshTimeoutMs: config.timeoutMs,
      log: this.log,
      now: this.clock,
    });
  }

  private buildPins(config: Config): void {
    const pins = buildPins(config);
    this.pinHealth = [...pins.values()].some((p) => p.verify) ? new PinHealth(pins, { ...config.pinVerify, log: this.log }) : undefined;
    this.pinsStage = new PinsStage(pins, this.pinHealth);
  }

  /** Builds and starts a daemon; on any listen failure everything opened so far is closed again. */
  static async start(config: Config, log: Logger, opts: StartOptions = {}): Promise<Daemon> {
    const d = new Daemon(config, log, opts.clock);
    try {
      if (d.config.cache.file && d.cache.enabled) warmStart(d.cache, d.config.cache.file, d.log);
      d.hostsFile?.start();
      d.pinHealth?.start();
      if (opts.inherited?.length) await d.adopt(opts.inherited);
      else await d.listen();
      // Now that the real addresses are known (port 0, inherited sockets): no upstream may be one of them.
      const problems = selfTargetProblems(d.addresses, configTargets(config), { warn: (msg, error) => log.warn({ error }, msg) });
      if (problems.length) throw new ConfigError(`invalid configuration: ${problems.join('; ')}`, problems);
      if (!opts.noAdmin) await d.startAdmin();
    } catch (err) {
      await d.stop();
      throw err;
    }
    log.info(
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
    if (config.loopProbe) {
      d.loopProbe = d.loopGuard.probe(d.upstreams).catch((err: unknown) => log.warn({ err }, 'loop probe failed'));
    }
    return d;
  }

  /** Serves on sockets systemd handed over, UDP and TCP per address, instead of binding. */
  private async adopt(inherited: InheritedSocket[]): Promise<void> {
    for (const pair of pairByAddress(inherited)) {
      const l: Listener = { udp: new UdpServer(this.handler, pair.address, { ...this.config.udp, log: this.log }), tcp: new TcpServer(this.handler, pair.address, this.config.tcp), address: pair.address };
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

  /**
   * Binds every listen address. One that no interface has yet is awaited (awaitAddress) as
   * long as dohd answers somewhere else; when none can be bound at all, start-up fails with
   * the first address's error (a typo must not leave a daemon that answers nowhere).
   */
  private async listen(): Promise<void> {
    const missing: { addr: HostPort; err: ListenError }[] = [];
    for (const text of this.config.listen) {
      const addr = parseHostPort(text);
      if (typeof addr === 'string') throw new ListenError(addr, 'EINVAL');
      try {
        this.listeners.push(await this.listenOne(addr));
      } catch (err) {
        if ((err as ListenError).code !== 'EADDRNOTAVAIL' || this.config.listenRetryMs === 0) throw err;
        missing.push({ addr, err: err as ListenError });
      }
    }
    if (missing.length > 0 && this.listeners.length === 0) throw missing[0]!.err;
    for (const m of missing) this.awaitAddress(m.addr, m.err.message);
  }

  /**
   * An address no interface has yet (a bridge that comes up after dohd, such as docker0): bound
   * as soon as it appears, retried every listenRetryMs, said once in the log each way.
   */
  private awaitAddress(addr: HostPort, why: string): void {
    const where = formatHostPort(addr);
    const retry = async () => {
      if (this.stopped || this.draining) return;
      try {
        const l = await this.listenOne(addr);
        if (this.stopped || this.draining) {
          await Promise.all([l.udp.close(), l.tcp.close()]);
          return;
        }
        this.pending.delete(where);
        this.listeners.push(l);
        this.log.info({ listen: formatHostPort(l.address) }, 'listen address appeared: now listening on it');
      } catch (err) {
        if (this.stopped || this.draining) return;
        if ((err as ListenError).code !== 'EADDRNOTAVAIL') {
          this.pending.delete(where);
          this.log.error({ listen: where, err: (err as Error).message }, 'listen address appeared but cannot be bound; not retried');
          return;
        }
        this.pending.set(where, setTimeout(() => void retry(), this.config.listenRetryMs));
      }
    };
    this.pending.set(where, setTimeout(() => void retry(), this.config.listenRetryMs));
    this.log.warn(
      { listen: where, retryMs: this.config.listenRetryMs },
      `${why} yet: serving on the other addresses and binding it once it appears (a bridge such as docker0 comes up with its runtime); listenRetryMs: 0 makes this fatal`,
    );
  }

  /** UDP and TCP on one address; port 0 picks one free port that both protocols get. */
  private async listenOne(addr: HostPort): Promise<Listener> {
    for (let attempt = 0; ; attempt++) {
      const udp = new UdpServer(this.handler, addr, { ...this.config.udp, log: this.log });
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

  /** The admin listener (server/admin.ts openAdmin): `/metrics`, `/healthz`, `/readyz`, `/status`. */
  private async startAdmin(): Promise<void> {
    this.admin = await openAdmin(
      this.config.admin,
      {
        metrics: async () => {
          this.sources.sync(this);
          return { body: await this.metrics.render(), contentType: this.metrics.contentType };
        },
        readiness: () => this.readiness(),
        status: () => this.status(),
      },
      this.log,
      DEFAULT_ADMIN_LISTEN,
    );
  }

  /** What `GET /status` and `dohd status` show (server/status.ts). */
  status(): Promise<StatusReport> {
    return buildStatus(this, this.stats, this.startedAt);
  }

  /** Metrics as prom-client JSON (this daemon's families and the process's), for the primary to add up across workers. */
  async metricsJson(): Promise<MetricObjectWithValues<MetricValue<string>>[]> {
    this.sources.sync(this);
    return this.metrics.json();
  }

  /**
   * Ready when listening and able to answer: an upstream has answered, or pins are loaded,
   * and no forwarding loop was found. When no upstream has answered yet, one probe query
   * (". NS") is sent through the upstreams and awaited (bounded by timeoutMs), so readiness
   * does not wait for client traffic.
   */
  async readiness(): Promise<Readiness> {
    if (this.draining || this.stopped) return { ready: false, detail: 'shutting down' };
    if (this.listeners.length === 0) return { ready: false, detail: this.pending.size ? `waiting for ${[...this.pending.keys()].join(', ')} to appear` : 'not listening' };
    const listening =
      `listening on ${this.listeners.map((l) => formatHostPort(l.address)).join(', ')}` +
      (this.pending.size ? ` (waiting for ${[...this.pending.keys()].join(', ')} to appear)` : '');
    const loop = this.loopGuard.status();
    if (!this.loopGuard.ok) {
      return { ready: false, detail: `${listening}; forwarding loop through ${loop.loops.map((l) => l.upstream).join(', ')} (see the log)` };
    }
    const pins = Object.keys(this.config.pins).length;
    const answeredNow = () => this.upstreams.filter((u) => this.reporter.answered.has(u.name)).map((u) => u.name);
    let answered = answeredNow();
    if (answered.length === 0) {
      // With pins loaded dohd can answer already: probe in the background, do not wait.
      const probe = this.probeUpstreams();
      if (pins === 0) {
        await probe;
        answered = answeredNow();
      }
    }
    if (answered.length > 0) return { ready: true, detail: `${listening}; upstream ${answered.join(', ')} answering` };
    if (pins > 0) return { ready: true, detail: `${listening}; no upstream has answered yet, ${pins} pins loaded` };
    return { ready: false, detail: `${listening}; no upstream has answered yet (see the log for why)` };
  }

  /** One ". NS" query through the default group; concurrent callers share it. */
  private probeUpstreams(): Promise<void> {
    this.probing ??= (async () => {
      const decoded = decodeQuery(
        dnsPacket.encode({ type: 'query', id: 0, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name: '.', type: 'NS', class: 'IN' }] }),
      );
      if (!decoded.ok) return;
      const ac = new AbortController();
      const timer = setTimeout(() => ac.abort(), this.config.timeoutMs);
      try {
        await this.groups.defaultStrategy.resolve(buildUpstreamQuery(decoded.query), decoded.query, ac.signal);
      } catch {
        /* the reporter has logged why */
      } finally {
        clearTimeout(timer);
        this.probing = null;
      }
    })();
    return this.probing;
  }

  /**
   * Applies a new configuration. Upstreams and everything routing to them, the timeout, the
   * cache, pins, policy and log settings take effect now; keys that need a restart (listen,
   * admin, tcp, hosts, ...) keep their running value and the returned plan names them.
   */
  reload(next: Config): ReloadOutcome {
    const plan = planReload(this.config, next);
    const changed = (...keys: string[]) => keys.some((k) => plan.live.includes(k));
    try {
      // Count what the stages about to be replaced saw since the last scrape.
      this.sources.sync(this);
      const prev = { groups: this.groups, cacheStage: this.cacheStage, pinHealth: this.pinHealth };
      // timeoutMs too: every strategy lets the losers of a query linger until its deadline.
      if (changed(...UPSTREAM_KEYS, 'timeoutMs')) this.buildUpstreams(next);
      if (changed('cache', 'timeoutMs')) this.buildCache(next);
      if (changed('pins', 'pinTtl', 'pinVerify')) this.buildPins(next);
      if (changed('timeoutMs')) this.coalesceStage = new CoalesceStage({ timeoutMs: next.timeoutMs });
      if (changed('acl', 'rateLimit', 'ecs', 'any')) this.policy.update(policyOptionsFrom(next));
      this.config = effectiveConfig(this.config, next, plan);
      this.pipeline = this.composePipeline();
      this.handler.update({ pipeline: this.pipeline, timeoutMs: this.config.timeoutMs });
      if (changed('log')) {
        this.log.level = next.log.level;
        setLogFormat(this.log, next.log.format);
      }
      if (this.groups !== prev.groups) {
        this.reporter.remove(prev.groups.health);
        for (const name of [...this.reporter.answered]) if (!this.upstreams.some((u) => u.name === name)) this.reporter.answered.delete(name);
        const t = setTimeout(() => {
          this.retired.delete(t);
          void prev.groups.close();
        }, this.config.timeoutMs + 1000);
        t.unref();
        this.retired.set(t, prev.groups);
      }
      if (this.cacheStage !== prev.cacheStage) prev.cacheStage.close();
      if (this.pinHealth !== prev.pinHealth) {
        prev.pinHealth?.close();
        this.pinHealth?.start();
        this.metrics.resetPins();
      }
      this.metrics.reload(true);
      return { ok: true, ...plan };
    } catch (err) {
      this.metrics.reload(false);
      return { ok: false, error: (err as Error).message, ...plan };
    }
  }

  /** Registers work for a clean shutdown (after in-flight queries). */
  onShutdown(hook: ShutdownHook): void {
    this.shutdownHooks.push(hook);
  }

  /**
   * Clean shutdown: stop accepting (UDP ignores new queries, TCP takes no new connections or
   * queries), let queries in flight be answered (bounded: they all end by their deadline),
   * save the cache, run the shutdown hooks, close everything. Returns how many queries were
   * still unanswered.
   */
  async drain(boundMs = this.config.timeoutMs + 1000): Promise<{ unfinished: number }> {
    this.draining = true;
    for (const l of this.listeners) {
      l.udp.stopAccepting();
      l.tcp.stopAccepting();
    }
    const until = Date.now() + boundMs;
    while (this.handler.inflight > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    const unfinished = this.handler.inflight;
    await this.stop();
    for (const hook of this.shutdownHooks) {
      try {
        await hook(this.log);
      } catch (err) {
        this.log.error({ err }, 'shutdown step failed');
      }
    }
    return { unfinished };
  }

  /** Bound addresses (with the real ports when 0 was asked for). */
  get addresses(): HostPort[] {
    return this.listeners.map((l) => l.address);
  }

  /** Loads the saved cache (`cache.file`), if there is one; a bad file is logged and ignored. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of this.pending.values()) clearTimeout(t);
    this.pending.clear();
    this.loopGuard.stop();
    await this.loopProbe;
    await Promise.all([...this.listeners.flatMap((l) => [l.udp.close(), l.tcp.close()]), this.admin?.close()]);
    this.cacheStage.close();
    this.pinHealth?.close();
    this.hostsFile?.close();
    if (this.listeners.length && this.config.cache.file && this.cache.enabled) saveAtStop(this.cache, this.config.cache.file, this.log);
    const retired = [...this.retired].map(([t, g]) => {
      clearTimeout(t);
      return g;
    });
    this.retired.clear();
    this.reporter.stop(); // requests still lingering fail because they are closed now: not upstream failures
    await Promise.all([this.groups.close(), ...retired.map((g) => g.close())]);
  }
}
