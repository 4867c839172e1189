/**
 * The daemon: its parts, built from a validated config (compose.ts), and its public face for
 * the CLI and tests. The jobs live beside it: listeners.ts (bind, socket activation, awaiting
 * addresses), readiness.ts, reload.ts (SIGHUP), lifecycle.ts (start-up, drain, stop).
 */
import type { Logger } from 'pino';
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import { formatHostPort, type HostPort } from '../config/address.js';
import type { Config } from '../config/schema.js';
import { Metrics } from '../metrics/metrics.js';
import { MetricSources } from '../metrics/metric-sources.js';
import type { Pipeline } from '../pipeline/pipeline.js';
import type { AdminServer, Readiness } from '../server/admin.js';
import { explainAnswer } from '../server/explain.js';
import { errorKind, QueryHandler } from '../server/handler.js';
import { answerObserver } from '../server/query-log.js';
import { buildStatus, type StatusReport } from '../server/status.js';
import { registerUdpDrops } from '../server/udp-drops.js';
import { policyOptionsFrom } from '../stages/admission/setup.js';
import { PolicyStage } from '../stages/admission/stage.js';
import type { AnswerCache } from '../stages/cache/answer-cache.js';
import type { CacheStage } from '../stages/cache/stage.js';
import { CoalesceStage } from '../stages/coalesce/stage.js';
import type { RouteStage } from '../stages/forward/route.js';
import type { ForwardStage } from '../stages/forward/stage.js';
import { HostsFile } from '../stages/hosts/hosts-file.js';
import type { LocalZonesStage } from '../stages/local-zones/stage.js';
import { LoopGuard } from '../stages/loop/probe.js';
import type { PinHealth } from '../stages/pins/health.js';
import type { PinsStage } from '../stages/pins/stage.js';
import type { UpstreamError } from '../upstream/errors.js';
import { PresetHint, usesDefaultPreset } from '../upstream/preset-hint.js';
import { UpstreamReporter } from '../upstream/report.js';
import { UpstreamStats } from '../upstream/stats.js';
import type { UpstreamGroups } from '../upstream/strategies/groups.js';
import type { Upstream } from '../upstream/types.js';
import { CacheShare, type CacheMessage } from '../stages/cache/relay.js';
import { buildCache } from '../stages/cache/setup.js';
import { buildCoalesce } from '../stages/coalesce/setup.js';
import { buildUpstreams } from '../stages/forward/setup.js';
import { buildPinsStage } from '../stages/pins/setup.js';
import { composePipeline } from './compose.js';
import { drain, startUp, stop, type ShutdownHook, type StartOptions } from './lifecycle.js';
import { Listeners, type Listener } from './listeners.js';
import { ReadinessCheck } from './readiness.js';
import { applyReload, type ReloadOutcome } from './reload.js';

export type { Listener } from './listeners.js';
export type { ShutdownHook, StartOptions } from './lifecycle.js';
export type { ReloadOutcome } from './reload.js';

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
  /** Every upstream transport (DoH, DoT, plain) of every group. */
  upstreams: Upstream[] = [];
  cache!: AnswerCache;
  cacheStage!: CacheStage;
  /** Set in a worker: what shares the cache with the other workers. */
  private cacheShare: CacheShare | undefined;
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

  // Internal state, shared with the daemon's job modules (lifecycle.ts, reload.ts, readiness.ts).
  /** @internal */ readonly listenerSet: Listeners;
  /** @internal */ readonly sources: MetricSources;
  /** @internal */ loopProbe: Promise<void> | null = null;
  /** @internal */ stopped = false;
  /** @internal */ draining = false;
  /** @internal */ readonly shutdownHooks: ShutdownHook[] = [];
  /** Upstream groups replaced by a reload, closed once the queries using them are done. @internal */
  readonly retired = new Map<NodeJS.Timeout, UpstreamGroups>();
  private readonly startedAt = Date.now();
  private readonly ready = new ReadinessCheck(this);

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
    this.coalesceStage = buildCoalesce(config);
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
    this.composePipeline();
    this.handler = new QueryHandler({
      pipeline: this.pipeline,
      timeoutMs: config.timeoutMs,
      maxInflight: config.maxInflight,
      log,
      screenReject: (transport, client, reason, hasReply) => this.policy.screenReject(transport, client, reason, hasReply),
      onAnswer: answerObserver(this.metrics, log, () => this.config.log.queries),
      onReject: (transport, reason) => this.metrics.reject(transport, reason),
      onInternalError: (where, err) => this.metrics.internalError(where, errorKind(err)),
      decorate: explainAnswer,
    });
    this.listenerSet = new Listeners(this.listeners, this.handler, () => this.config, log, () => this.stopped || this.draining);
  }

  /** Builds and starts a daemon; on any listen failure everything opened so far is closed again. */
  static async start(config: Config, log: Logger, opts: StartOptions = {}): Promise<Daemon> {
    const d = new Daemon(config, log, opts.clock);
    await startUp(d, opts);
    return d;
  }

  /** (Re)composes the pipeline from the current parts (compose.ts). @internal */
  composePipeline(): void {
    ({ pipeline: this.pipeline, localZones: this.localZones } = composePipeline(this.config, this));
  }

  /** Failures of the paths inside a ladder (metrics only: health and logs see the provider). */
  private readonly pathObserver = { failure: (u: Upstream, err: UpstreamError, ms: number) => this.metrics?.upstreamObserver.failure(u, err, ms) };

  /** @internal */
  buildUpstreams(config: Config): void {
    const guard = { onRestart: (upstream: string, reason: string) => this.metrics.upstreamRestart(upstream, reason) };
    ({ groups: this.groups, upstreams: this.upstreams, routeStage: this.routeStage, forwardStage: this.forwardStage } = buildUpstreams(config, {
      log: this.log,
      reporter: this.reporter,
      loopGuard: this.loopGuard,
      pathObserver: this.pathObserver,
      guard,
    }));
  }

  /** @internal */
  buildCache(config: Config): void {
    ({ cache: this.cache, cacheStage: this.cacheStage } = buildCache(config, this.log, this.clock));
    this.cacheShare?.attach(this.cache);
  }

  /** In a worker (`--workers N`): shares this cache, and every one a reload builds, with the other workers. */
  shareCache(send: (msg: CacheMessage) => void): CacheShare {
    this.cacheShare = new CacheShare(send);
    this.cacheShare.attach(this.cache);
    return this.cacheShare;
  }

  /** @internal */
  buildPins(config: Config): void {
    ({ pinsStage: this.pinsStage, pinHealth: this.pinHealth } = buildPinsStage(config, this.log));
  }

  /** `listen` addresses no interface had at start-up, by address: their retry timer. */
  get pending(): Map<string, NodeJS.Timeout> {
    return this.listenerSet.pending;
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

  /** Whether the daemon is ready (readiness.ts): listening, able to answer, no forwarding loop. */
  readiness(): Promise<Readiness> {
    return this.ready.check();
  }

  /**
   * Applies a new configuration (reload.ts). Upstreams and everything routing to them, the timeout, the
   * cache, pins, policy and log settings take effect now; keys that need a restart (listen,
   * admin, tcp, hosts, ...) keep their running value and the returned plan names them.
   */
  reload(next: Config): ReloadOutcome {
    return applyReload(this, next);
  }

  /** Registers work for a clean shutdown (after in-flight queries). */
  onShutdown(hook: ShutdownHook): void {
    this.shutdownHooks.push(hook);
  }

  /** Clean shutdown (lifecycle.ts): stop accepting, answer what is in flight, stop, run the shutdown hooks. */
  drain(boundMs = this.config.timeoutMs + 1000): Promise<{ unfinished: number }> {
    return drain(this, boundMs);
  }

  /** Bound addresses (with the real ports when 0 was asked for). */
  get addresses(): HostPort[] {
    return this.listeners.map((l) => l.address);
  }

  /** Closes everything and saves the cache (`cache.file`), if there is one. */
  stop(): Promise<void> {
    return stop(this);
  }
}
