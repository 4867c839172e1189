/** The coalesce stage's setup, from `timeoutMs` (a shared exchange's deadline) and `maxInflight`. */
import type { Config } from '../../config/schema.js';
import { CoalesceStage } from './stage.js';

/** The config keys whose change rebuilds the stage on reload (exchanges in flight finish on the old one). */
export const COALESCE_RELOADS = ['timeoutMs', 'maxInflight'] as const satisfies readonly (keyof Config)[];

export function buildCoalesce(config: Config): CoalesceStage {
  return new CoalesceStage({ timeoutMs: config.timeoutMs, maxInflight: config.maxInflight });
}
