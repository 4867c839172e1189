/**
 * Every cache entry shares one hidden class in V8, however it was made (stored from an
 * upstream answer, loaded from a warm-restart file, received from another worker): an entry
 * with a hidden class of its own costs ~330 bytes more, a third of the heap with 100,000
 * names. V8 is asked itself (`%HaveSameMap`, node --allow-natives-syntax) in a child process.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const CACHE = fileURLToPath(new URL('../../dist/stages/cache/answer-cache.js', import.meta.url));
const PERSIST = fileURLToPath(new URL('../../dist/stages/cache/persist.js', import.meta.url));
const SCHEMA = fileURLToPath(new URL('../../dist/config/schema.js', import.meta.url));

const script = `
import dnsPacket from 'dns-packet';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
const { AnswerCache, storedEntry } = await import(${JSON.stringify(CACHE)});
const { saveCache, loadCache } = await import(${JSON.stringify(PERSIST)});
const { cacheSchema } = await import(${JSON.stringify(SCHEMA)});
const defaults = cacheSchema.parse({});
const answer = (i) => dnsPacket.encode({ id: 0, type: 'response', questions: [{ name: 'n' + i + '.test', type: 'A' }],
  answers: [{ name: 'n' + i + '.test', type: 'A', ttl: 300 + i, data: '192.0.2.' + (i % 250) }] });
const cache = new AnswerCache({ ...defaults, maxEntries: 10000 });
for (let i = 0; i < 2000; i++) cache.set('n' + i + '.test|1|1', answer(i), 300 + i, 0);
const file = join(mkdtempSync(join(tmpdir(), 'dohd-shape-')), 'cache.bin');
saveCache(cache, file);
const loaded = new AnswerCache({ ...defaults, maxEntries: 10000 });
loadCache(loaded, file);
const entries = [];
for (let i = 0; i < 2000; i++) entries.push(cache.peek('n' + i + '.test|1|1'), loaded.peek('n' + i + '.test|1|1'));
for (let i = 0; i < 2000; i++) entries.push(storedEntry(answer(i), { storedAt: Date.now(), ttl: 300, rcode: 0, negative: false, hits: 0 }));
const missing = entries.filter((e) => !e).length;
const own = entries.filter((e) => e && !%HaveSameMap(e, entries[0])).length;
console.log(JSON.stringify({ entries: entries.length, missing, own, fast: %HasFastProperties(entries[0]) }));
`;

describe('cache entries in V8 (src/stages/cache/answer-cache.ts newEntry)', () => {
  it('share one hidden class, whether stored, loaded from a file or received from a worker', () => {
    const out = execFileSync(process.execPath, ['--allow-natives-syntax', '--input-type=module', '-e', script], {
      encoding: 'utf8',
      cwd: fileURLToPath(new URL('../..', import.meta.url)),
    });
    const r = JSON.parse(out.trim().split('\n').pop()!) as { entries: number; missing: number; own: number; fast: boolean };
    expect(r).toEqual({ entries: 6000, missing: 0, own: 0, fast: true });
  });
});
