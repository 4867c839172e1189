/**
 * Answers kept as wire bytes, bounded by entry count and by (approximate) bytes, least
 * recently used going first. A hit copies the bytes and writes the remaining TTL into each
 * record in place: no decode, no re-encode.
 *
 * Entries outlive their TTL by the serve-stale window (RFC 8767): `lookup` tells fresh from
 * stale, and the cache stage decides when a stale answer may go out.
 */
import { LRUCache } from 'lru-cache';
import type { CacheConfig } from '../../config/schema.js';
import type { Packet } from '../../dns/message.js';
import { Rcode, ttlOffsets, u32 } from '../../dns/wire.js';

/**
 * One cached answer. Kept small: a cache of 100,000 names is mostly these, and V8 lets its old
 * generation grow to a multiple of what is live (src/daemon/heap.ts), so every byte here counts more
 * than once in the resident set.
 */
export interface CacheEntry {
  /**
   * Answer with ID 0, no OPT record and each record's TTL as stored (clamped), one character
   * per byte (latin1): a string of n bytes costs about n + 16 bytes of heap, a Buffer about
   * 300 more (its object, its ArrayBuffer, or a share of an 8 KiB pool slab that every other
   * short-lived Buffer also pins).
   */
  wire: string;
  /**
   * Where each record's TTL is in `wire`, one UTF-16 code unit per record (an answer is at most
   * 65,535 bytes): a one-byte string of 24 bytes where a number[] takes 56 and up.
   */
  offsets: string;
  /** Date.now() when stored. */
  storedAt: number;
  /** Seconds the entry stays fresh. */
  ttl: number;
  rcode: number;
  /** NXDOMAIN or NODATA (RFC 2308). */
  negative: boolean;
  /** Fresh hits since stored (prefetch popularity). */
  hits: number;
  /** A prefetch or refresh of this entry is in flight. */
  refreshing: boolean;
  /** Date.now() of the last failed refresh; 0 when none. */
  failedAt: number;
}

/** Its slice of the parsed `cache` config, as is (the schema has the defaults and the meanings). */
export type CacheOptions = Pick<CacheConfig, 'maxEntries' | 'maxBytes' | 'minTtl' | 'maxTtl' | 'negativeMaxTtl' | 'staleWindow'> & {
  now?: () => number;
};

export type CacheLookup =
  | { state: 'fresh'; entry: CacheEntry; ageMs: number }
  | { state: 'stale'; entry: CacheEntry; ageMs: number };

/** NXDOMAIN, or NOERROR without an answer to the question (NODATA). */
export function isNegative(packet: Packet, rcode: number): boolean {
  return rcode === Rcode.NXDOMAIN || (rcode === Rcode.NOERROR && (packet.answers ?? []).length === 0);
}

/**
 * How long an answer may be cached (RFC 2181 §5.2, RFC 2308 §5): the smallest TTL of its
 * records, an SOA counting as min(TTL, MINIMUM); a negative answer without an SOA is not
 * cached. 0 means "do not cache".
 */
export function cacheableTtl(packet: Packet, rcode: number): number {
  if (rcode !== Rcode.NOERROR && rcode !== Rcode.NXDOMAIN) return 0;
  if (packet.flags !== undefined && (packet.flags & 0x0200) !== 0) return 0; // truncated
  const answers = packet.answers ?? [];
  const authorities = packet.authorities ?? [];
  const soa = authorities.find((rr) => rr.type === 'SOA') as { ttl?: number; data: { minimum: number } } | undefined;
  if (isNegative(packet, rcode) && !soa) return 0;
  let min = Infinity;
  for (const rr of [...answers, ...authorities]) {
    if (rr.type === 'OPT') continue;
    const ttl = (rr as { ttl?: number }).ttl ?? 0;
    min = Math.min(min, rr.type === 'SOA' ? Math.min(ttl, (rr as typeof soa)!.data.minimum) : ttl);
  }
  return Number.isFinite(min) ? min : 0;
}

/** What an entry holds besides its answer. */
export type EntryMeta = Pick<CacheEntry, 'storedAt' | 'ttl' | 'rcode' | 'negative' | 'hits'>;

/**
 * A cache entry for `wire` (an answer as stored: ID 0, no OPT, TTLs as they are to count down
 * from) whose record TTLs are at `offsets` (ttlOffsets). Every entry is built here, by one
 * object literal that names every field: entries then share one hidden class. Built by
 * spreading an object into a literal (`{ ...fields, storedAt, ... }`), each entry got a hidden
 * class of its own in V8 (with `storedAt`, a double): about 330 bytes more per entry, a third
 * of the heap with 100,000 names.
 */
export function newEntry(wire: Buffer, offsets: number[], m: EntryMeta): CacheEntry {
  return {
    wire: wire.toString('latin1'),
    offsets: String.fromCharCode(...offsets),
    storedAt: m.storedAt,
    ttl: m.ttl,
    rcode: m.rcode,
    negative: m.negative,
    hits: m.hits,
    refreshing: false,
    failedAt: 0,
  };
}

/** `newEntry` for a stored answer from elsewhere (another worker), or null when it does not parse. */
export function storedEntry(wire: Buffer, m: EntryMeta): CacheEntry | null {
  const offsets = ttlOffsets(wire);
  return offsets && newEntry(wire, offsets, m);
}

/**
 * The key as one flat string. Keys built by concatenation (`cacheKey`) are kept by V8
 * as a tree of pieces — several hundred bytes per key if stored as is. A JSON round trip
 * gives back the same string (any code unit, lone surrogates included) in one piece.
 */
function flatKey(key: string): string {
  return JSON.parse(JSON.stringify(key)) as string;
}

/** Bytes an entry is charged against `maxBytes`: its wire, key and bookkeeping. */
function entrySize(e: CacheEntry, key: string): number {
  return e.wire.length + key.length * 2 + e.offsets.length * 2 + 200;
}

export class AnswerCache {
  private readonly lru: LRUCache<string, CacheEntry>;
  private readonly now: () => number;
  readonly minTtl: number;
  readonly maxTtl: number;
  readonly negativeMaxTtl: number;
  readonly staleWindow: number;
  readonly enabled: boolean;
  /** Told about every answer `set` stores (not `restore`): workers share their caches through it. */
  onStore?: (key: string, e: CacheEntry) => void;

  constructor(opts: CacheOptions) {
    this.now = opts.now ?? Date.now;
    this.minTtl = opts.minTtl;
    this.maxTtl = opts.maxTtl;
    this.negativeMaxTtl = opts.negativeMaxTtl;
    this.staleWindow = opts.staleWindow;
    this.lru = new LRUCache<string, CacheEntry>({
      max: Math.max(1, opts.maxEntries),
      maxSize: Math.max(4096, opts.maxBytes),
      sizeCalculation: (e, key) => entrySize(e, key),
    });
    this.enabled = opts.maxEntries > 0;
  }

  get size(): number {
    return this.lru.size;
  }

  /** Approximate bytes held. */
  get bytes(): number {
    return this.lru.calculatedSize;
  }

  /**
   * Stores an answer for `ttl` seconds (clamped); returns the entry, or undefined when it is
   * not cacheable. Popularity carries over from the entry it replaces.
   */
  set(key: string, wire: Buffer, ttl: number, rcode: number, negative = rcode === Rcode.NXDOMAIN): CacheEntry | undefined {
    if (!this.enabled) return undefined;
    const floor = negative ? 0 : this.minTtl;
    const entryTtl = negative ? Math.min(ttl, this.negativeMaxTtl) : Math.min(Math.max(ttl, this.minTtl), this.maxTtl);
    if (entryTtl <= 0) return undefined;
    const offsets = ttlOffsets(wire);
    if (!offsets) return undefined;
    const stored = Buffer.from(wire);
    for (const o of offsets) stored.writeUInt32BE(Math.min(Math.max(wire.readUInt32BE(o), floor), entryTtl), o);
    const old = this.lru.peek(key);
    const e = newEntry(stored, offsets, { storedAt: this.now(), ttl: entryTtl, rcode, negative, hits: old ? old.hits : 0 });
    const k = flatKey(key);
    this.lru.set(k, e);
    if (this.lru.peek(k) !== e) return undefined;
    this.onStore?.(k, e);
    return e;
  }

  /** Fresh or stale (within the window) entry; counts a hit on a fresh one. Expired beyond the window is dropped. */
  lookup(key: string): CacheLookup | undefined {
    const e = this.lru.get(key);
    if (!e) return undefined;
    const ageMs = Math.max(0, this.now() - e.storedAt);
    if (ageMs < e.ttl * 1000) {
      e.hits++;
      return { state: 'fresh', entry: e, ageMs };
    }
    if (ageMs < (e.ttl + this.staleWindow) * 1000) return { state: 'stale', entry: e, ageMs };
    this.lru.delete(key);
    return undefined;
  }

  /** A fresh answer with TTLs counted down, or undefined. */
  get(key: string): Buffer | undefined {
    const l = this.lookup(key);
    return l?.state === 'fresh' ? render(l.entry, Math.floor(l.ageMs / 1000)) : undefined;
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

  /** Entries from most to least recently used (for saving). */
  *entries(): Generator<[string, CacheEntry]> {
    for (const [k, v] of this.lru.entries()) yield [k, v];
  }

  /** Puts back a saved entry as it was (warm restart); false when it is expired beyond the window. */
  restore(key: string, e: CacheEntry): boolean {
    if (!this.enabled) return false;
    const ageMs = this.now() - e.storedAt;
    if (ageMs >= (e.ttl + this.staleWindow) * 1000) return false;
    const stored = flatKey(key);
    this.lru.set(stored, e);
    return this.lru.peek(stored) === e;
  }
}

/**
 * Copies the entry's wire with each TTL lowered by `age` seconds. A stale rendering
 * (`staleTtl` given) writes that TTL into every record (RFC 8767 §4: 30 s).
 */
export function render(e: CacheEntry, age: number, staleTtl?: number): Buffer {
  const out = Buffer.from(e.wire, 'latin1');
  if (age === 0 && staleTtl === undefined) return out;
  const offsets = e.offsets;
  for (let i = 0; i < offsets.length; i++) {
    // The offsets were found in this very wire (ttlOffsets): 4 bytes each, in bounds.
    const at = offsets.charCodeAt(i);
    const ttl = staleTtl ?? Math.max(0, u32(out, at) - age);
    out[at] = ttl >>> 24;
    out[at + 1] = ttl >>> 16;
    out[at + 2] = ttl >>> 8;
    out[at + 3] = ttl;
  }
  return out;
}
