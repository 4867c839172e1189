/**
 * One DNS-over-TCP client connection (RFC 7766), with every resource it can hold bounded:
 *
 * - frames (2-byte length prefix) may arrive in any number of pieces; several queries may
 *   be in flight at once and are answered as they complete, in any order;
 * - at most `maxInflight` queries run at once: past it the connection is not read;
 * - unsent answers: past `maxBufferedBytes` the connection is not read; if they stay there
 *   for `idleTimeoutMs` (the client does not read), or would grow past twice the limit,
 *   the connection is closed ('stalled');
 * - a frame whose first byte arrived must be complete within `frameTimeoutMs`
 *   (a client trickling a query byte by byte is closed, 'frame-timeout');
 * - no query in flight and no traffic for `idleTimeoutMs`: closed ('idle');
 * - input held: at most what one read brought before the connection stopped reading,
 *   plus one partial frame (checked: more than `MAX_INPUT_BYTES` closes it, 'overflow').
 */
import type net from 'node:net';
import { tcpFrame } from '../dns/wire.js';
import type { QueryHandler } from './handler.js';

export interface TcpLimits {
  idleTimeoutMs: number;
  frameTimeoutMs: number;
  maxInflight: number;
  maxBufferedBytes: number;
}

export type TcpCloseReason = 'idle' | 'frame-timeout' | 'stalled' | 'overflow' | 'error' | 'done' | 'shutdown';

const MAX_FRAME = 2 + 0xffff;
export const MAX_INPUT_BYTES = 4 * MAX_FRAME;
const EMPTY = Buffer.alloc(0);
/** An input buffer larger than this is released once empty. */
const KEEP_BYTES = 4096;

export class TcpConnection {
  /** Received bytes not yet taken as frames: buf[start, end). */
  private buf: Buffer = EMPTY;
  private start = 0;
  private end = 0;
  private inflight = 0;
  private ended = false;
  private closed = false;
  /** Shutting down: no new queries are taken; those in flight are answered, then it closes. */
  private draining = false;
  private blocked = false;
  private closeReason: TcpCloseReason | null = null;
  private frameTimer: NodeJS.Timeout | null = null;
  private stallTimer: NodeJS.Timeout | null = null;
  private readonly client: { address: string; port: number };

  constructor(
    private readonly socket: net.Socket,
    private readonly handler: QueryHandler,
    private readonly limits: TcpLimits,
    private readonly onClose: (reason: TcpCloseReason) => void,
  ) {
    this.client = { address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0 };
    socket.setTimeout(limits.idleTimeoutMs);
    socket.on('timeout', () => {
      // Idle means nothing in flight (RFC 7766 §6.2.3): queries still running will answer by their deadline.
      if (this.inflight === 0) this.destroy('idle');
    });
    socket.on('error', () => this.destroy('error'));
    socket.on('close', () => this.cleanup());
    socket.on('end', () => {
      this.ended = true;
      this.pump();
    });
    socket.on('drain', () => this.pump());
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
  }

  /** Closes the connection at once. */
  destroy(reason: TcpCloseReason): void {
    this.closeReason ??= reason;
    // A client that does not read gets a reset: a graceful close would queue our FIN behind
    // answers it never takes, and the kernel would keep the connection (and its buffers).
    if ((reason === 'stalled' || reason === 'overflow') && !this.socket.destroyed) this.socket.resetAndDestroy();
    else this.socket.destroy();
  }

  private cleanup(): void {
    if (this.closed) return;
    this.closed = true;
    this.clearFrameTimer();
    this.clearStallTimer();
    this.buf = EMPTY;
    this.start = this.end = 0;
    this.onClose(this.closeReason ?? 'done');
  }

  /** Stop taking queries; answer those in flight, then close. */
  drain(): void {
    this.draining = true;
    this.pump();
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    if (this.size + chunk.length > MAX_INPUT_BYTES) return this.destroy('overflow');
    this.append(chunk);
    this.pump();
  }

  /** Takes every complete frame it may, then decides whether to read on. */
  private pump(): void {
    if (this.closed) return;
    let hadFrame = false;
    while (!this.draining && this.inflight < this.limits.maxInflight && !this.outputFull() && this.size >= 2) {
      const len = this.peekLength();
      if (this.size < 2 + len) break;
      const frame = this.take(2 + len);
      hadFrame = true;
      if (len > 0) this.dispatch(frame.subarray(2));
    }
    const full = this.outputFull();
    const blocked = this.inflight >= this.limits.maxInflight || full;
    if (blocked !== this.blocked) {
      this.blocked = blocked;
      if (blocked) this.socket.pause();
      else this.socket.resume();
    }
    // The frame deadline runs only while a partial frame waits on the client (not on us),
    // from the first byte of that frame: later bytes do not extend it.
    if (blocked || this.size === 0) this.clearFrameTimer();
    else {
      if (hadFrame) this.clearFrameTimer();
      this.armFrameTimer();
    }
    if (full) this.armStallTimer();
    else this.clearStallTimer();
    if ((this.draining || (this.ended && !this.hasCompleteFrame())) && this.inflight === 0 && !this.socket.destroyed && !this.socket.writableEnded) {
      this.clearFrameTimer();
      this.socket.end();
    }
  }

  private dispatch(msg: Buffer): void {
    let reply: Buffer | null | Promise<Buffer | null>;
    try {
      reply = this.handler.answer(msg, 'tcp', this.client);
    } catch {
      return;
    }
    // Answered at once (fast lane): send it now; the pump loop goes on with the next frame.
    if (!(reply instanceof Promise)) {
      if (reply) this.send(reply);
      return;
    }
    this.inflight++;
    reply.then(
      (r) => {
        this.inflight--;
        if (r) this.send(r);
        this.pump();
      },
      () => {
        this.inflight--;
        this.pump();
      },
    );
  }

  private send(reply: Buffer): void {
    if (this.closed || this.socket.destroyed || !this.socket.writable || reply.length > 0xffff) return;
    const frame = tcpFrame(reply);
    if (this.socket.writableLength + frame.length > 2 * this.limits.maxBufferedBytes) return this.destroy('stalled');
    this.socket.write(frame);
  }

  private outputFull(): boolean {
    return this.socket.writableLength >= this.limits.maxBufferedBytes;
  }

  private hasCompleteFrame(): boolean {
    return this.size >= 2 && this.size >= 2 + this.peekLength();
  }

  private get size(): number {
    return this.end - this.start;
  }

  private peekLength(): number {
    return this.buf.readUInt16BE(this.start);
  }

  /** Appends a chunk; the buffer grows by doubling, so a query trickled byte by byte costs O(n). */
  private append(chunk: Buffer): void {
    if (this.end + chunk.length > this.buf.length) {
      const live = this.size;
      const need = live + chunk.length;
      if (need <= this.buf.length) {
        this.buf.copyWithin(0, this.start, this.end);
      } else {
        const grown = Buffer.allocUnsafe(Math.max(need, Math.min(2 * this.buf.length, MAX_INPUT_BYTES), 512));
        this.buf.copy(grown, 0, this.start, this.end);
        this.buf = grown;
      }
      this.start = 0;
      this.end = live;
    }
    chunk.copy(this.buf, this.end);
    this.end += chunk.length;
  }

  /** Removes and returns (a copy of) the first n bytes, n <= size. */
  private take(n: number): Buffer {
    const out = Buffer.from(this.buf.subarray(this.start, this.start + n));
    this.start += n;
    if (this.start === this.end) {
      this.start = this.end = 0;
      if (this.buf.length > KEEP_BYTES) this.buf = EMPTY;
    }
    return out;
  }

  private armFrameTimer(): void {
    if (this.frameTimer || this.closed) return;
    this.frameTimer = setTimeout(() => {
      this.frameTimer = null;
      if (this.size > 0) this.destroy('frame-timeout');
    }, this.limits.frameTimeoutMs);
  }

  private clearFrameTimer(): void {
    if (this.frameTimer) clearTimeout(this.frameTimer);
    this.frameTimer = null;
  }

  private armStallTimer(): void {
    if (this.stallTimer || this.closed) return;
    this.stallTimer = setTimeout(() => {
      this.stallTimer = null;
      if (this.outputFull()) this.destroy('stalled');
    }, this.limits.idleTimeoutMs);
  }

  private clearStallTimer(): void {
    if (this.stallTimer) clearTimeout(this.stallTimer);
    this.stallTimer = null;
  }
}
