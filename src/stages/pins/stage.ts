/**
 * Pins: names answered locally with fixed addresses (the Go module proxies, typically),
 * so a broken or polluted resolver path cannot break `go mod download`.
 */
import { isIP } from 'node:net';
import { addressAnswers, localReply } from '../../dns/message.js';
import { Rcode } from '../../dns/wire.js';
import type { Config } from '../../config/schema.js';
import { localSoa } from '../local-zones/zones.js';
import { PASS, type Context, type Result, type Stage } from '../../pipeline/types.js';

export interface Pin {
  v4: string[];
  v6: string[];
  ttl: number;
  /** Addresses are checked by pin health (stages/pins/health.ts). */
  verify?: boolean;
}

/** Filters a pin's addresses by their health; null sends the name to the upstreams. */
export interface PinFilter {
  live(lname: string, pin: Pin): Pin | null;
}

export function buildPins(config: Pick<Config, 'pins' | 'pinTtl'>): Map<string, Pin> {
  const pins = new Map<string, Pin>();
  for (const [name, spec] of Object.entries(config.pins)) {
    const addresses = Array.isArray(spec) ? spec : spec.addresses;
    const ttl = Array.isArray(spec) ? config.pinTtl : (spec.ttl ?? config.pinTtl);
    pins.set(name.replace(/\.$/, '').toLowerCase(), {
      v4: addresses.filter((a) => isIP(a) === 4),
      v6: addresses.filter((a) => isIP(a) === 6),
      ttl,
      ...(!Array.isArray(spec) && spec.verify ? { verify: true } : {}),
    });
  }
  return pins;
}

export class PinsStage implements Stage {
  readonly name = 'pins';
  /** Queries for pinned names sent upstream because every pinned address failed verification. */
  unverified = 0;

  constructor(
    private pins: Map<string, Pin>,
    private readonly filter?: PinFilter,
  ) {}

  update(pins: Map<string, Pin>): void {
    this.pins = pins;
  }

  /** The addresses a pinned name currently answers with (pin health); null: ask upstream. */
  protected addresses(lname: string, pin: Pin): Pin | null {
    return this.filter ? this.filter.live(lname, pin) : pin;
  }

  decide(ctx: Context): Result | typeof PASS {
    if (this.pins.size === 0) return PASS;
    const q = ctx.query;
    const pin = this.pins.get(q.lname);
    if (!pin || q.qclass !== 1) return PASS;
    const live = this.addresses(q.lname, pin);
    if (!live) {
      this.unverified++;
      return PASS;
    }
    const answers = addressAnswers(q, live.v4, live.v6, pin.ttl);
    // Other types for a pinned name: NODATA (with a SOA: never empty in every section), so clients fall back to A/AAAA.
    return { wire: localReply(q, answers, Rcode.NOERROR, answers.length === 0 ? [localSoa(q.name, pin.ttl)] : []), source: 'pin', rcode: Rcode.NOERROR };
  }
}
