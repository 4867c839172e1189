/**
 * Presets are data (src/config/presets.ts): `upstreams: NAME` and `--preset NAME` expand to
 * them, and the README table is generated from them. These tests only inspect the resolved
 * configuration: nothing here (or anywhere in the tests) contacts a preset's addresses.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadConfig, validateConfig } from '../../../src/config/load.js';
import { PRESETS, presetsTable } from '../../../src/config/presets.js';
import { KNOWN_BOOTSTRAP } from '../../../src/config/defaults.js';
import { configSchema } from '../../../src/config/schema.js';

const README = new URL('../../../README.md', import.meta.url);

describe('presets', () => {
  it('upstreams: cn is AliDNS and DNSPod, each with DoH by name, IP-literal DoH and DoT, on their published IPs', () => {
    const c = validateConfig({ upstreams: 'cn' });
    expect(c.upstreams.map((u) => [u.name, u.url, u.bootstrap, u.alternates?.map((a) => a.url)])).toEqual([
      ['dns.alidns.com', 'https://dns.alidns.com/dns-query', ['223.5.5.5', '223.6.6.6'], ['https://223.5.5.5/dns-query', 'tls://dns.alidns.com']],
      ['doh.pub', 'https://doh.pub/dns-query', ['1.12.12.12', '120.53.53.53'], ['https://1.12.12.12/dns-query', 'tls://dot.pub']],
    ]);
    for (const u of c.upstreams) for (const a of u.alternates ?? []) expect(a.bootstrap).toEqual(u.bootstrap);
  });

  it('the default is the `default` preset: Cloudflare and Google, each with IP-literal DoH and DoT on 853, and nothing else', () => {
    const c = validateConfig({});
    expect(c.upstreams).toEqual(validateConfig({ upstreams: 'default' }).upstreams);
    expect(c.upstreams.map((u) => [u.url, ...(u.alternates ?? []).map((a) => a.url)])).toEqual([
      ['https://cloudflare-dns.com/dns-query', 'https://1.1.1.1/dns-query', 'tls://one.one.one.one'],
      ['https://dns.google/dns-query', 'https://8.8.8.8/dns-query', 'tls://dns.google'],
    ]);
    // Never another country's resolvers on its own.
    const all = JSON.stringify(c.upstreams);
    for (const cn of PRESETS.cn!.providers) for (const ip of cn.bootstrap) expect(all).not.toContain(ip);
  });

  it('--preset replaces upstreams; with --upstream too, or an unknown name, it says so', () => {
    expect(loadConfig(undefined, { preset: 'cn' }).upstreams.map((u) => u.name)).toEqual(['dns.alidns.com', 'doh.pub']);
    expect(() => loadConfig(undefined, { preset: 'cn', upstream: ['https://doh.test/dns-query'] })).toThrow(/--preset and --upstream both replace/);
    expect(() => validateConfig({ upstreams: 'mars' })).toThrow(/upstreams: no preset "mars" \(presets: "default", "cn"; or give a list of upstreams\)/);
    expect(() => loadConfig(undefined, { preset: 'toString' })).toThrow(/no preset "toString"/);
  });

  it('every preset passes the schema as written, and the DoT hosts are known providers', () => {
    for (const name of Object.keys(PRESETS)) expect(configSchema.safeParse({ upstreams: validateConfig({ upstreams: name }).upstreams }).success).toBe(true);
    expect(KNOWN_BOOTSTRAP['dot.pub']).toEqual(['1.12.12.12', '120.53.53.53']);
    expect(KNOWN_BOOTSTRAP['dns.alidns.com']).toEqual(['223.5.5.5', '223.6.6.6']);
  });

  it('the README table is generated from the presets (run `npm run docs:presets` when this fails)', () => {
    const readme = readFileSync(README, 'utf8');
    const m = readme.match(/<!-- presets:start -->\n([\s\S]*?)\n<!-- presets:end -->/);
    expect(m, 'README.md lacks the presets markers').not.toBeNull();
    expect(m![1]).toBe(presetsTable());
  });

  it('the example config lists exactly the default preset', () => {
    const example = loadConfig(new URL('../../../dohd.example.yaml', import.meta.url).pathname);
    expect(example.upstreams).toEqual(validateConfig({}).upstreams);
    expect(example.ladder).toEqual(validateConfig({}).ladder);
  });
});
