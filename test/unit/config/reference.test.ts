/**
 * Defaults live in the schema alone: the configuration reference (docs/configuration.md) is what
 * the schema generates, dohd.example.yaml is the schema's defaults (apart from the lines it marks
 * `# example`), and the parts that take a slice of the config get every field from it.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { describe, expect, expectTypeOf, it } from 'vitest';
import type { CacheOptions } from '../../../src/stages/cache/answer-cache.js';
import type { CacheStageOptions } from '../../../src/stages/cache/stage.js';
import type { TcpOptions } from '../../../src/server/tcp.js';
import { answerCacheOptions, cacheStageOptions, configProblems } from '../../fixtures/config-defaults.js';
import { staleClientTimeout } from '../../../src/config/check.js';
import { loadConfig, validateConfig } from '../../../src/config/load.js';
import { configReference, REFERENCE_END, REFERENCE_START, withReference } from '../../../src/config/reference.js';
import { configSchema, UPSTREAM_CONNECTION_DEFAULTS, type Config } from '../../../src/config/schema.js';
import { buildUpstream } from '../../../src/upstream/strategies/groups.js';
import { DohUpstream } from '../../../src/upstream/doh/doh.js';

const root = (p: string) => fileURLToPath(new URL(`../../../${p}`, import.meta.url));
const DOC = root('docs/configuration.md');
const EXAMPLE = root('dohd.example.yaml');

const problems = configProblems;

/** Every key path of a parsed value: `a.b`, `a[].b` for list items' keys, `a.NAME.b` is not walked (maps are data). */
function leafKeys(v: unknown, prefix = ''): string[] {
  if (Array.isArray(v)) return v.length && typeof v[0] === 'object' && v[0] !== null ? [prefix, ...leafKeys(v[0], `${prefix}[]`)] : [prefix];
  if (typeof v !== 'object' || v === null || Object.keys(v).length === 0) return [prefix];
  return Object.entries(v).flatMap(([k, x]) => leafKeys(x, prefix ? `${prefix}.${k}` : k));
}

describe('docs/configuration.md', () => {
  it('holds the reference the schema generates (npm run config-doc rewrites it)', () => {
    const text = readFileSync(DOC, 'utf8');
    expect(text).toContain(REFERENCE_START);
    expect(text).toContain(REFERENCE_END);
    // Not a byte-for-byte check only: a stale file names what differs.
    const inDoc = text.slice(text.indexOf(REFERENCE_START), text.indexOf(REFERENCE_END) + REFERENCE_END.length).split('\n');
    const fresh = configReference().split('\n');
    expect(inDoc.filter((l) => !fresh.includes(l))).toEqual([]);
    expect(fresh.filter((l) => !inDoc.includes(l))).toEqual([]);
    expect(withReference(text)).toBe(text);
  });

  it('has a row for every key the default config has, with its default', () => {
    const ref = configReference();
    const defaults = configSchema.parse({});
    for (const key of leafKeys(defaults)) expect(ref, key).toContain(`| \`${key}\` |`);
    // Each scalar default is the one in the row, as the schema gives it.
    expect(ref).toContain('| `cache.prefetchHits` | integer | `2` |');
    expect(ref).toContain('| `upstreams[].idleTimeoutMs` | integer | `8000` |');
    expect(ref).toContain('| `upstreams[].quietMs` | integer | `1000` |');
    expect(ref).toContain('| `tcp.maxBufferedBytes` | integer | `262144` |');
    // Optional keys (no default) are listed too, and every row says what the key means.
    for (const key of ['cache.file', 'cache.staleClientTimeoutMs', 'hosts.file', 'fallback', 'admin', 'rateLimit.burst', 'groups.NAME.upstreams[].quietMs'])
      expect(ref, key).toContain(`| \`${key}\` |`);
    const rows = ref.split('\n').filter((l) => l.startsWith('| `'));
    expect(rows.filter((r) => r.endsWith('|  |'))).toEqual([]);
  });

  it('a stale file is found: withReference puts the generated table back', () => {
    const text = readFileSync(DOC, 'utf8');
    const stale = text.replace('| `cache.prefetchHits` | integer | `2` |', '| `cache.prefetchHits` | integer | `0` |');
    expect(stale).not.toBe(text);
    expect(withReference(stale)).toBe(text);
    expect(withReference('no markers')).toBeNull();
  });
});

describe('dohd.example.yaml', () => {
  const text = readFileSync(EXAMPLE, 'utf8');
  const marked = text.split('\n').filter((l) => /#\s*example\s*$/.test(l));
  const withoutExamples = text
    .split('\n')
    .filter((l) => !/#\s*example\s*$/.test(l))
    .join('\n');

  it('documents its "# example" marker at the top', () => {
    expect(text.split('\n').slice(0, 12).join('\n')).toContain('"# example"');
  });

  it('parses, and apart from its "# example" lines is exactly the schema defaults', () => {
    const example = loadConfig(EXAMPLE);
    expect(example).toBeTruthy();
    expect(validateConfig(parseYaml(withoutExamples))).toEqual(validateConfig({}));
    // The marked lines (if any) are the only ones that set something else.
    for (const line of marked) expect(line).toMatch(/^\s*[\w-]+:\s*\S/);
  });

  it('names every option (set, or in a comment when it has no default): one exhaustive example', () => {
    const keys = (shape: Record<string, unknown>, prefix = ''): string[] =>
      Object.entries(shape).flatMap(([k, v]) => {
        let inner = v as { def?: { type: string; innerType?: unknown; shape?: Record<string, unknown>; in?: unknown } };
        // Through optional/default/prefault wrappers to an object's own fields.
        while (inner.def?.innerType || inner.def?.in) inner = (inner.def.innerType ?? inner.def.in) as typeof inner;
        const nested = inner.def?.type === 'object' ? keys(inner.def.shape!, `${prefix}${k}.`) : [];
        return [`${prefix}${k}`, ...nested];
      });
    const missing = keys(configSchema.shape).filter((path) => !new RegExp(`(^|[\\s{,#])${path.split('.').pop()}:`, 'm').test(text));
    expect(missing).toEqual([]);
  });

  it('leaves admin out: set, a taken admin port would stop start-up; left out it is only logged', () => {
    expect(loadConfig(EXAMPLE).admin).toBeUndefined();
    expect(parseYaml(text)).not.toHaveProperty('admin');
  });

  it('the check can fail: a changed default in the file is found', () => {
    const changed = withoutExamples.replace(/^timeoutMs: 2500$/m, 'timeoutMs: 3000');
    expect(changed).not.toBe(withoutExamples);
    expect(validateConfig(parseYaml(changed))).not.toEqual(validateConfig({}));
  });
});

describe('upstream connection defaults, from the schema', () => {
  it('top-level upstreams get idleTimeoutMs and quietMs filled in, the built-in ones too', () => {
    const c = validateConfig({ upstreams: [{ url: 'https://127.0.0.1:8443/dns-query' }] });
    expect(c.upstreams[0]).toMatchObject({ idleTimeoutMs: 8000, quietMs: 1000 });
    for (const u of validateConfig({}).upstreams) expect(u).toMatchObject({ idleTimeoutMs: 8000, quietMs: 1000 });
    expect(UPSTREAM_CONNECTION_DEFAULTS).toEqual({ idleTimeoutMs: 8000, quietMs: 1000 });
  });

  it('a DohUpstream built outside a config gets the same defaults', () => {
    const u = new DohUpstream({ url: 'https://127.0.0.1:8443/dns-query' });
    expect(u.idleTimeoutMs).toBe(8000);
    void u.close();
  });

  it('group DoH upstreams accept idleTimeoutMs and quietMs and use them; plain DNS ones refuse them', () => {
    const c = validateConfig({
      upstreams: [{ url: 'https://127.0.0.1:8443/dns-query' }],
      groups: { g: { upstreams: [{ url: 'https://127.0.0.2:8443/dns-query', idleTimeoutMs: 300, quietMs: 0 }, { url: 'https://127.0.0.3:8443/dns-query' }] } },
    });
    const [custom, dflt] = c.groups.g!.upstreams.map((u) => buildUpstream(u)) as DohUpstream[];
    expect(custom!.idleTimeoutMs).toBe(300);
    expect(dflt!.idleTimeoutMs).toBe(8000);
    void custom!.close();
    void dflt!.close();
    expect(problems({ groups: { g: { upstreams: [{ address: '127.0.0.1:53', idleTimeoutMs: 300 }] } } }).join('\n')).toMatch(/groups\.g\.upstreams\[0\]\.idleTimeoutMs: applies to https:\/\/ and tls:\/\/ upstreams only/);
    expect(problems({ groups: { g: { upstreams: [{ url: 'udp://127.0.0.1:53', quietMs: 0 }] } } }).join('\n')).toMatch(/quietMs: applies to https:\/\/ and tls:\/\/ upstreams only/);
    expect(problems({ groups: { g: { upstreams: [{ url: 'https://127.0.0.2/dns-query', idleTimeoutMs: 5 }] } } }).join('\n')).toMatch(/idleTimeoutMs/);
  });

  it('the cache stage gets prefetchHits from the config: 2 by default, as the schema says', () => {
    const c = validateConfig({});
    expect(c.cache.prefetchHits).toBe(2);
    expect(staleClientTimeout(c)).toBe(1800);
  });
});

describe('constructors fed from the config take their slice as is (checked by npm run typecheck)', () => {
  it('CacheStage, AnswerCache and TcpServer options are required where the config has them: no default of their own', () => {
    // Before: prefetchHits, the stale timings, three AnswerCache clamps and every tcp.* limit were
    // optional and re-defaulted in the constructors (prefetchHits to 0, where the schema says 2).
    expectTypeOf<CacheStageOptions['prefetchHits']>().toEqualTypeOf<number>();
    expectTypeOf<CacheStageOptions['staleTtl']>().toEqualTypeOf<Config['cache']['staleTtl']>();
    expectTypeOf<CacheStageOptions['staleClientTimeoutMs']>().toEqualTypeOf<number>();
    expectTypeOf<CacheOptions['maxBytes']>().toEqualTypeOf<number>();
    expectTypeOf<CacheOptions['staleWindow']>().toEqualTypeOf<number>();
    expectTypeOf<TcpOptions>().toEqualTypeOf<Config['tcp']>();
    // And what the daemon derives from the default config is the schema's.
    expect(cacheStageOptions()).toMatchObject({ prefetchHits: 2, staleTtl: 30, staleRecheckMs: 30_000, prefetchThreshold: 0.1, staleClientTimeoutMs: 1800, refreshTimeoutMs: 2500 });
    expect(answerCacheOptions()).toEqual({ maxEntries: 100_000, maxBytes: 64 * 2 ** 20, minTtl: 0, maxTtl: 86400, negativeMaxTtl: 3600, staleWindow: 86400 });
  });
});
