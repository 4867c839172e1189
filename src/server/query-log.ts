/**
 * What happens once per answered query, after the reply is built: the metrics, and the query
 * log line when `log.queries` is on. Never throws into the resolve path.
 */
import type { Logger } from 'pino';
import { rcodeName } from '../dns/format.js';
import type { Context, Result } from '../pipeline/types.js';

export type OnAnswer = (ctx: Context, result: Result, ms: number) => void;

/** The handler's `onAnswer`: `metrics.query`, then the query log when `queries()` says so. */
export function answerObserver(metrics: { query: OnAnswer }, log: Logger, queries: () => boolean): OnAnswer {
  return (ctx, result, ms) => {
    try {
      metrics.query(ctx, result, ms);
      if (queries()) logQuery(log, ctx, result, ms);
    } catch (err) {
      log.error({ err }, 'metrics or query log failed');
    }
  };
}

/** One query log line (info, message `query`). */
export function logQuery(log: Logger, ctx: Context, result: Result, ms: number): void {
  log.info(
    {
      client: ctx.client.address,
      qname: ctx.query.name,
      qtype: ctx.query.type,
      rcode: rcodeName(result.rcode),
      source: result.source,
      cache: cacheStatus(result.source),
      ...(result.upstream ? { upstream: result.upstream } : {}),
      ms: Math.round(ms * 10) / 10,
      transport: ctx.transport,
    },
    'query',
  );
}

function cacheStatus(source: Result['source']): string {
  switch (source) {
    case 'cache':
      return 'hit';
    case 'stale':
      return 'stale';
    case 'upstream':
    case 'error':
      return 'miss';
    default:
      return 'none';
  }
}
