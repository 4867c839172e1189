/**
 * `dohd query --dot` as users run it (the built CLI): asks a DoT server directly, and when it
 * cannot, says why (the verdict) and what to do.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blackHole, canMakeLinks, startSniFilter, type BlackHole, type SniFilter } from '../fixtures/censor.js';
import { startDohServer, type DohServer } from '../fixtures/doh-server.js';
import { startDotServer, type DotServer } from '../fixtures/dot-server.js';
import { makePki, type Pki } from '../fixtures/pki.js';
import { runCli } from '../fixtures/spawn.js';

let pki: Pki;
let otherPki: Pki;
let dot: DotServer;
let untrusted: DotServer;

beforeAll(async () => {
  pki = await makePki({ dnsNames: ['dot.test', 'localhost'] });
  otherPki = await makePki({ dnsNames: ['dot.test'] });
  dot = await startDotServer({ pki });
  untrusted = await startDotServer({ pki: otherPki });
});
afterAll(async () => {
  await Promise.all([dot.close(), untrusted.close()]);
  await Promise.all([pki.cleanup(), otherPki.cleanup()]);
});

const query = (...args: string[]) => runCli(['query', ...args], { timeoutMs: 10_000 });

describe('dohd query --dot', () => {
  it('asks a DoT server directly, and says why when it cannot', async () => {
    const ok = await query('example.com', '--dot', `dot.test:${dot.port}`, '--bootstrap', '127.0.0.1', '--ca', pki.caFile);
    expect(ok.stderr).toBe('');
    expect(ok.stdout).toContain('example.com.\t\t300\tIN\tA\t192.0.2.1');
    expect(ok.stdout).toContain(`;; SERVER: tls://dot.test:${dot.port} via 127.0.0.1 (DNS-over-TLS)`);
    const noTrust = await query('example.com', '--dot', `tls://dot.test:${untrusted.port}`, '--bootstrap', '127.0.0.1', '--ca', pki.caFile);
    expect(noTrust.code).toBe(1);
    expect(noTrust.stderr).toMatch(/intercepted: .*issued by "dohd test CA"/);
    expect(noTrust.stderr).toContain('  verdict: intercepted (the certificate is not the provider’s)\n  fix: do not trust that certificate;');
    const nb = await query('example.com', '--dot', 'dot.example');
    expect(nb.code).toBe(2);
    expect(nb.stderr).toMatch(/"dot\.example" needs --bootstrap IP/);
    const both = await query('example.com', '--dot', 'dot.example', '--doh', 'https://x.example/dns-query');
    expect(both.code).not.toBe(0);
  });
});

describe('dohd query says "blocked", not "failed"', () => {
  const links = canMakeLinks();
  let cfPki: Pki;
  let doh: DohServer;
  let front: SniFilter;
  let hole: BlackHole | undefined;
  beforeAll(async () => {
    cfPki = await makePki({ dnsNames: ['cloudflare-dns.com'], ips: ['127.0.0.2'] });
    doh = await startDohServer({ pki: cfPki });
    front = await startSniFilter({ host: '127.0.0.2', port: doh.port, target: { host: '127.0.0.1', port: doh.port } });
    if (links) hole = blackHole(['192.0.2.3']);
  });
  afterAll(async () => {
    hole?.close();
    await Promise.all([doh.close(), front.close()]);
    await cfPki.cleanup();
  });

  it('--doh through an SNI filter: blocked_sni, the verdict and the fix; the IP-literal URL answers', async () => {
    const r = await query('example.com', '--doh', `https://cloudflare-dns.com:${doh.port}/dns-query`, '--bootstrap', '127.0.0.2', '--ca', cfPki.caFile);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('blocked_sni: cannot connect (127.0.0.2: ');
    expect(r.stderr).toContain('  verdict: blocked by SNI (the TLS handshake naming the provider was reset)');
    expect(r.stderr).toContain('  fix: a path with no server name to filter (an IP-literal DoH URL');
    const ip = await query('example.com', '--doh', `https://127.0.0.2:${doh.port}/dns-query`, '--ca', cfPki.caFile);
    expect(ip.stderr).toBe('');
    expect(ip.stdout).toContain('example.com.\t\t300\tIN\tA\t192.0.2.1');
  });

  it.skipIf(!links)('--dot to a black-holed address: unreachable, named before the query deadline', async () => {
    const r = await query('example.com', '--dot', 'dot.test', '--bootstrap', '192.0.2.3', '--timeout', '1000');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('unreachable: cannot connect (192.0.2.3: no answer in');
    expect(r.stderr).toContain('  verdict: IP unreachable (packets dropped: no answer, no error)');
  });
});
