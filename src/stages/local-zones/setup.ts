/** The local-zones stage's setup: `localZones`, yielding to the forward rules (a rule for home.arpa wins). */
import type { Config } from '../../config/schema.js';
import type { RouteStage } from '../forward/route.js';
import { LocalZonesStage } from './stage.js';

/** The config keys whose change rebuilds the stage on reload (forward: a rule takes a zone over). */
export const LOCAL_ZONES_RELOADS = ['localZones', 'forward'] as const satisfies readonly (keyof Config)[];

export function buildLocalZones(config: Config, route: RouteStage): LocalZonesStage {
  return new LocalZonesStage(config.localZones, (lname) => route.groupFor(lname) !== undefined);
}
