/** The pins stage's setup: the pinned names, and their health checks when any pin asks for `verify`. */
import type { Logger } from 'pino';
import type { Config } from '../../config/schema.js';
import { PinHealth } from './health.js';
import { buildPins, PinsStage } from './stage.js';

/** The config keys whose change rebuilds the pins (and restarts their checks) on reload. */
export const PINS_RELOADS = ['pins', 'pinTtl', 'pinVerify'] as const satisfies readonly (keyof Config)[];

/** The pins, and their health checks when any pin asks for `verify`. */
export function buildPinsStage(config: Config, log: Logger): { pinsStage: PinsStage; pinHealth: PinHealth | undefined } {
  const pins = buildPins(config);
  const pinHealth = [...pins.values()].some((p) => p.verify) ? new PinHealth(pins, { ...config.pinVerify, log }) : undefined;
  return { pinsStage: new PinsStage(pins, pinHealth), pinHealth };
}
