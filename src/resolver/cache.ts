/** The cache stage: answer from the cache, or ask the next stage and remember its answer. */
import { AnswerCache, cacheableTtl, cacheKey } from '../cache/answer-cache.js';
import { Rcode } from '../dns/wire.js';
import type { Context, Next, Result, Stage } from './types.js';

export function keyFor(ctx: Context): string {
  const q = ctx.query;
  const key = cacheKey(q.lname, q.qtype, q.qclass, q.edns?.dnssecOk ?? false, q.checkingDisabled);
  // A client subnet kept for upstream (ecs.keep) makes the answer depend on it.
  const ecs = q.edns?.options.find((o) => o.code === 8)?.data;
  return ecs ? `${key}|ecs:${ecs.toString('hex')}` : key;
}

export class CacheStage implements Stage {
  readonly name = 'cache';
  hits = 0;
  misses = 0;

  constructor(readonly cache: AnswerCache) {}

  async handle(ctx: Context, next: Next): Promise<Result> {
    const key = keyFor(ctx);
    const hit = this.cache.get(key);
    if (hit) {
      this.hits++;
      return { wire: hit, source: 'cache', rcode: hit.readUInt16BE(2) & 0xf };
    }
    this.misses++;
    const result = await next(ctx);
    if (result.source === 'upstream' && result.packet && (result.rcode === Rcode.NOERROR || result.rcode === Rcode.NXDOMAIN)) {
      this.cache.set(key, result.wire, cacheableTtl(result.packet, result.rcode), result.rcode);
    }
    return result;
  }
}
