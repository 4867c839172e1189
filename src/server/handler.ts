/**
 * The edge shared by the UDP and TCP listeners: decode, run the pipeline under the
 * query's deadline, and build the answer. It never throws and never stays silent past
 * the deadline: a query that cannot be answered in time gets SERVFAIL.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { finalizeAnswer, MAX_MESSAGE, udpLimit } from '../dns/answer.js';
import { appendEde, EDE_OVERLOADED, EDE_TIMED_OUT } from '../dns/ede.js';
import { parseQueryFast } from '../dns/fast-query.js';
import { decodeQuery, rcodeReply, type Query } from '../dns/message.js';
import { headerOnlyReply, Rcode, readHeader } from '../dns/wire.js';
import type { Pipeline } from '../pipeline/pipeline.js';
import type { Context, Result, Transport } from '../pipeline/types.js';
import { CANCELLED } from '../upstream/abort.js';

export interface HandlerOptions {
  pipeline: Pipeline;
  timeoutMs: number;
  /** Queries in progress at once; past it new ones get SERVFAIL at once instead of queueing (config `maxInflight`). */
  maxInflight: number;
  log?: Logger;
  /** Called once per answered query (metrics, query log). */
  onAnswer?: (ctx: Context, result: Result, ms: number) => void;
  /** Called for packets that were not queries we could answer normally. */
  onReject?: (transport: Transport, reason: string) => void;
  /** Decides whether such a packet's error reply (FORMERR, NOTIMP) may be sent (policy: ACL, rate limit). */
  screenReject?: (transport: Transport, client: { address: string; port: number }, reason: string, hasReply: boolean) => boolean;
  /**
   * Called once for each bug met while handling a query (an error that is not an upstream's
   * failure: a RangeError from a buffer read, a TypeError...), after it was logged at error
   * level. `where`: decode, resolve, answer. The client still gets FORMERR or SERVFAIL.
   */
  onInternalError?: (where: InternalErrorStage, err: unknown) => void;
  /** May add to the finished answer (e.g. the EDNS explain option for `dohd query`). */
  decorate?: (ctx: Context, result: Result, reply: Buffer, ms: number) => Buffer;
}

export class QueryHandler {
  inflight = 0;

  constructor(private opts: HandlerOptions) {}

  update(opts: Partial<HandlerOptions>): void {
    this.opts = { ...this.opts, ...opts };
  }

  /**
   * The reply bytes for a client packet, or null when nothing must be sent. A query the
   * pipeline answers without waiting (a cache hit, admission, pins) gets its reply at once,
   * not through a promise. The common
   * shape of a query is read straight from the wire (dns/fast-query.ts); anything else is
   * decoded in full. Nothing is allocated for the deadline until a stage has to wait.
   */
  answer(raw: Buffer, transport: Transport, client: { address: string; port: number }): Buffer | null | Promise<Buffer | null> {
    const received = performance.now();
    let q: Query | null;
    try {
      q = parseQueryFast(raw);
    } catch (err) {
      // Never expected: the fast lane reads only bytes it has checked. The full decoder decides.
      this.internalError('decode', err);
      q = null;
    }
    if (q === null) {
      let decoded: ReturnType<typeof decodeQuery>;
      try {
        decoded = decodeQuery(raw);
      } catch (err) {
        this.internalError('decode', err);
        const h = readHeader(raw);
        decoded = { ok: false, reply: h && !h.qr ? headerOnlyReply(h, Rcode.FORMERR) : null, reason: 'malformed' };
      }
      if (!decoded.ok) {
        this.opts.onReject?.(transport, decoded.reason);
        const send = this.opts.screenReject?.(transport, client, decoded.reason, decoded.reply !== null) ?? true;
        return send ? decoded.reply : null;
      }
      q = decoded.query;
    }
    const ctx: Waiting = { query: q, transport, client, signal: NEVER, received, deadline: null };
    let started: Result | Promise<Result>;
    try {
      started = this.opts.pipeline.start(ctx, this.beforeWait);
    } catch (err) {
      started = Promise.reject(err as Error);
    }
    if (started instanceof Promise) return this.wait(ctx, started);
    return this.reply(ctx, started);
  }

  /** Called by the pipeline before its first stage that waits: past maxInflight, SERVFAIL at once. */
  private readonly beforeWait = (c: Context): Result | undefined => {
    const ctx = c as Waiting;
    if (this.inflight >= this.opts.maxInflight) {
      this.opts.onReject?.(ctx.transport, 'overloaded');
      return { wire: rcodeReply(ctx.query, Rcode.SERVFAIL), source: 'error', rcode: Rcode.SERVFAIL, ede: EDE_OVERLOADED };
    }
    this.inflight++;
    ctx.deadline = new AbortController();
    ctx.signal = ctx.deadline.signal;
    return undefined;
  };

  private async wait(ctx: Waiting, running: Promise<Result>): Promise<Buffer | null> {
    const q = ctx.query;
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<null>((resolve) => {
      timer = setTimeout(
        () => {
          ctx.deadline?.abort(CANCELLED);
          resolve(null);
        },
        Math.max(0, this.opts.timeoutMs - (performance.now() - ctx.received)),
      );
    });
    let result: Result;
    try {
      const r = await Promise.race([running, expired]);
      result = r ?? { wire: rcodeReply(q, Rcode.SERVFAIL), source: 'error', rcode: Rcode.SERVFAIL, ede: EDE_TIMED_OUT };
    } catch (err) {
      this.internalError('resolve', err, q);
      result = { wire: rcodeReply(q, Rcode.SERVFAIL), source: 'error', rcode: Rcode.SERVFAIL };
    } finally {
      clearTimeout(timer);
      if (ctx.deadline) {
        if (!ctx.deadline.signal.aborted) ctx.deadline.abort(CANCELLED);
        this.inflight--;
      }
    }
    return this.reply(ctx, result);
  }

  /** A bug met while handling a query: logged at error level once, counted; the caller answers FORMERR or SERVFAIL. */
  private internalError(where: InternalErrorStage, err: unknown, q?: Query): void {
    const e = err as { [REPORTED]?: boolean } | null;
    if (e !== null && typeof e === 'object') {
      if (e[REPORTED]) return;
      try {
        e[REPORTED] = true;
      } catch {
        /* frozen: logged again by the next query that shares it */
      }
    }
    this.opts.log?.error({ err, where, ...(q ? { name: q.name, type: q.type } : {}) }, 'internal error while handling a query (a bug: please report it)');
    this.opts.onInternalError?.(where, err);
  }

  private reply(ctx: Context, result: Result): Buffer | null {
    if (result.drop) return null;
    // An extended rcode (BADVERS = 16) keeps its low 4 bits in the header, the rest in OPT.
    let out: Buffer;
    try {
      out = finalizeAnswer(ctx.query, result.wire, ctx.transport, result.rcode >> 4, result.owned);
    } catch (err) {
      this.internalError('answer', err, ctx.query);
      out = finalizeAnswer(ctx.query, rcodeReply(ctx.query, Rcode.SERVFAIL), ctx.transport);
    }
    // Extended DNS Errors only for clients that spoke EDNS, and never past their size.
    if (result.ede !== undefined && ctx.query.edns) out = appendEde(out, result.ede, ctx.transport === 'udp' ? udpLimit(ctx.query) : MAX_MESSAGE);
    const ms = performance.now() - ctx.received;
    if (this.opts.decorate) out = this.opts.decorate(ctx, result, out, ms);
    this.opts.onAnswer?.(ctx, result, ms);
    return out;
  }
}

/** Where in handling a query a bug was met. */
export type InternalErrorStage = 'decode' | 'resolve' | 'answer';

/** Set on an error once it has been logged: queries that shared one exchange (coalesce) all see it. */
const REPORTED = Symbol('dohd.reported');

/** The error's class name for a metric label, from a fixed set. */
export function errorKind(err: unknown): string {
  const name = (err as Error | undefined)?.name;
  return name === 'RangeError' || name === 'TypeError' || name === 'AssertionError' || name === 'Error' ? name : 'other';
}

/** A query's context while it runs; `deadline` exists once a stage has to wait. */
interface Waiting extends Context {
  deadline: AbortController | null;
}

/** The signal stages see while the pipeline runs synchronously: nothing waits there, so it never aborts. */
const NEVER = new AbortController().signal;
