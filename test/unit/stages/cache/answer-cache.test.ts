import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dnsPacket from 'dns-packet';
import { AnswerCache, cacheableTtl, isNegative, render } from '../../../../src/stages/cache/answer-cache.js';
import { loadCache, saveCache } from '../../../../src/stages/cache/persist.js';
import { answerCacheOptions } from '../../../fixtures/config-defaults.js';

type Rr = dnsPacket.Answer;
const soa = (ttl: number, minimum: number): Rr => ({
  name: 'test',
  type: 'SOA',
  ttl,
  data: { mname: 'ns.example.net', rname: 'h.example.net', serial: 1, refresh: 1, retry: 1, expire: 1, minimum },
});

function answer(opts: { rcode?: number; answers?: Rr[]; authorities?: Rr[]; flags?: number } = {}) {
  const packet: dnsPacket.Packet = {
    type: 'response',
    id: 0,
    flags: (opts.flags ?? 0x8180) | (opts.rcode ?? 0),
    questions: [{ name: 'example.com', type: 'A', class: 'IN' }],
    answers: opts.answers ?? [],
    authorities: opts.authorities ?? [],
  };
  const wire = dnsPacket.encode(packet);
  return { wire, packet: dnsPacket.decode(wire), rcode: opts.rcode ?? 0 };
}

const a = (ttl: number, data = '192.0.2.1'): Rr => ({ name: 'example.com', type: 'A', ttl, data });

function clock(start = 1_000_000) {
  const c = { t: start, now: () => c.t };
  return c;
}

function ttlsOf(wire: Buffer): number[] {
  const p = dnsPacket.decode(wire);
  return [...(p.answers ?? []), ...(p.authorities ?? [])].map((r) => (r as { ttl: number }).ttl);
}

describe('cacheableTtl (RFC 2181, RFC 2308)', () => {
  it('is the smallest record TTL of a positive answer', () => {
    const r = answer({ answers: [a(300), a(120, '192.0.2.2')] });
    expect(cacheableTtl(r.packet, 0)).toBe(120);
    expect(isNegative(r.packet, 0)).toBe(false);
  });
  it('is min(SOA TTL, MINIMUM) for NXDOMAIN and NODATA', () => {
    const nx = answer({ rcode: 3, authorities: [soa(900, 60)] });
    expect(cacheableTtl(nx.packet, 3)).toBe(60);
    expect(isNegative(nx.packet, 3)).toBe(true);
    const nodata = answer({ authorities: [soa(30, 600)] });
    expect(cacheableTtl(nodata.packet, 0)).toBe(30);
    expect(isNegative(nodata.packet, 0)).toBe(true);
  });
  it('a negative answer without SOA, a truncated one, or SERVFAIL is not cached', () => {
    expect(cacheableTtl(answer({ rcode: 3 }).packet, 3)).toBe(0);
    expect(cacheableTtl(answer({ answers: [a(300)], flags: 0x8380 }).packet, 0)).toBe(0);
    expect(cacheableTtl(answer({ rcode: 2 }).packet, 2)).toBe(0);
  });
});

describe('AnswerCache', () => {
  it('clamps positive TTLs to [minTtl, maxTtl] and rewrites the records to match', () => {
    const c = clock();
    const cache = new AnswerCache(answerCacheOptions({ maxEntries: 10, minTtl: 30, maxTtl: 100, now: c.now, staleWindow: 0 }));
    const short = answer({ answers: [a(5)] });
    const e1 = cache.set('s', short.wire, 5, 0, false)!;
    expect(e1.ttl).toBe(30);
    expect(ttlsOf(render(e1, 0))).toEqual([30]);
    const long = answer({ answers: [a(3600), a(50, '192.0.2.9')] });
    const e2 = cache.set('l', long.wire, 50, 0, false)!;
    expect(e2.ttl).toBe(50);
    expect(ttlsOf(render(e2, 10))).toEqual([40, 40]);
    const e3 = cache.set('x', answer({ answers: [a(9999)] }).wire, 9999, 0, false)!;
    expect(e3.ttl).toBe(100);
  });

  it('counts down TTLs up to the largest RFC 2181 allows', () => {
    const cache = new AnswerCache(answerCacheOptions({ maxEntries: 10, maxTtl: 2 ** 31 - 1, staleWindow: 0 }));
    const e = cache.set('big', answer({ answers: [a(2 ** 31 - 1), a(0x01020304, '192.0.2.2')] }).wire, 0x01020304, 0, false)!;
    expect(ttlsOf(render(e, 4))).toEqual([0x01020300, 0x01020300]);
    const e2 = cache.set('top', answer({ answers: [a(2 ** 31 - 1)] }).wire, 2 ** 31 - 1, 0, false)!;
    expect(ttlsOf(render(e2, 1))).toEqual([2 ** 31 - 2]);
  });

  it('bounds negative TTLs by negativeMaxTtl and does not raise them to minTtl', () => {
    const cache = new AnswerCache(answerCacheOptions({ maxEntries: 10, minTtl: 30, negativeMaxTtl: 20, staleWindow: 0 }));
    const nx = answer({ rcode: 3, authorities: [soa(900, 600)] });
    expect(cache.set('n', nx.wire, 600, 3, true)!.ttl).toBe(20);
    const tiny = answer({ rcode: 3, authorities: [soa(5, 5)] });
    expect(cache.set('t', tiny.wire, 5, 3, true)!.ttl).toBe(5);
  });

  it('tells fresh from stale, counts fresh hits, and drops entries past the stale window', () => {
    const c = clock();
    const cache = new AnswerCache(answerCacheOptions({ maxEntries: 10, staleWindow: 10, now: c.now }));
    cache.set('k', answer({ answers: [a(60)] }).wire, 60, 0, false);
    expect(cache.lookup('k')?.state).toBe('fresh');
    expect(cache.lookup('k')?.entry.hits).toBe(2);
    c.t += 59_999;
    expect(cache.lookup('k')?.state).toBe('fresh');
    c.t += 1;
    expect(cache.lookup('k')?.state).toBe('stale');
    expect(cache.get('k')).toBeUndefined();
    expect(ttlsOf(render(cache.peek('k')!, 60, 30))).toEqual([30]);
    c.t += 10_000;
    expect(cache.lookup('k')).toBeUndefined();
    expect(cache.size).toBe(0);
  });

  it('keeps popularity when an entry is replaced (prefetch)', () => {
    const cache = new AnswerCache(answerCacheOptions({ maxEntries: 10, staleWindow: 0 }));
    const w = answer({ answers: [a(60)] }).wire;
    cache.set('k', w, 60, 0, false);
    cache.lookup('k');
    cache.lookup('k');
    expect(cache.set('k', w, 60, 0, false)!.hits).toBe(2);
  });

  it('is bounded by bytes as well as entries', () => {
    const cache = new AnswerCache(answerCacheOptions({ maxEntries: 1000, maxBytes: 8192, staleWindow: 0 }));
    for (let i = 0; i < 200; i++) cache.set(`k${i}`, answer({ answers: [a(60)] }).wire, 60, 0, false);
    expect(cache.bytes).toBeLessThanOrEqual(8192);
    expect(cache.size).toBeLessThan(200);
    expect(cache.peek('k199')).toBeDefined();
    expect(cache.peek('k0')).toBeUndefined();
    const few = new AnswerCache(answerCacheOptions({ maxEntries: 3, staleWindow: 0 }));
    for (let i = 0; i < 10; i++) few.set(`k${i}`, answer({ answers: [a(60)] }).wire, 60, 0, false);
    expect(few.size).toBe(3);
  });

  it('maxEntries 0 turns the cache off', () => {
    const cache = new AnswerCache(answerCacheOptions({ maxEntries: 0, staleWindow: 0 }));
    expect(cache.set('k', answer({ answers: [a(60)] }).wire, 60, 0, false)).toBeUndefined();
    expect(cache.size).toBe(0);
  });
});

describe('warm restart file', () => {
  it('round-trips entries with their store time, most recently used kept on top', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dohd-persist-'));
    try {
      const c = clock();
      const one = new AnswerCache(answerCacheOptions({ maxEntries: 10, now: c.now, staleWindow: 0 }));
      one.set('old', answer({ answers: [a(60, '192.0.2.1')] }).wire, 60, 0, false);
      one.set('nx', answer({ rcode: 3, authorities: [soa(60, 60)] }).wire, 60, 3, true);
      one.set('new', answer({ answers: [a(300, '192.0.2.2')] }).wire, 300, 0, false);
      one.lookup('old'); // most recently used
      const file = join(dir, 'cache');
      expect(saveCache(one, file)).toBe(3);
      c.t += 30_000; // dohd was down for 30 s
      const two = new AnswerCache(answerCacheOptions({ maxEntries: 10, now: c.now, staleWindow: 0 }));
      expect(loadCache(two, file)).toEqual({ loaded: 3, skipped: 0 });
      expect(ttlsOf(two.get('old')!)).toEqual([30]);
      expect(ttlsOf(two.get('new')!)).toEqual([270]);
      expect(two.peek('nx')).toMatchObject({ rcode: 3, negative: true });
      expect([...two.entries()].map(([k]) => k)).toEqual(['new', 'old', 'nx']); // the two get()s above moved them
      // Expired (and past any stale window): skipped.
      c.t += 100_000;
      const three = new AnswerCache(answerCacheOptions({ maxEntries: 10, now: c.now, staleWindow: 0 }));
      expect(loadCache(three, file)).toEqual({ loaded: 1, skipped: 2 });
      // With a stale window they come back as stale entries.
      const four = new AnswerCache(answerCacheOptions({ maxEntries: 10, staleWindow: 3600, now: c.now }));
      expect(loadCache(four, file).loaded).toBe(3);
      expect(four.lookup('old')?.state).toBe('stale');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('keeps clamped TTLs, and takes the TTL list over the TTLs in a saved wire', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dohd-persist-'));
    try {
      const c = clock();
      const file = join(dir, 'cache');
      const one = new AnswerCache(answerCacheOptions({ maxEntries: 10, maxTtl: 100, now: c.now, staleWindow: 0 }));
      one.set('clamped', answer({ answers: [a(3600), a(3600, '192.0.2.2')] }).wire, 3600, 0, false);
      saveCache(one, file);
      c.t += 10_000;
      const two = new AnswerCache(answerCacheOptions({ maxEntries: 10, now: c.now, staleWindow: 0 }));
      expect(loadCache(two, file)).toEqual({ loaded: 1, skipped: 0 });
      expect(ttlsOf(two.get('clamped')!)).toEqual([90, 90]);
      // Written by hand as the format says: the wire keeps the upstream's TTL (3600), the list says 50.
      const wire = answer({ answers: [a(3600)] }).wire;
      const key = Buffer.from('byhand');
      const head = Buffer.alloc(2 + key.length + 16 + 4 + 4);
      let o = head.writeUInt16BE(key.length, 0);
      o += key.copy(head, o);
      o = head.writeDoubleBE(c.t - 20_000, o);
      o = head.writeUInt32BE(50, o);
      o = head.writeUInt8(0, o);
      o = head.writeUInt8(0, o);
      o = head.writeUInt16BE(1, o);
      o = head.writeUInt32BE(50, o);
      head.writeUInt32BE(wire.length, o);
      const count = Buffer.alloc(4);
      count.writeUInt32BE(1);
      writeFileSync(file, Buffer.concat([Buffer.from('DOHDCAC1'), count, head, wire]));
      const three = new AnswerCache(answerCacheOptions({ maxEntries: 10, now: c.now, staleWindow: 0 }));
      expect(loadCache(three, file)).toEqual({ loaded: 1, skipped: 0 });
      expect(ttlsOf(three.get('byhand')!)).toEqual([30]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses files that are not ours or are cut short', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dohd-persist-'));
    try {
      const cache = new AnswerCache(answerCacheOptions({ maxEntries: 10, staleWindow: 0 }));
      const f = join(dir, 'x');
      writeFileSync(f, 'hello world, not a cache');
      expect(() => loadCache(cache, f)).toThrow(/not a dohd cache file/);
      cache.set('k', answer({ answers: [a(60)] }).wire, 60, 0, false);
      saveCache(cache, f);
      const full = readFileSync(f);
      writeFileSync(f, full.subarray(0, full.length - 5));
      expect(() => loadCache(new AnswerCache(answerCacheOptions({ maxEntries: 10, staleWindow: 0 })), f)).toThrow(/cut short/);
      expect(() => loadCache(cache, join(dir, 'missing'))).toThrow(/ENOENT/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
