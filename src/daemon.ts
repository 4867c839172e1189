/**
 * Builds the daemon from a validated config: upstreams, the resolve pipeline, the
 * listeners. Owns start-up and shutdown.
 */
import type { Logger } from 'pino';
import { formatHostPort, parseHostPort, type HostPort } from './config/address.js';
import type { Config } from './config/schema.js';
import { AnswerCache } from './cache/answer-cache.js';
import { CacheStage } from './resolver/cache.js';
import { ForwardStage } from './resolver/forward.js';
import { Pipeline } from './resolver/pipeline.js';
import { buildPins, PinsStage } from './resolver/pins.js';
import { PolicyStage, policyOptionsFrom } from './resolver/policy.js';
import { QueryHandler } from './server/handler.js';
import { TcpServer } from './server/tcp.js';
import { UdpServer } from './server/udp.js';
import { ListenError } from './server/bind-error.js';
import { DohUpstream } from './upstream/doh.js';
import { UpstreamReporter } from './upstream/report.js';
import { RaceStrategy } from './upstream/strategy.js';
import type { Upstream } from './upstream/types.js';

export interface Listener {
  udp: UdpServer;
  tcp: TcpServer;
  address: HostPort;
}

export class Daemon {
  readonly listeners: Listener[] = [];
  readonly upstreams: Upstream[];
  readonly reporter: UpstreamReporter;
  readonly cache: AnswerCache;
  readonly cacheStage: CacheStage;
  readonly pinsStage: PinsStage;
  readonly policy: PolicyStage;
  readonly pipeline: Pipeline;
  readonly handler: QueryHandler;
  private stopped = false;

  constructor(
    readonly config: Config,
    readonly log: Logger,
  ) {
    this.reporter = new UpstreamReporter(log);
    this.upstreams = config.upstreams.map((u) => new DohUpstream(u, { log }));
    const strategy = new RaceStrategy(this.upstreams, this.reporter);
    this.cache = new AnswerCache({ maxEntries: config.cache.maxEntries });
    this.cacheStage = new CacheStage(this.cache);
    this.pinsStage = new PinsStage(buildPins(config));
    this.policy = new PolicyStage(policyOptionsFrom(config));
    this.pipeline = new Pipeline([this.policy, this.pinsStage, this.cacheStage, new ForwardStage(strategy)]);
    this.handler = new QueryHandler({
      pipeline: this.pipeline,
      timeoutMs: config.timeoutMs,
      log,
      screenReject: (transport, client, reason, hasReply) => this.policy.screenReject(transport, client, reason, hasReply),
    });
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
    log.info(
      {
        listen: d.listeners.map((l) => formatHostPort(l.address)),
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

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await Promise.all(this.listeners.flatMap((l) => [l.udp.close(), l.tcp.close()]));
    await Promise.all(this.upstreams.map((u) => u.close()));
  }
}
