/**
 * The edge shared by the UDP and TCP listeners: decode, run the pipeline under the
 * query's deadline, and build the answer. It never throws and never stays silent past
 * the deadline: a query that cannot be answered in time gets SERVFAIL.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { finalizeAnswer } from '../dns/answer.js';
import { decodeQuery, rcodeReply, type Query } from '../dns/message.js';
import { Rcode } from '../dns/wire.js';
import type { Pipeline } from '../resolver/pipeline.js';
import type { Context, Result, Transport } from '../resolver/types.js';

export interface HandlerOptions {
  pipeline: Pipeline;
  timeoutMs: number;
  /** Queries in progress at once; past it new ones get SERVFAIL at once instead of queueing. */
  maxInflight?: number;
  log?: Logger;
  /** Called once per answered query (metrics, query log). */
  onAnswer?: (ctx: Context, result: Result, ms: number) => void;
  /** Called for packets that were not queries we could answer normally. */
  onReject?: (transport: Transport, reason: string) => void;
  /** Decides whether such a packet's error reply (FORMERR, NOTIMP) may be sent (policy: ACL, rate limit). */
  screenReject?: (transport: Transport, client: { address: string; port: number }, reason: string, hasReply: boolean) => boolean;
  /** May add to the finished answer (e.g. the EDNS explain option for `dohd query`). */
  decorate?: (ctx: Context, result: Result, reply: Buffer, ms: number) => Buffer;
}

export class QueryHandler {
  inflight = 0;
  private readonly maxInflight: number;

  constructor(private opts: HandlerOptions) {
    this.maxInflight = opts.maxInflight ?? 10_000;
  }

  update(opts: Partial<HandlerOptions>): void {
    this.opts = { ...this.opts, ...opts };
  }

  /** The reply bytes for a client packet, or null when nothing must be sent. */
  async handle(raw: Buffer, transport: Transport, client: { address: string; port: number }): Promise<Buffer | null> {
    const received = performance.now();
    const decoded = decodeQuery(raw);
    if (!decoded.ok) {
      this.opts.onReject?.(transport, decoded.reason);
      const send = this.opts.screenReject?.(transport, client, decoded.reason, decoded.reply !== null) ?? true;
      return send ? decoded.reply : null;
    }
    const q = decoded.query;
    if (this.inflight >= this.maxInflight) {
      this.opts.onReject?.(transport, 'overloaded');
      return finalizeSafe(q, rcodeReply(q, Rcode.SERVFAIL), transport);
    }
    this.inflight++;
    const deadline = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<null>((resolve) => {
      timer = setTimeout(() => {
        deadline.abort();
        resolve(null);
      }, this.opts.timeoutMs);
    });
    const ctx: Context = { query: q, transport, client, signal: deadline.signal, received };
    let result: Result;
    try {
      const r = await Promise.race([this.opts.pipeline.resolve(ctx), expired]);
      result = r ?? { wire: rcodeReply(q, Rcode.SERVFAIL), source: 'error', rcode: Rcode.SERVFAIL };
    } catch (err) {
      this.opts.log?.error({ err, name: q.name, type: q.type }, 'resolve failed');
      result = { wire: rcodeReply(q, Rcode.SERVFAIL), source: 'error', rcode: Rcode.SERVFAIL };
    } finally {
      clearTimeout(timer);
      if (!deadline.signal.aborted) deadline.abort();
      this.inflight--;
    }
    if (result.drop) return null;
    // An extended rcode (BADVERS = 16) keeps its low 4 bits in the header, the rest in OPT.
    let out = finalizeSafe(q, result.wire, transport, result.rcode >> 4);
    const ms = performance.now() - received;
    if (this.opts.decorate) out = this.opts.decorate(ctx, result, out, ms);
    this.opts.onAnswer?.(ctx, result, ms);
    return out;
  }
}

function finalizeSafe(q: Query, wire: Buffer, transport: Transport, extendedRcode = 0): Buffer {
  try {
    return finalizeAnswer(q, wire, transport, extendedRcode);
  } catch {
    return finalizeAnswer(q, rcodeReply(q, Rcode.SERVFAIL), transport);
  }
}
