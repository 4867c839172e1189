/**
 * The records dohd builds for the zones it answers itself (the table of zones is
 * config/local-zones.ts, which the schema reads too): their SOA and TTL.
 */
import type dnsPacket from 'dns-packet';

export { LOCAL_ZONES, LOCALHOST_PTR, isLocalZoneKey, type LocalZone, type LocalZoneKind } from '../../config/local-zones.js';

/** The SOA the local zones carry (Unbound's: `localhost. nobody.invalid. 1 3600 1200 604800 10800`). */
export const LOCAL_SOA = { mname: 'localhost', rname: 'nobody.invalid', serial: 1, refresh: 3600, retry: 1200, expire: 604800, minimum: 10800 } as const;
/** TTL of every locally built record (Unbound's default for its local zones). */
export const LOCAL_TTL = 10800;

/**
 * The SOA for an empty NOERROR that dohd makes for a name it answers itself (a pin, a hosts
 * entry, a local zone): without one, a NODATA answer to a client without EDNS would be empty
 * in every section, which Go reads as a lame referral and skips the server (golang/go#15434).
 */
export function localSoa(owner: string, ttl: number = LOCAL_TTL): dnsPacket.Answer {
  return { name: owner, type: 'SOA', class: 'IN', ttl, data: { ...LOCAL_SOA, minimum: ttl } };
}
