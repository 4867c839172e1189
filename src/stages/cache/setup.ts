/** The cache stage's setup: the answer cache and its stage, from `cache` and `timeoutMs`. */
import type { Logger } from 'pino';
import { staleClientTimeout } from '../../config/check.js';
import type { Config } from '../../config/schema.js';
import { AnswerCache } from './answer-cache.js';
import { CacheStage } from './stage.js';

/** The config keys whose change starts a new, empty cache on reload. */
export const CACHE_RELOADS = ['cache', 'timeoutMs'] as const satisfies readonly (keyof Config)[];

/** The answer cache and its stage. */
export function buildCache(config: Config, log: Logger, now: () => number): { cache: AnswerCache; cacheStage: CacheStage } {
  const c = config.cache;
  const cache = new AnswerCache({
    maxEntries: c.maxEntries,
    maxBytes: c.maxBytes,
    minTtl: c.minTtl,
    maxTtl: c.maxTtl,
    negativeMaxTtl: c.negativeMaxTtl,
    staleWindow: c.staleWindow,
    now,
  });
  const cacheStage = new CacheStage(cache, {
    staleTtl: c.staleTtl,
    staleClientTimeoutMs: staleClientTimeout(config),
    staleRecheckMs: c.staleRecheckMs,
    prefetchHits: c.prefetchHits,
    prefetchThreshold: c.prefetchThreshold,
    refreshTimeoutMs: config.timeoutMs,
    log,
    now,
  });
  return { cache, cacheStage };
}
