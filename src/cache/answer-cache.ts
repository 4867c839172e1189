/**
 * Answers kept as wire bytes, bounded by entry count (least recently used goes first).
 * A hit copies the bytes and writes the remaining TTL into each record in place:
 * no decode, no re-encode.
 */
import { LRUCache } from 'lru-cache';
import type { Packet } from '../dns/message.js';
import { Rcode, ttlOffsets } from '../dns/wire.js';

export interface CacheEntry {
  /** Answer with ID 0 and no OPT record. */
  wire: Buffer;
  offsets: number[];
  ttls: number[];
  /** Date.now() when stored. */
  storedAt: number;
  /** Seconds the entry stays fresh. */
  ttl: number;
  rcode: number;
}

export interface CacheOptions {
  maxEntries: number;
  /** Upper bound of any cached TTL, seconds. */
  maxTtl?: number;
  now?: () => number;
}

export function cacheKey(lname: string, qtype: number, qclass: number, dnssecOk = false, cd = false): string {
  return `${lname}|${qtype}|${qclass}|${dnssecOk ? 1 : 0}${cd ? 1 : 0}`;
}

/**
 * How long an answer may be cached (RFC 2181 §5.2, RFC 2308 §5): the smallest TTL of its
 * records; for NXDOMAIN/NODATA the SOA's min(TTL, MINIMUM). 0 means "do not cache".
 */
export function cacheableTtl(packet: Packet, rcode: number): number {
  if (rcode !== Rcode.NOERROR && rcode !== Rcode.NXDOMAIN) return 0;
  if (packet.flags !== undefined && (packet.flags & 0x0200) !== 0) return 0; // truncated
  const answers = packet.answers ?? [];
  if (rcode === Rcode.NOERROR && answers.length > 0) {
    let min = Infinity;
    for (const rr of [...answers, ...(packet.authorities ?? [])]) {
      if (rr.type === 'OPT') continue;
      min = Math.min(min, (rr as { ttl?: number }).ttl ?? 0);
    }
    return Number.isFinite(min) ? min : 0;
  }
  const soa = (packet.authorities ?? []).find((rr) => rr.type === 'SOA') as
    | { ttl?: number; data: { minimum: number } }
    | undefined;
  if (!soa) return 0;
  return Math.min(soa.ttl ?? 0, soa.data.minimum);
}

export class AnswerCache {
  private readonly lru: LRUCache<string, CacheEntry>;
  private readonly now: () => number;
  private readonly maxTtl: number;

  constructor(opts: CacheOptions) {
    this.now = opts.now ?? Date.now;
    this.maxTtl = opts.maxTtl ?? 86400;
    this.lru = new LRUCache({ max: Math.max(1, opts.maxEntries) });
    this.enabled = opts.maxEntries > 0;
  }

  readonly enabled: boolean;

  get size(): number {
    return this.lru.size;
  }

  /** Stores an answer; returns false when it is not cacheable. */
  set(key: string, wire: Buffer, ttl: number, rcode: number): boolean {
    if (!this.enabled || ttl <= 0) return false;
    const offsets = ttlOffsets(wire);
    if (!offsets) return false;
    const capped = Math.min(ttl, this.maxTtl);
    const ttls = offsets.map((o) => Math.min(wire.readUInt32BE(o), capped));
    this.lru.set(key, { wire, offsets, ttls, storedAt: this.now(), ttl: capped, rcode });
    return true;
  }

  /** A fresh answer with TTLs counted down, or undefined. */
  get(key: string): Buffer | undefined {
    const e = this.lru.get(key);
    if (!e) return undefined;
    const age = Math.floor((this.now() - e.storedAt) / 1000);
    if (age >= e.ttl) return undefined;
    return render(e, age);
  }

  peek(key: string): CacheEntry | undefined {
    return this.lru.peek(key);
  }

  delete(key: string): void {
    this.lru.delete(key);
  }

  clear(): void {
    this.lru.clear();
  }
}

/** Copies the entry's wire with each TTL lowered by `age` seconds (never below `floor`). */
export function render(e: CacheEntry, age: number, floor = 0): Buffer {
  const out = Buffer.allocUnsafe(e.wire.length);
  e.wire.copy(out);
  for (let i = 0; i < e.offsets.length; i++) {
    out.writeUInt32BE(Math.max(floor, e.ttls[i]! - age), e.offsets[i]!);
  }
  return out;
}
