/**
 * TCP listener (RFC 1035 §4.2.2 framing, RFC 7766 behaviour): a cap on open connections;
 * each connection (tcp-connection.ts) has its queries answered as they complete, an idle
 * timeout, and bounds on what a slow or stalled client can hold.
 */
import cluster from 'node:cluster';
import net from 'node:net';
import type { HostPort } from '../config/address.js';
import type { Config } from '../config/schema.js';
import { explainBindError } from './bind-error.js';
import type { QueryHandler } from './handler.js';
import { TcpConnection, type TcpCloseReason, type TcpLimits } from './tcp-connection.js';

/** The parsed `tcp` config, as is (the schema has the defaults and the meanings). */
export type TcpOptions = Config['tcp'];

export class TcpServer {
  private server: net.Server | null = null;
  private readonly sockets = new Map<net.Socket, TcpConnection>();
  private readonly limits: TcpLimits;
  /** Connections closed, by reason (plain counters for metrics and tests). */
  readonly closed: Partial<Record<TcpCloseReason, number>> = {};
  /** Connections turned away because maxConnections were open. */
  rejectedConnections = 0;

  constructor(
    private readonly handler: QueryHandler,
    readonly address: HostPort,
    private readonly opts: TcpOptions,
  ) {
    this.limits = {
      idleTimeoutMs: opts.idleTimeoutMs,
      frameTimeoutMs: opts.frameTimeoutMs,
      maxInflight: opts.maxInflightPerConnection,
      maxBufferedBytes: opts.maxBufferedBytes,
    };
  }

  get connections(): number {
    return this.sockets.size;
  }

  async listen(existingFd?: number): Promise<HostPort> {
    const server = net.createServer({ noDelay: true, allowHalfOpen: true }, (socket) => this.onConnection(socket));
    server.maxConnections = this.opts.maxConnections;
    server.on('drop', () => this.rejectedConnections++);
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => reject(explainBindError(err, this.address, 'tcp'));
      server.once('error', onError);
      const onListening = () => {
        server.off('error', onError);
        resolve();
      };
      if (existingFd !== undefined) server.listen({ fd: existingFd }, onListening);
      else server.listen({ host: this.address.host, port: this.address.port, ipv6Only: this.address.family === 6, exclusive: !cluster.isWorker, backlog: 511 }, onListening);
    });
    server.on('error', () => {});
    this.server = server;
    const a = server.address() as net.AddressInfo;
    return { host: a.address, port: a.port, family: this.address.family };
  }

  private onConnection(socket: net.Socket): void {
    const conn = new TcpConnection(socket, this.handler, this.limits, (reason) => {
      this.sockets.delete(socket);
      this.closed[reason] = (this.closed[reason] ?? 0) + 1;
    });
    this.sockets.set(socket, conn);
  }

  /**
   * Draining: no new connections, no new queries on open ones; queries in flight are
   * answered, then each connection is closed.
   */
  stopAccepting(): void {
    this.server?.close();
    for (const conn of this.sockets.values()) conn.drain();
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = null;
    for (const conn of this.sockets.values()) conn.destroy('shutdown');
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}
