/**
 * TCP listener (RFC 1035 §4.2.2 framing, RFC 7766 behaviour): 2-byte length prefix,
 * several queries per connection answered as they complete, an idle timeout,
 * a cap on connections and on queries in flight per connection.
 */
import net from 'node:net';
import type { HostPort } from '../config/address.js';
import { explainBindError } from './bind-error.js';
import type { QueryHandler } from './handler.js';

export interface TcpOptions {
  idleTimeoutMs?: number;
  maxConnections?: number;
  maxInflightPerConnection?: number;
}

export class TcpServer {
  private server: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();
  private readonly idleTimeoutMs: number;
  private readonly maxInflightPerConnection: number;
  private draining = false;
  /** Per connection: ends it if it has nothing in flight (used when draining). */
  private readonly endIfIdle = new Map<net.Socket, () => void>();

  constructor(
    private readonly handler: QueryHandler,
    readonly address: HostPort,
    private readonly opts: TcpOptions = {},
  ) {
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 10_000;
    this.maxInflightPerConnection = opts.maxInflightPerConnection ?? 64;
  }

  get connections(): number {
    return this.sockets.size;
  }

  async listen(existingFd?: number): Promise<HostPort> {
    const server = net.createServer({ noDelay: true, allowHalfOpen: true }, (socket) => this.onConnection(socket));
    server.maxConnections = this.opts.maxConnections ?? 1000;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => reject(explainBindError(err, this.address, 'tcp'));
      server.once('error', onError);
      const onListening = () => {
        server.off('error', onError);
        resolve();
      };
      if (existingFd !== undefined) server.listen({ fd: existingFd }, onListening);
      else server.listen({ host: this.address.host, port: this.address.port, ipv6Only: this.address.family === 6, exclusive: true, backlog: 511 }, onListening);
    });
    server.on('error', () => {});
    this.server = server;
    const a = server.address() as net.AddressInfo;
    return { host: a.address, port: a.port, family: this.address.family };
  }

  private onConnection(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.setTimeout(this.idleTimeoutMs);
    let buffered: Buffer = Buffer.alloc(0);
    let inflight = 0;
    let ended = false;
    const client = { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 };
    const maybeEnd = () => {
      if ((ended || this.draining) && inflight === 0 && !socket.destroyed) socket.end();
    };
    this.endIfIdle.set(socket, maybeEnd);
    socket.on('timeout', () => socket.destroy());
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      this.sockets.delete(socket);
      this.endIfIdle.delete(socket);
    });
    socket.on('end', () => {
      ended = true;
      maybeEnd();
    });
    socket.on('data', (chunk: Buffer) => {
      buffered = buffered.length ? Buffer.concat([buffered, chunk]) : chunk;
      while (buffered.length >= 2 && !this.draining) {
        const len = buffered.readUInt16BE(0);
        if (buffered.length < 2 + len) break;
        const msg = Buffer.from(buffered.subarray(2, 2 + len));
        buffered = buffered.subarray(2 + len);
        if (len === 0) continue;
        inflight++;
        if (inflight >= this.maxInflightPerConnection) socket.pause();
        this.handler.handle(msg, 'tcp', client).then(
          (reply) => {
            inflight--;
            if (reply && !socket.destroyed && socket.writable) {
              const frame = Buffer.allocUnsafe(2 + reply.length);
              frame.writeUInt16BE(reply.length, 0);
              reply.copy(frame, 2);
              socket.write(frame);
            }
            if (socket.isPaused() && inflight < this.maxInflightPerConnection) socket.resume();
            maybeEnd();
          },
          () => {
            inflight--;
            maybeEnd();
          },
        );
      }
    });
  }

  /**
   * Draining: no new connections, no new queries on open ones; queries in flight are
   * answered, then each connection is closed.
   */
  stopAccepting(): void {
    this.draining = true;
    this.server?.close();
    for (const end of this.endIfIdle.values()) end();
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = null;
    for (const sock of this.sockets) sock.destroy();
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}
