/**
 * The cache shared between workers (`--workers N`): each worker has its own cache, and an answer
 * one worker stores is sent through the primary to the others, which keep it with its original
 * store time, so a name asked once is a hit in every worker. Every worker holds a copy: memory
 * grows with the number of workers.
 *
 * - In a worker, `CacheShare` sends what the current cache stores and restores what the others
 *   stored; the daemon attaches every cache it builds (at start-up and on each reload).
 * - In the primary, `CacheRelay` passes each worker's entries on to the others, dropping them for a
 *   worker that already has MAX_PENDING_RELAYS unsent (one that does not keep up).
 */
import type { Worker } from 'node:cluster';
import { storedEntry, type AnswerCache, type CacheEntry } from './answer-cache.js';

/** The part of a cache entry another worker needs (no per-worker state). */
export type SharedEntry = Pick<CacheEntry, 'wire' | 'storedAt' | 'ttl' | 'rcode' | 'negative'>;

/** An entry one worker stored, on its way to the others (the `dohd` field tells dohd's messages from others). */
export interface CacheMessage {
  dohd: 'cache';
  key: string;
  entry: SharedEntry;
}

/** Unsent cache messages per worker past which the primary drops new ones. */
const MAX_PENDING_RELAYS = 2000;

/** A worker's side: its cache's new entries go out, the other workers' come in. */
export class CacheShare {
  private cache: AnswerCache | undefined;

  constructor(private readonly send: (msg: CacheMessage) => void) {}

  /** Shares this cache from now on: the one built at start-up, then each one a reload builds. */
  attach(cache: AnswerCache): void {
    this.cache = cache;
    cache.onStore = (key, e) => this.send({ dohd: 'cache', key, entry: { wire: e.wire, storedAt: e.storedAt, ttl: e.ttl, rcode: e.rcode, negative: e.negative } });
  }

  /** A message from the primary: an entry another worker stored goes into the current cache; anything else is ignored. */
  receive(msg: unknown): void {
    if (!isCacheMessage(msg)) return;
    const { wire, storedAt, ttl, rcode, negative } = msg.entry;
    const e = storedEntry(Buffer.from(wire, 'latin1'), { storedAt, ttl, rcode, negative, hits: 0 });
    if (e) this.cache?.restore(msg.key, e);
  }
}

/** The primary's side: passes each worker's entries on to the other workers, bounded per worker. */
export class CacheRelay {
  private readonly pending = new Map<Worker, number>();

  forward(from: Worker, msg: CacheMessage, workers: Iterable<Worker | undefined>): void {
    for (const w of workers) {
      if (!w || w === from || !w.isConnected()) continue;
      const n = this.pending.get(w) ?? 0;
      if (n >= MAX_PENDING_RELAYS) continue;
      this.pending.set(w, n + 1);
      w.send(msg, undefined, () => this.pending.set(w, (this.pending.get(w) ?? 1) - 1));
    }
  }

  /** A worker that exited. */
  forget(w: Worker): void {
    this.pending.delete(w);
  }
}

export function isCacheMessage(msg: unknown): msg is CacheMessage {
  const m = msg as Partial<CacheMessage> | null;
  const e = m?.entry;
  return m?.dohd === 'cache' && typeof m.key === 'string' && !!e && typeof e.wire === 'string' && Number.isFinite(e.storedAt) && Number.isFinite(e.ttl);
}
