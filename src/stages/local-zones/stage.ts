/**
 * The local-zones stage, after pins and hosts and before the cache: names in the built-in
 * local zones (zones.ts) are answered here, synchronously, and never leave the machine.
 * A `forward` rule covering the name wins (the name goes to that group), as do pins and the
 * hosts file (earlier stages); `localZones` in the configuration turns zones off.
 *
 * Every other query pays one `lastIndexOf` and an array lookup by the length of its top-level
 * label, reading the name inside the cache key (no string is built): only names under
 * localhost, test, invalid, onion, local, arpa and use-application-dns.net look any further.
 */
import type { Answer } from '../../dns/message.js';
import { addressAnswers, localReply } from '../../dns/message.js';
import { WireQuery } from '../../dns/fast-query.js';
import { closestZone } from '../../dns/zone-match.js';
import { HEADER_LEN, questionEnd, Rcode } from '../../dns/wire.js';
import { PASS, type Context, type Result, type Stage } from '../../pipeline/types.js';
import { LOCAL_TTL, LOCAL_ZONES, LOCALHOST_PTR, localSoa, type LocalZone } from './zones.js';

/** `localZones` from the configuration: false turns every zone off; `{ zone: false }` turns off that zone and every zone under it. */
export type LocalZonesConfig = false | Record<string, boolean>;

/** Zones under one top-level label tried one by one before a name is walked label by label. */
const MAX_TRIED = 4;

/** What `localhost` and every name under it answer (RFC 6761 §6.3). */
const LOOPBACK_V4 = ['127.0.0.1'];
const LOOPBACK_V6 = ['::1'];

export class LocalZonesStage implements Stage {
  readonly name = 'local-zones';
  /** Local answers, by zone (label values come from the built-in table only). */
  readonly answered = new Map<string, number>();
  private readonly zones = new Map<string, LocalZone>();
  /**
   * Top-level labels that hold an enabled zone, by length, each with its zones (null when it
   * holds too many to try one by one: arpa, whose names are walked label by label instead).
   */
  private readonly tlds: { tld: string; zones: string[] | null }[][] = [];
  private readonly ptrLocalhost = new Set(LOCALHOST_PTR);

  /**
   * @param forwarded tells whether a `forward` rule covers a lower-case name (those names are not answered here).
   */
  constructor(
    config: LocalZonesConfig,
    private readonly forwarded: (lname: string) => boolean = () => false,
  ) {
    if (config === false) return;
    const off = Object.entries(config)
      .filter(([, on]) => !on)
      .map(([k]) => k.replace(/\.$/, '').toLowerCase());
    for (const zone of LOCAL_ZONES) {
      if (off.some((o) => zone.zone === o || zone.zone.endsWith(`.${o}`))) continue;
      this.zones.set(zone.zone, zone);
      const tld = zone.zone.slice(zone.zone.lastIndexOf('.') + 1);
      const same = (this.tlds[tld.length] ??= []);
      let entry = same.find((e) => e.tld === tld);
      if (!entry) same.push((entry = { tld, zones: [] }));
      entry.zones?.push(zone.zone);
      if (entry.zones && entry.zones.length > MAX_TRIED) entry.zones = null;
    }
  }

  /** The enabled zones (for `dohd check-config` and tests). */
  get enabled(): string[] {
    return [...this.zones.keys()];
  }

  decide(ctx: Context): Result | typeof PASS {
    const q = ctx.query;
    // A query read by the fast lane has its lower-cased name at the start of its cache key:
    // looking there leaves `lname` unbuilt (a cache hit never needs it).
    if (q instanceof WireQuery ? !this.mayHold(q.key, q.nameLength) : !this.mayHold(q.lname, q.lname.length)) return PASS;
    if (q.qclass !== 1) return PASS;
    const lname = q.lname;
    const zone = this.zoneOf(lname);
    if (zone === undefined || this.forwarded(lname)) return PASS;
    this.answered.set(zone.zone, (this.answered.get(zone.zone) ?? 0) + 1);
    return this.answer(ctx, zone);
  }

  /**
   * A first look at the top-level label of the name in s[0, nameLength), allocating nothing:
   * false for every name whose top-level label holds no enabled zone (localhost, invalid,
   * onion, local, test, arpa, net).
   */
  private mayHold(s: string, nameLength: number): boolean {
    if (nameLength === 0) return false;
    const dot = s.lastIndexOf('.', nameLength - 1);
    const same = this.tlds[nameLength - dot - 1];
    if (same === undefined) return false;
    for (let i = 0; i < same.length; i++) {
      const e = same[i]!;
      if (!s.startsWith(e.tld, dot + 1)) continue;
      if (e.zones === null) return true;
      for (const z of e.zones) {
        const at = nameLength - z.length;
        if (at >= 0 && s.startsWith(z, at) && (at === 0 || s.charCodeAt(at - 1) === 0x2e)) return true;
      }
      return false;
    }
    return false;
  }

  /** The enabled zone holding the name, or undefined. */
  private zoneOf(lname: string): LocalZone | undefined {
    return closestZone(this.zones, lname);
  }

  private answer(ctx: Context, zone: LocalZone): Result {
    const q = ctx.query;
    // By name, as the pins and hosts stages match it.
    const qtype = q.type;
    const apex = q.lname === zone.zone;
    const answers: Answer[] = [];
    let rcode: number = Rcode.NOERROR;
    if (zone.kind === 'always-nxdomain') {
      rcode = Rcode.NXDOMAIN;
    } else if (this.ptrLocalhost.has(q.lname)) {
      if (qtype === 'PTR' || qtype === 'ANY') answers.push({ name: q.name, type: 'PTR', class: 'IN', ttl: LOCAL_TTL, data: 'localhost' });
    } else if (apex && (qtype === 'SOA' || qtype === 'ANY')) {
      answers.push(soa(q.name));
    } else if (apex && qtype === 'NS') {
      answers.push({ name: q.name, type: 'NS', class: 'IN', ttl: LOCAL_TTL, data: 'localhost' });
    } else if (zone.kind === 'localhost') {
      addressAnswers(q, LOOPBACK_V4, LOOPBACK_V6, LOCAL_TTL, answers);
    } else if (zone.kind === 'nxdomain' && !apex) {
      rcode = Rcode.NXDOMAIN;
    }
    // Negative answers carry the zone's SOA, so clients and caches keep them for its MINIMUM.
    const authorities = answers.length === 0 ? [soa(zone.zone)] : [];
    const wire = localReply(q, answers, rcode, authorities);
    // The question as the client sent it (its type number too, when dns-packet has no name for it).
    if (questionEnd(wire) === HEADER_LEN + q.question.length) q.question.copy(wire, HEADER_LEN);
    return { wire, source: 'local', rcode, local: zone.why };
  }
}

function soa(owner: string): Answer {
  return localSoa(owner);
}
