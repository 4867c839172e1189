/**
 * Builds the daemon from a validated config: upstreams, the resolve pipeline, the
 * listeners, the admin listener. Owns start-up, reload (SIGHUP), drain and shutdown.
 */
import dnsPacket from 'dns-packet';
import type { Logger } from 'pino';
import { formatHostPort, parseHostPort, type HostPort } from './config/address.js';
import { DEFAULT_ADMIN_LISTEN } from './config/defaults.js';
import type { Config } from './config/schema.js';
import { AnswerCache } from './cache/answer-cache.js';
import { CacheStage } from './resolver/cache.js';
import { ForwardStage } from './resolver/forward.js';
import { Pipeline } from './resolver/pipeline.js';
import { buildPins, PinsStage } from './resolver/pins.js';
import { QueryHandler } from './server/handler.js';
import { TcpServer } from './server/tcp.js';
import { UdpServer } from './server/udp.js';
import { ListenError } from './server/bind-error.js';
import { DohUpstream } from './upstream/doh.js';
import { UpstreamReporter } from './upstream/report.js';
import { RaceStrategy } from './upstream/strategy.js';
import type { Upstream } from './upstream/types.js';
import { decodeQuery } from './dns/message.js';
import { explainAnswer, isLoopback } from './dns/explain.js';
import { rcodeName } from './dns/format.js';
import { buildUpstreamQuery } from './dns/upstream-query.js';
import { Metrics } from './metrics.js';
import { AdminServer, type Readiness } from './server/admin.js';
import { effectiveConfig, planReload, type ReloadPlan } from './reload.js';
import type { Context, Result } from './resolver/types.js';

export interface Listener {
  udp: UdpServer;
  tcp: TcpServer;
  address: HostPort;
}

/** Run on clean shutdown, after in-flight queries are answered (e.g. saving the cache). */
export type ShutdownHook = (log: Logger) => Promise<void> | void;

export interface ReloadOutcome extends ReloadPlan {
  ok: boolean;
  error?: string;
}

export class Daemon {
  readonly listeners: Listener[] = [];
  upstreams: Upstream[];
  readonly reporter: UpstreamReporter;
  cache: AnswerCache;
  cacheStage: CacheStage;
  readonly pinsStage: PinsStage;
  readonly forwardStage: ForwardStage;
  pipeline: Pipeline;
  readonly handler: QueryHandler;
  readonly metrics: Metrics;
  admin: AdminServer | null = null;
  private strategy: RaceStrategy;
  private stopped = false;
  private draining = false;
  private readonly shutdownHooks: ShutdownHook[] = [];
  /** Upstreams replaced by a reload, closed once the queries using them are done. */
  private readonly retired = new Map<NodeJS.Timeout, Upstream[]>();
  private probing: Promise<void> | null = null;

  constructor(
    public config: Config,
    readonly log: Logger,
  ) {
    this.reporter = new UpstreamReporter(log);
    this.upstreams = config.upstreams.map((u) => new DohUpstream(u, { log }));
    this.strategy = new RaceStrategy(this.upstreams, this.reporter);
    this.cache = new AnswerCache({ maxEntries: config.cache.maxEntries });
    this.cacheStage = new CacheStage(this.cache);
    this.pinsStage = new PinsStage(buildPins(config));
    this.forwardStage = new ForwardStage(this.strategy);
    this.pipeline = new Pipeline([this.pinsStage, this.cacheStage, this.forwardStage]);
    this.metrics = new Metrics({ inflight: () => this.handler.inflight, cacheEntries: () => this.cache.size });
    this.metrics.trackCache(this.cacheStage);
    this.reporter.add(this.metrics.upstreamObserver);
    this.handler = new QueryHandler({
      pipeline: this.pipeline,
      timeoutMs: config.timeoutMs,
      log,
      onAnswer: (ctx, result, ms) => this.answered(ctx, result, ms),
      onReject: (transport, reason) => this.metrics.reject(transport, reason),
      decorate: explainAnswer,
    });
  }

  /** Metrics and the optional query log for one answered query; never throws into the resolve path. */
  private answered(ctx: Context, result: Result, ms: number): void {
    try {
      this.metrics.query(ctx, result, ms);
      if (this.config.log.queries) {
        this.log.info(
          {
            client: ctx.client.address,
            name: ctx.query.name,
            type: ctx.query.type,
            rcode: rcodeName(result.rcode),
            source: result.source,
            cache: cacheStatus(result.source),
            ...(result.upstream ? { upstream: result.upstream } : {}),
            ms: Math.round(ms * 10) / 10,
            transport: ctx.transport,
          },
          'query',
        );
      }
    } catch (err) {
      this.log.error({ err }, 'metrics or query log failed');
    }
  }

  /** Builds and starts a daemon; on any listen failure everything opened so far is closed again. */
  static async start(config: Config, log: Logger): Promise<Daemon> {
    const d = new Daemon(config, log);
    try {
      await d.listen();
    } catch (err) {
      await d.stop();
      throw err;
    }
    try {
      await d.startAdmin();
    } catch (err) {
      await d.stop();
      throw err;
    }
    log.info(
      {
        listen: d.listeners.map((l) => formatHostPort(l.address)),
        admin: d.admin?.bound ?? null,
        upstreams: d.upstreams.map((u) => (u instanceof DohUpstream ? { name: u.name, url: u.url.href, bootstrap: u.addresses } : { name: u.name })),
        pins: Object.keys(config.pins).length,
      },
      'dohd listening',
    );
    return d;
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
      const tcp = new TcpServer(this.handler, { ...addr, port: bound.port });
      try {
        await tcp.listen();
        return { udp, tcp, address: { ...addr, port: bound.port } };
      } catch (err) {
        await udp.close();
        if (addr.port !== 0 || attempt >= 20 || (err as ListenError).code !== 'EADDRINUSE') throw err;
      }
    }
  }

  /**
   * The admin listener. Configured explicitly, a failure to listen stops start-up; left at
   * its default (127.0.0.1:9153), a taken port is logged and dohd serves DNS without it.
   */
  private async startAdmin(): Promise<void> {
    const cfg = this.config.admin;
    if (cfg === false) return;
    const text = cfg?.listen ?? DEFAULT_ADMIN_LISTEN;
    const addr = parseHostPort(text, 9153);
    if (typeof addr === 'string') throw new ListenError(`admin.listen: ${addr}`, 'EINVAL');
    const server = new AdminServer(
      {
        metrics: async () => ({ body: await this.metrics.render(), contentType: this.metrics.contentType }),
        readiness: () => this.readiness(),
      },
      addr,
    );
    try {
      await server.listen();
    } catch (err) {
      if (cfg) throw err;
      this.log.warn(
        { admin: text, error: (err as Error).message },
        'admin listener (metrics, health) not started: its default address is taken; set admin.listen, or admin: false',
      );
      return;
    }
    this.admin = server;
    if (!isLoopback(addr.host)) this.log.warn({ admin: server.bound }, 'admin listener (metrics, health) is reachable from other machines');
  }

  /**
   * Ready when listening and able to answer: an upstream has answered, or pins are loaded.
   * When no upstream has answered yet, one probe query (". NS") is sent through the
   * upstreams and awaited (bounded by timeoutMs), so readiness does not wait for client traffic.
   */
  async readiness(): Promise<Readiness> {
    if (this.draining || this.stopped) return { ready: false, detail: 'shutting down' };
    if (this.listeners.length === 0) return { ready: false, detail: 'not listening' };
    const listening = `listening on ${this.listeners.map((l) => formatHostPort(l.address)).join(', ')}`;
    const pins = Object.keys(this.config.pins).length;
    let answered = this.upstreams.filter((u) => this.reporter.answered.has(u.name)).map((u) => u.name);
    if (answered.length === 0) {
      // With pins loaded dohd can answer already: probe in the background, do not wait.
      const probe = this.probeUpstreams();
      if (pins === 0) {
        await probe;
        answered = this.upstreams.filter((u) => this.reporter.answered.has(u.name)).map((u) => u.name);
      }
    }
    if (answered.length > 0) return { ready: true, detail: `${listening}; upstream ${answered.join(', ')} answering` };
    if (pins > 0) return { ready: true, detail: `${listening}; no upstream has answered yet, ${pins} pins loaded` };
    return { ready: false, detail: `${listening}; no upstream has answered yet (see the log for why)` };
  }

  /** One ". NS" query through the current upstreams; concurrent callers share it. */
  private probeUpstreams(): Promise<void> {
    this.probing ??= (async () => {
      const decoded = decodeQuery(
        dnsPacket.encode({ type: 'query', id: 0, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name: '.', type: 'NS', class: 'IN' }] }),
      );
      if (!decoded.ok) return;
      const ac = new AbortController();
      const timer = setTimeout(() => ac.abort(), this.config.timeoutMs);
      try {
        await this.strategy.resolve(buildUpstreamQuery(decoded.query), decoded.query, ac.signal);
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
   * Applies a new configuration: upstreams, timeout, cache size, pins and log settings take
   * effect now; listen and admin addresses (and any key not known to be live) keep their
   * running value until a restart, and the returned plan names them.
   */
  reload(next: Config): ReloadOutcome {
    const plan = planReload(this.config, next);
    try {
      let upstreams: Upstream[] | null = null;
      if (plan.live.includes('upstreams')) upstreams = next.upstreams.map((u) => new DohUpstream(u, { log: this.log }));
      if (upstreams) {
        const old = this.upstreams;
        this.upstreams = upstreams;
        this.strategy = new RaceStrategy(upstreams, this.reporter);
        this.forwardStage.update(this.strategy);
        for (const name of [...this.reporter.answered]) if (!upstreams.some((u) => u.name === name)) this.reporter.answered.delete(name);
        const t = setTimeout(() => {
          this.retired.delete(t);
          for (const u of old) void u.close();
        }, this.config.timeoutMs + 1000);
        t.unref();
        this.retired.set(t, old);
      }
      if (plan.live.includes('pins') || plan.live.includes('pinTtl')) {
        this.pinsStage.update(buildPins(next));
        this.metrics.resetPins();
      }
      if (plan.live.includes('cache')) {
        // The cache is rebuilt from the whole new `cache` section (so every cache option applies); it starts empty.
        const oldStage = this.cacheStage;
        this.cache = new AnswerCache({ maxEntries: next.cache.maxEntries });
        this.cacheStage = new CacheStage(this.cache);
        this.metrics.trackCache(this.cacheStage);
        this.pipeline = new Pipeline(this.pipeline.stages.map((s) => (s === oldStage ? this.cacheStage : s)));
        this.handler.update({ pipeline: this.pipeline });
      }
      if (plan.live.includes('timeoutMs')) this.handler.update({ timeoutMs: next.timeoutMs });
      if (plan.live.includes('log')) this.log.level = next.log.level;
      this.config = effectiveConfig(this.config, next, plan);
      this.metrics.reload(true);
      return { ok: true, ...plan };
    } catch (err) {
      this.metrics.reload(false);
      return { ok: false, error: (err as Error).message, ...plan };
    }
  }

  /** Registers work for a clean shutdown (after in-flight queries), such as saving the cache. */
  onShutdown(hook: ShutdownHook): void {
    this.shutdownHooks.push(hook);
  }

  /**
   * Clean shutdown: stop accepting (UDP ignores new queries, TCP takes no new connections or
   * queries), let queries in flight be answered (bounded: they all end by their deadline),
   * run the shutdown hooks, close everything. Returns how many queries were still unanswered.
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

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await Promise.all([...this.listeners.flatMap((l) => [l.udp.close(), l.tcp.close()]), this.admin?.close()]);
    const retired = [...this.retired].flatMap(([t, ups]) => {
      clearTimeout(t);
      return ups;
    });
    this.retired.clear();
    await Promise.all([...this.upstreams, ...retired].map((u) => u.close()));
  }
}

function cacheStatus(source: Result['source']): string {
  switch (source) {
    case 'cache':
      return 'hit';
    case 'stale':
      return 'stale';
    case 'upstream':
    case 'error':
      return 'miss';
    default:
      return 'none';
  }
}
