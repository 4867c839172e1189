import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { staleClientTimeout } from '../../../src/config/check.js';
import { ConfigError, loadConfig, validateConfig } from '../../../src/config/load.js';
import { configProblems } from '../../fixtures/config-defaults.js';

const problems = configProblems;

const up = [{ url: 'https://127.0.0.1:8443/dns-query' }];

describe('configuration of groups, routing, cache, hosts and pin checks', () => {
  it('defaults: race, no groups or rules, no fallback, RFC 8767 stale values, 1.8 s budget of 2.5 s', () => {
    const c = validateConfig({ upstreams: up });
    expect(c.strategy).toBe('race');
    expect(c.groups).toEqual({});
    expect(c.forward).toEqual({});
    expect(c.fallback).toBeUndefined();
    expect(c.hosts).toBeUndefined();
    expect(c.cache).toMatchObject({ maxEntries: 100_000, maxBytes: 64 * 2 ** 20, minTtl: 0, maxTtl: 86400, staleWindow: 86400, staleTtl: 30, prefetchHits: 2 });
    expect(staleClientTimeout(c)).toBe(1800);
    expect(c.pinVerify).toEqual({ port: 443, intervalMs: 60_000, timeoutMs: 5000 });
    expect(c.health.failures).toBe(3);
    expect(c.hedge).toEqual({ minDelayMs: 10, maxDelayMs: 1000, initialDelayMs: 100 });
  });

  it('accepts groups of DoH and plain upstreams in every spelling', () => {
    const c = validateConfig({
      upstreams: up,
      strategy: 'hedged',
      groups: {
        cluster: { strategy: 'failover', upstreams: [{ url: 'udp://10.96.0.10:53' }, { address: '10.96.0.11:53' }, { url: 'tcp://[fd00::10]:5353' }] },
        'office-dns': { upstreams: [{ url: 'https://dns.google/dns-query' }] },
      },
      forward: { 'cluster.local': 'cluster', '10.in-addr.arpa': 'cluster', 'corp.example': 'office-dns', 'public.corp.example': 'default' },
      fallback: 'cluster',
    });
    expect(c.groups['office-dns']!.upstreams[0]!.bootstrap).toEqual(['8.8.8.8', '8.8.4.4', '2001:4860:4860::8888', '2001:4860:4860::8844']);
    expect(c.groups.cluster!.strategy).toBe('failover');
  });

  it('names the key of each problem', () => {
    const p = problems({
      upstreams: up,
      strategy: 'fastest',
      groups: {
        default: { upstreams: [{ address: '10.0.0.1' }] },
        a: { upstreams: [{}] },
        b: { upstreams: [{ url: 'ftp://x/' }, { url: 'udp://dns.corp:53' }, { address: '10.0.0.1:53', bootstrap: ['10.0.0.1'] }] },
        c: { upstreams: [{ url: 'https://doh.corp/dns-query' }] },
      },
      forward: { 'corp.example': 'nowhere' },
      fallback: 'nope',
    });
    const text = p.join('\n');
    expect(text).toMatch(/^strategy: .*race.*hedged.*failover/m);
    expect(text).toMatch(/^groups\.default: "default" is the top-level upstreams list/m);
    expect(text).toMatch(/^groups\.a\.upstreams\[0\]: give either url/m);
    expect(text).toMatch(/^groups\.b\.upstreams\[0\]\.url: "ftp:\/\/x\/" must be https/m);
    expect(text).toMatch(/^groups\.b\.upstreams\[1\]\.url: "udp:\/\/dns\.corp:53" must be udp:\/\/IP:PORT/m);
    expect(text).toMatch(/^groups\.b\.upstreams\[2\]\.bootstrap: applies to https:\/\/ and tls:\/\/ upstreams only/m);
  });

  it('checks references and bounds after the schema', () => {
    const p = problems({
      upstreams: up,
      groups: { c: { upstreams: [{ url: 'https://doh.corp/dns-query' }] } },
      forward: { 'corp.example': 'nowhere' },
      fallback: 'nope',
      cache: { minTtl: 600, maxTtl: 60, staleClientTimeoutMs: 3000 },
      hedge: { minDelayMs: 500, maxDelayMs: 100 },
    });
    expect(p).toContain('groups.c.upstreams[0].bootstrap: "doh.corp" needs bootstrap IP addresses (dohd never asks the system resolver for an upstream\'s address); add bootstrap: [IP, ...] or use an IP in the URL');
    expect(p).toContain('forward.corp.example: no group "nowhere" (groups: "default", "c")');
    expect(p).toContain('fallback: no group "nope" under groups (groups: "c")');
    expect(p).toContain('cache.minTtl: 600 is above cache.maxTtl (60)');
    expect(p.find((x) => x.startsWith('cache.staleClientTimeoutMs'))).toMatch(/must be below timeoutMs \(2500\)/);
    expect(p).toContain('hedge.minDelayMs: 500 is above hedge.maxDelayMs (100)');
  });

  it('resolves file paths against the config file and checks them', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dohd-cfg-'));
    try {
      const f = join(dir, 'dohd.yaml');
      writeFileSync(f, 'upstreams: [{ url: "https://127.0.0.1/dns-query" }]\ncache: { file: state/cache.bin }\nhosts: { file: hosts }\npinVerify: { ca: ca.pem }\n');
      let err: ConfigError | undefined;
      try {
        loadConfig(f);
      } catch (e) {
        err = e as ConfigError;
      }
      expect(err?.problems.join('\n')).toMatch(new RegExp(`cache.file: directory ${dir}/state: ENOENT`));
      expect(err?.problems.join('\n')).toMatch(new RegExp(`hosts.file: cannot read ${dir}/hosts: ENOENT`));
      expect(err?.problems.join('\n')).toMatch(new RegExp(`pinVerify.ca: cannot read ${dir}/ca.pem: ENOENT`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a plain upstream that is one of the listen addresses is a loop', () => {
    const p = problems({
      listen: ['127.0.0.1:53', '0.0.0.0:5353'],
      upstreams: up,
      // 127.0.0.2:5353 reaches the wildcard listener (loopback); 192.0.2.1 is not this machine.
      groups: { g: { upstreams: [{ address: '127.0.0.1:53' }, { url: 'udp://127.0.0.2:5353' }, { url: 'udp://192.0.2.1:5353' }, { address: '127.0.0.1:5300' }] } },
    });
    expect(p).toEqual([
      "groups.g.upstreams[0]: 127.0.0.1:53 is dohd's own listening address 127.0.0.1:53: queries would come straight back (a forwarding loop)",
      "groups.g.upstreams[1]: udp://127.0.0.2:5353 is dohd's own listening address 0.0.0.0:5353: queries would come straight back (a forwarding loop)",
    ]);
  });

  it('a pin may ask to be verified', () => {
    const c = validateConfig({ upstreams: up, pins: { 'goproxy.cn': { addresses: ['192.0.2.1'], verify: true } } });
    expect(c.pins['goproxy.cn']).toEqual({ addresses: ['192.0.2.1'], verify: true });
    expect(problems({ upstreams: up, pins: { 'goproxy.cn': { addresses: ['192.0.2.1'], verify: 'yes' } } })[0]).toMatch(/^pins\.goproxy\.cn/);
  });
});
