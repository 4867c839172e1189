/** UDP listener: one datagram in, at most one datagram out. */
import dgram from 'node:dgram';
import type { HostPort } from '../config/address.js';
import { explainBindError } from './bind-error.js';
import type { QueryHandler } from './handler.js';

export class UdpServer {
  private socket: dgram.Socket | null = null;
  private accepting = true;
  /** Replies handed to the socket whose send has not completed (close waits for them). */
  private sending = 0;
  private sent: (() => void) | null = null;

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
    if (!this.accepting) return;
    this.handler.handle(msg, 'udp', { address: rinfo.address, port: rinfo.port }).then(
      (reply) => {
        if (!reply || this.socket !== socket) return;
        this.sending++;
        socket.send(reply, rinfo.port, rinfo.address, () => {
          if (--this.sending === 0) this.sent?.();
        });
      },
      () => {},
    );
  }

  /** Draining: new queries are ignored; queries already received still get their answer. */
  stopAccepting(): void {
    this.accepting = false;
  }

  async close(): Promise<void> {
    const s = this.socket;
    this.socket = null;
    if (!s) return;
    if (this.sending > 0) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 1000);
        this.sent = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}
