/** UDP listener: one datagram in, at most one datagram out. */
import cluster from 'node:cluster';
import dgram from 'node:dgram';
import type { Logger } from 'pino';
import type { HostPort } from '../config/address.js';
import { explainBindError } from './bind-error.js';
import type { QueryHandler } from './handler.js';

/** Socket buffer sizes to ask the kernel for (SO_RCVBUF, SO_SNDBUF), in bytes. */
export interface UdpBufferOptions {
  receiveBufferBytes?: number;
  sendBufferBytes?: number;
  log?: Logger;
}

export class UdpServer {
  /** The buffer sizes the kernel granted (as it reports them: twice what was set, on Linux), once listening. */
  buffers: { receive: number; send: number } | null = null;
  private socket: dgram.Socket | null = null;
  private accepting = true;
  /** Replies handed to the socket whose send has not completed (close waits for them). */
  private sending = 0;
  private sent: (() => void) | null = null;

  constructor(
    private readonly handler: QueryHandler,
    readonly address: HostPort,
    private readonly opts: UdpBufferOptions = {},
  ) {}

  /** Binds, or adopts an already-bound socket (systemd socket activation). */
  async listen(existingFd?: number): Promise<HostPort> {
    const socket = dgram.createSocket({
      type: this.address.family === 6 ? 'udp6' : 'udp4',
      ipv6Only: this.address.family === 6,
      reuseAddr: false,
      lookup: literalLookup,
    });
    socket.on('message', (msg, rinfo) => this.onMessage(socket, msg, rinfo));
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        // A socket that failed to bind is still open: close it (a listen address that is retried would leak one per try).
        try {
          socket.close();
        } catch {
          /* already closed */
        }
        reject(explainBindError(err, this.address, 'udp'));
      };
      socket.once('error', onError);
      const onListening = () => {
        socket.off('error', onError);
        resolve();
      };
      if (existingFd !== undefined) socket.bind({ fd: existingFd }, onListening);
      // In a worker (--workers) the socket is the cluster's, shared: exclusive would bind one of its own.
      else socket.bind({ address: this.address.host, port: this.address.port, exclusive: !cluster.isWorker }, onListening);
    });
    // After binding, a send error (e.g. ICMP unreachable surfacing) must never crash the process.
    socket.on('error', () => {});
    this.socket = socket;
    const a = socket.address();
    const bound = { host: a.address, port: a.port, family: this.address.family };
    this.sizeBuffers(socket, bound, existingFd !== undefined);
    return bound;
  }

  /**
   * Asks for the configured SO_RCVBUF/SO_SNDBUF. An inherited socket (systemd socket
   * activation) keeps a larger size it already has: systemd's ReceiveBuffer= may exceed
   * net.core.rmem_max, which caps what dohd itself can ask for. The kernel
   * caps the request at net.core.rmem_max/wmem_max: what it granted is logged, with a warning
   * when it is less than asked.
   */
  private sizeBuffers(socket: dgram.Socket, bound: HostPort, inherited: boolean): void {
    const want = { receive: this.opts.receiveBufferBytes, send: this.opts.sendBufferBytes };
    const set = (kind: 'receive' | 'send') => {
      const n = want[kind];
      if (n === undefined) return;
      try {
        const current = kind === 'receive' ? socket.getRecvBufferSize() : socket.getSendBufferSize();
        // Linux reports twice the size set (the other half is its bookkeeping).
        if (inherited && current >= 2 * n) return;
        if (kind === 'receive') socket.setRecvBufferSize(n);
        else socket.setSendBufferSize(n);
      } catch (err) {
        this.opts.log?.warn({ err, listen: bound, kind }, 'could not set the UDP socket buffer size');
      }
    };
    set('receive');
    set('send');
    try {
      this.buffers = { receive: socket.getRecvBufferSize(), send: socket.getSendBufferSize() };
    } catch {
      return;
    }
    const log = this.opts.log;
    if (!log) return;
    const granted = { receiveBytes: this.buffers.receive / 2, sendBytes: this.buffers.send / 2 };
    const short = (want.receive !== undefined && granted.receiveBytes < want.receive) || (want.send !== undefined && granted.sendBytes < want.send);
    const fields = { listen: `${bound.host}:${bound.port}`, asked: { receiveBytes: want.receive, sendBytes: want.send }, granted };
    if (short) log.warn(fields, 'UDP socket buffers smaller than configured: the kernel caps them at net.core.rmem_max / wmem_max (raise those sysctls)');
    else log.info(fields, 'UDP socket buffers');
  }

  private onMessage(socket: dgram.Socket, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    if (!this.accepting) return;
    let reply: Buffer | null | Promise<Buffer | null>;
    try {
      reply = this.handler.answer(msg, 'udp', rinfo);
    } catch {
      return;
    }
    if (reply instanceof Promise) {
      reply.then(
        (r) => {
          if (r && this.socket === socket) this.send(socket, r, rinfo);
        },
        ignore,
      );
    } else if (reply) this.send(socket, reply, rinfo);
  }

  /**
   * No callback while serving, so Node sends at once (uv_udp_try_send); while draining, the
   * sends are counted so that close() waits for the last answers to leave.
   */
  private send(socket: dgram.Socket, reply: Buffer, rinfo: dgram.RemoteInfo): void {
    if (this.accepting) {
      socket.send(reply, rinfo.port, rinfo.address);
      return;
    }
    this.sending++;
    socket.send(reply, rinfo.port, rinfo.address, () => {
      if (--this.sending === 0) this.sent?.();
    });
  }

  /** The local port, while listening. */
  get port(): number | undefined {
    try {
      return this.socket?.address().port;
    } catch {
      return undefined;
    }
  }

  /**
   * Draining: new queries are not read; queries already received still get their answer.
   * Reading stops (recvStop) rather than reading and dropping: on a socket systemd handed
   * over (dohd.socket), what arrives now waits in the kernel for the next dohd.
   */
  stopAccepting(): void {
    this.accepting = false;
    if (this.socket) stopReceiving(this.socket);
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

function ignore(): void {}

/**
 * Stops reading datagrams, keeping the socket open for the replies still to go out. node's
 * dgram has no public pause; this is what its close() does first (lib/dgram.js
 * stopReceiving). If node's internals ever differ, `accepting` still keeps new queries out.
 */
function stopReceiving(socket: dgram.Socket): void {
  const sym = Object.getOwnPropertySymbols(socket).find((x) => x.description === 'state symbol');
  const state = sym ? ((socket as unknown as Record<symbol, unknown>)[sym] as { handle?: { recvStop?: () => number }; receiving?: boolean } | undefined) : undefined;
  if (state?.receiving && typeof state.handle?.recvStop === 'function') {
    state.handle.recvStop();
    state.receiving = false;
  }
}

/**
 * Replies only ever go back to the address a datagram came from: an IP literal of the
 * socket's family, so there is nothing to look up (dgram's default, dns.lookup, would also
 * defer every send to the next tick). Sends take no callback, so Node tries them at once
 * (uv_udp_try_send) instead of queueing a request per datagram; a send error is an 'error'
 * event, which is ignored.
 */
function literalLookup(address: string, family: unknown, callback: (err: Error | null, address: string, family: number) => void): void {
  callback(null, address, family === 6 ? 6 : 4);
}
