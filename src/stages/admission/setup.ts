/** The admission stage's setup: its options from `acl`, `rateLimit`, `ecs` and `any`. */
import type { Config } from '../../config/schema.js';
import type { PolicyOptions } from './stage.js';

/** The config keys applied on reload, in place (PolicyStage.update: the counters carry on, the buckets start afresh). */
export const ADMISSION_RELOADS = ['acl', 'rateLimit', 'ecs', 'any'] as const satisfies readonly (keyof Config)[];

/** PolicyStage options from the config. */
export function policyOptionsFrom(config: Pick<Config, 'acl' | 'rateLimit' | 'ecs' | 'any'>): PolicyOptions {
  return {
    acl: config.acl.allow,
    rateLimit: config.rateLimit,
    keepEcs: config.ecs.keep,
    any: config.any,
  };
}
