/**
 * Warm restart: the cache saved to a file on clean shutdown and loaded at start. Entries
 * keep their wall-clock store time, so the time dohd was down counts against their TTL;
 * entries expired beyond the serve-stale window are skipped.
 *
 * Format (all big-endian): magic "DOHDCAC1", u32 count, then per entry, most recently
 * used first: u16 key length, key (UTF-8), f64 storedAt, u32 ttl, u8 rcode, u8 negative,
 * u16 TTL count, u32 TTLs, u32 wire length, wire. Written to FILE.tmp, then renamed.
 */
import { accessSync, closeSync, constants as fsConstants, fsyncSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import { ttlOffsets } from '../../dns/wire.js';
import { newEntry, type AnswerCache, type CacheEntry } from './answer-cache.js';

const MAGIC = Buffer.from('DOHDCAC1');

export function saveCache(cache: AnswerCache, file: string): number {
  const chunks: Buffer[] = [MAGIC, Buffer.alloc(4)];
  let count = 0;
  for (const [key, e] of cache.entries()) {
    const k = Buffer.from(key, 'utf8');
    const wire = Buffer.from(e.wire, 'latin1');
    const n = e.offsets.length;
    const head = Buffer.alloc(2 + k.length + 8 + 4 + 1 + 1 + 2 + 4 * n + 4);
    let o = head.writeUInt16BE(k.length, 0);
    o += k.copy(head, o);
    o = head.writeDoubleBE(e.storedAt, o);
    o = head.writeUInt32BE(e.ttl, o);
    o = head.writeUInt8(e.rcode, o);
    o = head.writeUInt8(e.negative ? 1 : 0, o);
    o = head.writeUInt16BE(n, o);
    for (let i = 0; i < n; i++) o = head.writeUInt32BE(wire.readUInt32BE(e.offsets.charCodeAt(i)), o);
    head.writeUInt32BE(wire.length, o);
    chunks.push(head, wire);
    count++;
  }
  chunks[1]!.writeUInt32BE(count, 0);
  const tmp = `${file}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    for (const c of chunks) writeSync(fd, c);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      /* already gone */
    }
    throw err;
  }
  closeSync(fd);
  renameSync(tmp, file);
  return count;
}

export interface LoadResult {
  loaded: number;
  skipped: number;
}

/** Loads a saved cache; throws (with a short reason) when the file is not one of ours or is cut short. */
export function loadCache(cache: AnswerCache, file: string): LoadResult {
  const buf = readFileSync(file);
  if (buf.length < 12 || !buf.subarray(0, 8).equals(MAGIC)) throw new Error('not a dohd cache file');
  const count = buf.readUInt32BE(8);
  let o = 12;
  const need = (n: number) => {
    if (o + n > buf.length) throw new Error(`cut short at byte ${o}`);
  };
  const parsed: [string, CacheEntry][] = [];
  for (let i = 0; i < count; i++) {
    need(2);
    const klen = buf.readUInt16BE(o);
    o += 2;
    need(klen + 16);
    const key = buf.toString('utf8', o, o + klen);
    o += klen;
    const storedAt = buf.readDoubleBE(o);
    const ttl = buf.readUInt32BE(o + 8);
    const rcode = buf.readUInt8(o + 12);
    const negative = buf.readUInt8(o + 13) === 1;
    const n = buf.readUInt16BE(o + 14);
    o += 16;
    need(4 * n + 4);
    const ttls: number[] = [];
    for (let j = 0; j < n; j++) ttls.push(buf.readUInt32BE(o + 4 * j));
    o += 4 * n;
    const wlen = buf.readUInt32BE(o);
    o += 4;
    need(wlen);
    // A copy: the stored TTLs are written into it (the saved wire may carry the upstream's own).
    const wire = Buffer.from(buf.subarray(o, o + wlen));
    o += wlen;
    const offsets = ttlOffsets(wire);
    if (!offsets || offsets.length !== n || !Number.isFinite(storedAt)) throw new Error(`entry ${i} (${key}) is damaged`);
    offsets.forEach((at, j) => wire.writeUInt32BE(ttls[j]!, at));
    parsed.push([key, newEntry(wire, offsets, { storedAt, ttl, rcode, negative, hits: 0 })]);
  }
  let loaded = 0;
  // Least recently used first, so the most recently used ends up on top again.
  for (let i = parsed.length - 1; i >= 0; i--) {
    if (cache.restore(parsed[i]![0], parsed[i]![1])) loaded++;
  }
  return { loaded, skipped: parsed.length - loaded };
}

/** Warm start (`cache.file`): loads the saved cache, says how it went, and warns now if it cannot be saved at stop. */
export function warmStart(cache: AnswerCache, file: string, log: Logger): void {
  try {
    const r = loadCache(cache, file);
    log.info({ file, ...r }, 'cache loaded');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') log.info({ file }, 'no saved cache yet');
    else log.warn({ file, err: code ?? (err as Error).message }, 'saved cache unusable; starting empty');
  }
  // The file is written at stop (FILE.tmp, then renamed): say now if that cannot work
  // (a read-only or foreign StateDirectory), rather than only when stopping.
  try {
    accessSync(dirname(file), fsConstants.W_OK);
  } catch (err) {
    log.warn(
      { file, err: (err as NodeJS.ErrnoException).code ?? (err as Error).message },
      'cache.file: its directory is not writable; dohd serves as usual, but the cache will not be saved at stop',
    );
  }
}

/** Saves the cache at stop (`cache.file`); a failure is logged, never thrown. */
export function saveAtStop(cache: AnswerCache, file: string, log: Logger): void {
  try {
    const entries = saveCache(cache, file);
    log.info({ file, entries }, 'cache saved');
  } catch (err) {
    log.warn({ file, err: (err as NodeJS.ErrnoException).code ?? (err as Error).message }, 'could not save the cache');
  }
}
