/**
 * The handler's `decorate` hook for `dohd query`'s explain option (dns/explain.ts): which
 * stage or upstream answered, and how fast, for a loopback client that asked.
 */
import { udpLimit } from '../dns/answer.js';
import { appendEdnsOption, EXPLAIN_OPTION, explainText, isLoopback, wantsExplain } from '../dns/explain.js';
import type { Context, Result } from '../pipeline/types.js';

/** The handler's `decorate` hook: adds the explain option for loopback clients that asked for it. */
export function explainAnswer(ctx: Context, result: Result, reply: Buffer, ms: number): Buffer {
  if (!wantsExplain(ctx.query) || !isLoopback(ctx.client.address)) return reply;
  const text = Buffer.from(explainText({ source: result.source, upstream: result.upstream, local: result.local, ms }));
  return appendEdnsOption(reply, EXPLAIN_OPTION, text, ctx.transport === 'udp' ? udpLimit(ctx.query) : 65535);
}
