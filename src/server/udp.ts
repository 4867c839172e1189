/** UDP listener: one datagram in, at most one datagram out. */
import dgram from 'node:dgram';
import type { HostPort } from '../config/address.js';
import { explainBindError } from './bind-error.js';
import type { QueryHandler } from './handler.js';

export class UdpServer {
  private socket: dgram.Socket | null = null;

  constructor(
    private readonly handler: QueryHandler,
    readonly address: HostPort,
  ) {}

  /** Binds, or adopts an already-bound socket (systemd socket activation). */
  async listen(existingFd?: number): Promise<HostPort> {
    const socket = dgram.createSocket({ type: this.address.family === 6 ? 'udp6' : 'udp4', ipv6Only: this.address.family === 6, reuseAddr: false });
    socket.on('message', (msg, rinfo) => this.onMessage(socket, msg, rinfo));
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => reject(explainBindError(err, this.address, 'udp'));
      socket.once('error', onError);
      const onListening = () => {
        socket.off('error', onError);
        resolve();
      };
      if (existingFd !== undefined) socket.bind({ fd: existingFd }, onListening);
      else socket.bind({ address: this.address.host, port: this.address.port, exclusive: true }, onListening);
    });
    // After binding, a send error (e.g. ICMP unreachable surfacing) must never crash the process.
    socket.on('error', () => {});
    this.socket = socket;
    const a = socket.address();
    return { host: a.address, port: a.port, family: this.address.family };
  }

  private onMessage(socket: dgram.Socket, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    let reply: Buffer | null | Promise<Buffer | null>;
    try {
      reply = this.handler.answer(msg, 'udp', { address: rinfo.address, port: rinfo.port });
    } catch {
      return;
    }
    if (reply instanceof Promise) {
      reply.then(
        (r) => {
          if (r && this.socket === socket) socket.send(r, rinfo.port, rinfo.address, ignore);
        },
        ignore,
      );
    } else if (reply) socket.send(reply, rinfo.port, rinfo.address, ignore);
  }

  async close(): Promise<void> {
    const s = this.socket;
    this.socket = null;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}

function ignore(): void {}
