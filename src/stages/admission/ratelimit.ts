/**
 * Rate limit per client prefix (/24 for IPv4, /56 for IPv6: one site or one customer),
 * a token bucket each. The buckets live in an LRU map of bounded size: a flood from
 * many prefixes forgets the least recently seen ones (which then start with a full bucket).
 */
import { performance } from 'node:perf_hooks';
import { LRUCache } from 'lru-cache';
import { CidrList, parseClientAddress, type IpAddr } from '../../config/cidr.js';

export interface RateLimitOptions {
  /** Tokens added per second; 0 turns the limiter off. */
  qps: number;
  /** Bucket size; default twice qps (at least 1). */
  burst?: number;
  /** Prefixes tracked at once. */
  maxClients: number;
  /** Sources never limited. */
  exempt?: readonly string[];
  /** Milliseconds clock (tests). */
  now?: () => number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/** The bucket key of an address: its /24 (IPv4) or /56 (IPv6) prefix. */
export function clientPrefix(addr: IpAddr): string {
  const b = addr.toByteArray();
  if (addr.kind() === 'ipv4') return `${b[0]}.${b[1]}.${b[2]}/24`;
  let hex = '';
  for (let i = 0; i < 7; i++) hex += b[i]!.toString(16).padStart(2, '0');
  return `${hex}/56`;
}

/** Addresses whose bucket key is remembered (parsing one costs more than the bucket); cleared when full. */
const MEMO_MAX = 4096;
/** Memo values for sources that are never limited, and for addresses that do not parse. */
const EXEMPT = 0;
const INVALID = 1;

export class RateLimiter {
  private readonly memo = new Map<string, string | typeof EXEMPT | typeof INVALID>();
  readonly qps: number;
  readonly burst: number;
  private readonly buckets: LRUCache<string, Bucket>;
  private readonly exempt: CidrList;
  private readonly now: () => number;

  constructor(opts: RateLimitOptions) {
    this.qps = opts.qps;
    this.burst = opts.burst ?? Math.max(1, Math.ceil(opts.qps * 2));
    this.buckets = new LRUCache({ max: Math.max(1, opts.maxClients) });
    this.exempt = new CidrList(opts.exempt ?? []);
    this.now = opts.now ?? (() => performance.now());
  }

  get enabled(): boolean {
    return this.qps > 0;
  }

  /** Prefixes currently tracked (never above maxClients). */
  get size(): number {
    return this.buckets.size;
  }

  /** Takes one token for this source; false when it is over its limit. */
  take(address: string): boolean {
    if (!this.enabled) return true;
    const key = this.keyOf(address);
    if (key === EXEMPT) return true;
    if (key === INVALID) return false;
    const now = this.now();
    let b = this.buckets.get(key);
    if (!b) {
      b = { tokens: this.burst, at: now };
      this.buckets.set(key, b);
    } else {
      b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.qps);
      b.at = now;
    }
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  private keyOf(address: string): string | typeof EXEMPT | typeof INVALID {
    let key = this.memo.get(address);
    if (key === undefined) {
      const addr = parseClientAddress(address);
      key = !addr ? INVALID : this.exempt.size && this.exempt.has(addr) ? EXEMPT : clientPrefix(addr);
      if (this.memo.size >= MEMO_MAX) this.memo.clear();
      this.memo.set(address, key);
    }
    return key;
  }
}
