/**
 * `dohd doctor` against the simulated censor (test/fixtures/censor.ts), through the real CLI,
 * never a real address: it must name (a) a black-holed IP, (b) an SNI filter, (c) an
 * intercepting certificate (with its issuer) and (d) forged plain DNS, each with its fix.
 */
import { writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blackHole, canMakeLinks, startSniFilter, type BlackHole, type SniFilter } from '../fixtures/censor.js';
import { startDohServer, type DohServer } from '../fixtures/doh-server.js';
import { makePki, type Pki } from '../fixtures/pki.js';
import { startPlainDnsServer, type PlainDnsServer } from '../fixtures/plain-dns-server.js';
import { runCli } from '../fixtures/spawn.js';
import { Zone } from '../fixtures/zone.js';
import { useTempDir } from '../fixtures/temp-dir.js';

const HOLE = '192.0.2.2';
const links = canMakeLinks();
if (!links) console.warn('doctor-censor.test: not root in a private network namespace; the black-hole case is skipped (CI runs it under unshare -n)');

let pki: Pki;
let roguePki: Pki;
let doh: DohServer;
let rogue: DohServer;
let front: SniFilter;
let system: PlainDnsServer;
let hole: BlackHole | undefined;
let proxyPort: number;
const servers: tls.Server[] = [];

const tmp = useTempDir('dohd-doctor-censor-');

beforeAll(async () => {
  pki = await makePki({ dnsNames: ['cloudflare-dns.com', 'dns.google', 'doh.test', 'goproxy.test'], ips: ['127.0.0.1', '127.0.0.2'] });
  roguePki = await makePki({ dnsNames: ['cloudflare-dns.com', 'goproxy.test'], ips: [] });
  doh = await startDohServer({ pki });
  rogue = await startDohServer({ pki: roguePki });
  front = await startSniFilter({ host: '127.0.0.2', port: doh.port, target: { host: '127.0.0.1', port: doh.port } });
  // The module proxy at 127.0.0.1 (its real address); a forger's server at 127.0.0.3 with someone else's certificate.
  const srv = (host: string, port: number, p: Pki) =>
    new Promise<number>((resolve) => {
      const s = tls.createServer({ key: p.keyPem, cert: p.certPem }, (c) => c.end());
      s.on('tlsClientError', () => {});
      servers.push(s);
      s.listen(port, host, () => resolve((s.address() as AddressInfo).port));
    });
  proxyPort = await srv('127.0.0.1', 0, pki);
  await srv('127.0.0.3', proxyPort, roguePki);
  system = await startPlainDnsServer();
  if (links) hole = blackHole([HOLE]);
  writeFileSync(join(tmp.path, 'resolv.conf'), 'nameserver 127.0.0.1\n');
  writeFileSync(join(tmp.path, 'hosts'), '127.0.0.1 localhost\n');
});
afterAll(async () => {
  hole?.close();
  await Promise.all([doh.close(), rogue.close(), front.close(), system.close(), ...servers.map((s) => new Promise((r) => s.close(r)))]);
  await Promise.all([pki.cleanup(), roguePki.cleanup()]);
});

async function doctor(upstreamsYaml: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const cfg = join(tmp.path, `c${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(cfg, `upstreams:\n${upstreamsYaml}`);
  const args = ['doctor', '--config', cfg, '--resolv-conf', join(tmp.path, 'resolv.conf'), '--hosts', join(tmp.path, 'hosts'), '--dns-port', String(system.port), '--port', String(proxyPort), '--names', 'goproxy.test', '--go', 'none', '--timeout', '1500', '--ca', pki.caFile];
  return runCli(args, { cleanEnv: { PATH: process.env.PATH, HOME: process.env.HOME }, timeoutMs: 30_000 });
}

describe('dohd doctor against the simulated censor', () => {
  it.skipIf(!links)('(a) a black-holed bootstrap IP: "IP unreachable" while the other connects; all of them: "unreachable", with the fix', async () => {
    system.zone = new Zone([{ name: 'goproxy.test', type: 'A', data: '127.0.0.1' }]);
    doh.zone = system.zone;
    const r = await doctor(
      `  - url: https://doh.test:${doh.port}/dns-query\n    bootstrap: [${HOLE}, 127.0.0.1]\n    ca: ${pki.caFile}\n    name: p\n    alternates:\n      - url: https://doh.test:${doh.port}/dns-query\n        bootstrap: [${HOLE}]\n`,
    );
    expect(r.stdout).toMatch(new RegExp(`p\\s+https://doh\\.test:${doh.port}/dns-query\\s+OK\\s+answered via 127\\.0\\.0\\.1; IP unreachable: ${HOLE.replace(/\./g, '\\.')} \\(packets dropped\\) while 127\\.0\\.0\\.1 connects`));
    expect(r.stdout).toMatch(/FAIL IP unreachable \(packets dropped: no answer, no error\)/);
    expect(r.stdout).toMatch(/WARN \[paths\] p via .*: IP unreachable \(packets dropped/);
    expect(r.stdout).toContain("another path to the same provider (an IP-literal DoH URL or DoT on 853");
  });

  it('(b) an SNI filter: "blocked by SNI", confirmed by a handshake naming nobody; the IP-literal path works', async () => {
    system.zone = new Zone([{ name: 'goproxy.test', type: 'A', data: '127.0.0.1' }]);
    doh.zone = system.zone;
    const r = await doctor(
      `  - url: https://cloudflare-dns.com:${doh.port}/dns-query\n    bootstrap: [127.0.0.2]\n    ca: ${pki.caFile}\n    name: cf\n    alternates:\n      - url: https://127.0.0.2:${doh.port}/dns-query\n`,
    );
    expect(r.stdout).toContain('FAIL blocked by SNI: the handshake naming the provider is reset, one naming nobody completes at 127.0.0.2');
    expect(r.stdout).toMatch(new RegExp(`cf\\s+https://127\\.0\\.0\\.2:${doh.port}/dns-query\\s+OK`));
    expect(r.stdout).toContain('a path with no server name to filter (an IP-literal DoH URL such as https://1.1.1.1/dns-query)');
  });

  it('(c) an intercepting certificate: "intercepted", naming the issuer; nothing works: FAULT', async () => {
    const r = await doctor(`  - url: https://cloudflare-dns.com:${rogue.port}/dns-query\n    bootstrap: [127.0.0.1]\n    ca: ${pki.caFile}\n    name: cf\n`);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/FAULT \[paths\] cf via https:\/\/cloudflare-dns\.com:\d+\/dns-query: intercepted \(the certificate is not the provider’s\) .*certificate refused \(UNABLE_TO_VERIFY_LEAF_SIGNATURE\): issued by "dohd test CA" for "cloudflare-dns\.com"\)/);
    expect(r.stdout).toContain("if it is your company's TLS inspection, add its CA with 'ca:'");
  });

  it('(d) forged plain DNS: the system resolver gives an address DoH does not, and it fails TLS for the name', async () => {
    system.zone = new Zone([{ name: 'goproxy.test', type: 'A', data: '127.0.0.3' }]);
    doh.zone = new Zone([{ name: 'goproxy.test', type: 'A', data: '127.0.0.1' }]);
    const r = await doctor(`  - url: https://doh.test:${doh.port}/dns-query\n    bootstrap: [127.0.0.1]\n    ca: ${pki.caFile}\n`);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('FAULT [reachability] forged plain DNS: the system resolver answers goproxy.test with 127.0.0.3, which DoH does not give and which fails TLS for goproxy.test.');
    expect(r.stdout).toContain('sudo systemctl enable --now dohd');
  });

  it('the default preset, unreachable: says the cn preset exists and why (the default URLs at a loopback port nothing listens on)', async () => {
    const r = await doctor(`  - url: https://cloudflare-dns.com/dns-query\n    bootstrap: [127.0.0.1]\n  - url: https://dns.google/dns-query\n    bootstrap: [127.0.0.1]\n`);
    expect(r.stdout).toContain('no path to the default upstreams works from here');
    expect(r.stdout).toContain("The 'cn' preset (AliDNS, DNSPod) answers there");
    expect(r.stdout).toContain('dohd run --preset cn');
  });
});
