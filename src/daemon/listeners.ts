/**
 * The daemon's DNS listeners, UDP and TCP per address: bound from `listen`, or adopted from the
 * sockets systemd hands over (socket activation); a `listen` address no interface has yet is
 * awaited and bound once it appears.
 */
import type { Logger } from 'pino';
import { formatHostPort, parseHostPort, type HostPort } from '../config/address.js';
import type { Config } from '../config/schema.js';
import { ListenError } from '../server/bind-error.js';
import type { QueryHandler } from '../server/handler.js';
import { pairByAddress, type InheritedSocket } from '../server/socket-activation.js';
import { TcpServer } from '../server/tcp.js';
import { UdpServer } from '../server/udp.js';

export interface Listener {
  udp: UdpServer;
  tcp: TcpServer;
  address: HostPort;
}

export class Listeners {
  /** `listen` addresses no interface had at start-up, by address: their retry timer. */
  readonly pending = new Map<string, NodeJS.Timeout>();

  constructor(
    /** The listeners bound so far (the daemon's `listeners`). */
    readonly list: Listener[],
    private readonly handler: QueryHandler,
    private readonly config: () => Config,
    private readonly log: Logger,
    /** True once the daemon drains or stops: an awaited address is not bound any more. */
    private readonly closing: () => boolean,
  ) {}

  /** Serves on sockets systemd handed over, UDP and TCP per address, instead of binding. */
  async adopt(inherited: InheritedSocket[]): Promise<void> {
    const config = this.config();
    for (const pair of pairByAddress(inherited)) {
      const l: Listener = { udp: new UdpServer(this.handler, pair.address, { ...config.udp, log: this.log }), tcp: new TcpServer(this.handler, pair.address, config.tcp), address: pair.address };
      this.list.push(l); // closed by stop() if anything below fails
      await l.udp.listen(pair.udp.fd);
      await l.tcp.listen(pair.tcp.fd);
    }
    this.log.info(
      {
        sockets: inherited.map((s) => ({ fd: s.fd, name: s.name, proto: s.proto, address: formatHostPort(s.address) })),
        unusedListen: config.listen,
      },
      'socket activation: serving on the sockets systemd passed (the "listen" setting is not used)',
    );
  }

  /**
   * Binds every listen address. One that no interface has yet is awaited (awaitAddress) as
   * long as dohd answers somewhere else; when none can be bound at all, start-up fails with
   * the first address's error (a typo must not leave a daemon that answers nowhere).
   */
  async listen(): Promise<void> {
    const missing: { addr: HostPort; err: ListenError }[] = [];
    for (const text of this.config().listen) {
      const addr = parseHostPort(text);
      if (typeof addr === 'string') throw new ListenError(addr, 'EINVAL');
      try {
        this.list.push(await this.listenOne(addr));
      } catch (err) {
        if ((err as ListenError).code !== 'EADDRNOTAVAIL' || this.config().listenRetryMs === 0) throw err;
        missing.push({ addr, err: err as ListenError });
      }
    }
    if (missing.length > 0 && this.list.length === 0) throw missing[0]!.err;
    for (const m of missing) this.awaitAddress(m.addr, m.err.message);
  }

  /**
   * An address no interface has yet (a bridge that comes up after dohd, such as docker0): bound
   * as soon as it appears, retried every listenRetryMs, said once in the log each way.
   */
  private awaitAddress(addr: HostPort, why: string): void {
    const where = formatHostPort(addr);
    const retry = async () => {
      if (this.closing()) return;
      try {
        const l = await this.listenOne(addr);
        if (this.closing()) {
          await Promise.all([l.udp.close(), l.tcp.close()]);
          return;
        }
        this.pending.delete(where);
        this.list.push(l);
        this.log.info({ listen: formatHostPort(l.address) }, 'listen address appeared: now listening on it');
      } catch (err) {
        if (this.closing()) return;
        if ((err as ListenError).code !== 'EADDRNOTAVAIL') {
          this.pending.delete(where);
          this.log.error({ listen: where, err: (err as Error).message }, 'listen address appeared but cannot be bound; not retried');
          return;
        }
        this.pending.set(where, setTimeout(() => void retry(), this.config().listenRetryMs));
      }
    };
    this.pending.set(where, setTimeout(() => void retry(), this.config().listenRetryMs));
    this.log.warn(
      { listen: where, retryMs: this.config().listenRetryMs },
      `${why} yet: serving on the other addresses and binding it once it appears (a bridge such as docker0 comes up with its runtime); listenRetryMs: 0 makes this fatal`,
    );
  }

  /** UDP and TCP on one address; port 0 picks one free port that both protocols get. */
  private async listenOne(addr: HostPort): Promise<Listener> {
    const config = this.config();
    for (let attempt = 0; ; attempt++) {
      const udp = new UdpServer(this.handler, addr, { ...config.udp, log: this.log });
      const bound = await udp.listen();
      const tcp = new TcpServer(this.handler, { ...addr, port: bound.port }, config.tcp);
      try {
        await tcp.listen();
        return { udp, tcp, address: { ...addr, port: bound.port } };
      } catch (err) {
        await udp.close();
        if (addr.port !== 0 || attempt >= 20 || (err as ListenError).code !== 'EADDRINUSE') throw err;
      }
    }
  }

  /** UDP ignores new queries, TCP takes no new connections or queries. */
  stopAccepting(): void {
    for (const l of this.list) {
      l.udp.stopAccepting();
      l.tcp.stopAccepting();
    }
  }

  /** No awaited address is bound any more. */
  stopWaiting(): void {
    for (const t of this.pending.values()) clearTimeout(t);
    this.pending.clear();
  }

  /** Every listener's close, to await with the rest of shutdown. */
  closeEach(): Promise<void>[] {
    return this.list.flatMap((l) => [l.udp.close(), l.tcp.close()]);
  }
}
