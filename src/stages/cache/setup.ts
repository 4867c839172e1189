/** The cache stage's setup: the answer cache and its stage, from `cache` and `timeoutMs`. */
import type { Logger } from 'pino';
import { staleClientTimeout } from '../../config/check.js';
import type { Config } from '../../config/schema.js';
import { AnswerCache, type CacheOptions } from './answer-cache.js';
import { CacheStage, type CacheStageOptions } from './stage.js';

/** The config keys whose change starts a new, empty cache on reload. */
export const CACHE_RELOADS = ['cache', 'timeoutMs'] as const satisfies readonly (keyof Config)[];

/** AnswerCache options from `cache`. */
export function answerCacheOptionsFrom(config: Pick<Config, 'cache'>): CacheOptions {
  const c = config.cache;
  return { maxEntries: c.maxEntries, maxBytes: c.maxBytes, minTtl: c.minTtl, maxTtl: c.maxTtl, negativeMaxTtl: c.negativeMaxTtl, staleWindow: c.staleWindow };
}

/** CacheStage options from `cache` and `timeoutMs` (a refresh's deadline, and what the stale budget defaults to). */
export function cacheStageOptionsFrom(config: Config): CacheStageOptions {
  const c = config.cache;
  return {
    staleTtl: c.staleTtl,
    staleClientTimeoutMs: staleClientTimeout(config),
    staleRecheckMs: c.staleRecheckMs,
    prefetchHits: c.prefetchHits,
    prefetchThreshold: c.prefetchThreshold,
    refreshTimeoutMs: config.timeoutMs,
  };
}

/** The answer cache and its stage. */
export function buildCache(config: Config, log: Logger, now: () => number): { cache: AnswerCache; cacheStage: CacheStage } {
  const cache = new AnswerCache({ ...answerCacheOptionsFrom(config), now });
  const cacheStage = new CacheStage(cache, { ...cacheStageOptionsFrom(config), log, now });
  return { cache, cacheStage };
}
