/**
 * `dohd pins learn` as a real child process: names resolved through a loopback DoH server,
 * each address checked with a TLS handshake on a loopback port, and the printed or written
 * block accepted by `dohd check-config`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { parse } from 'yaml';
import { startDohServer, type DohServer } from '../fixtures/doh-server.js';
import { startDotServer } from '../fixtures/dot-server.js';
import { makePki, type Pki } from '../fixtures/pki.js';
import { runCli } from '../fixtures/spawn.js';

let pki: Pki;
let doh: DohServer;
let server: tls.Server;
let port: number;


beforeAll(async () => {
  pki = await makePki({ dnsNames: ['goproxy.cn', 'sum.golang.org', 'localhost'] });
  doh = await startDohServer({ pki });
  doh.zone.remove('goproxy.cn');
  doh.zone.add({ name: 'goproxy.cn', type: 'A', ttl: 60, data: '127.0.0.1' });
  doh.zone.add({ name: 'goproxy.cn', type: 'A', ttl: 60, data: '127.0.0.2' }); // nothing listens there
  doh.zone.add({ name: 'sum.golang.org', type: 'A', ttl: 60, data: '127.0.0.1' });
  doh.zone.add({ name: 'sum.golang.org', type: 'AAAA', ttl: 60, data: '::1' });
  doh.zone.add({ name: 'wrongcert.example.net', type: 'A', ttl: 60, data: '127.0.0.1' });
  server = tls.createServer({ key: pki.keyPem, cert: pki.certPem }, (s) => {
    s.on('error', () => {});
    s.end();
  });
  server.on('tlsClientError', () => {});
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  port = (server.address() as AddressInfo).port;
});
afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await doh.close();
  await pki.cleanup();
});

const base = () => ['--upstream', doh.url, '--ca', pki.caFile, '--port', String(port), '--verify-ca', pki.caFile, '--probe-timeout-ms', '2000'];

describe('dohd pins learn over DoT and through a ladder of paths', () => {
  it('--upstream tls://…, and a config whose DoH path is dead and whose DoT alternate works: the same pins', async () => {
    const dot = await startDotServer({ pki });
    dot.zone = doh.zone;
    try {
      const probe = ['--port', String(port), '--verify-ca', pki.caFile, '--probe-timeout-ms', '2000'];
      const direct = await runCli(['pins', 'learn', 'goproxy.cn', '--upstream', `tls://127.0.0.1:${dot.port}`, '--ca', pki.caFile, ...probe]);
      expect(direct.stderr).toBe('');
      expect(direct.stdout).toContain('goproxy.cn: { addresses: ["127.0.0.1"], verify: true }');
      const file = `${pki.dir}/ladder.yaml`;
      writeFileSync(
        file,
        `upstreams:\n  - url: https://doh.test:1/dns-query\n    bootstrap: [127.0.0.1]\n    ca: ${pki.caFile}\n    alternates:\n      - url: tls://127.0.0.1:${dot.port}\n`,
      );
      const viaLadder = await runCli(['pins', 'learn', 'goproxy.cn', '--config', file, ...probe]);
      expect(viaLadder.stderr).toBe('');
      expect(viaLadder.stdout).toContain('goproxy.cn: { addresses: ["127.0.0.1"], verify: true }');
      expect(dot.queries.filter((q) => q.questions?.[0]?.name === 'goproxy.cn').length).toBeGreaterThanOrEqual(4);
    } finally {
      await dot.close();
    }
  });
});

describe('dohd pins learn', () => {
  it('prints a pins block of the addresses that pass the TLS check, which check-config accepts', async () => {
    const r = await runCli(['pins', 'learn', 'goproxy.cn', 'sum.golang.org', ...base()]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('goproxy.cn: { addresses: ["127.0.0.1"], verify: true }');
    expect(r.stdout).toMatch(/# +goproxy\.cn 127\.0\.0\.2 left out: ECONNREFUSED/);
    // ::1 has no listener on that port: only the IPv4 address is kept.
    const doc = parse(r.stdout) as { pins: Record<string, { addresses: string[]; verify: boolean }> };
    expect(doc.pins).toEqual({
      'goproxy.cn': { addresses: ['127.0.0.1'], verify: true },
      'sum.golang.org': { addresses: ['127.0.0.1'], verify: true },
    });
    expect(doh.requests).toBeGreaterThanOrEqual(4); // A and AAAA for each name
    const file = `${pki.dir}/printed.yaml`;
    writeFileSync(file, r.stdout);
    const check = await runCli(['check-config', '--config', file]);
    expect(check.stderr).toBe('');
    expect(check.stdout).toMatch(/; 2 pins/);
  });

  it('--write writes the block; names that fail are comments, the exit code is 1, and the file is still valid config', async () => {
    const file = `${pki.dir}/pins.yaml`;
    const r = await runCli(['pins', 'learn', 'goproxy.cn', 'missing.example.net', 'wrongcert.example.net', ...base(), '--write', file]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe(`wrote 1 of 3 pins to ${file}\n`);
    expect(r.stderr).toMatch(/missing\.example\.net: cannot resolve: NXDOMAIN/);
    expect(r.stderr).toMatch(/wrongcert\.example\.net: no address passed/);
    const text = readFileSync(file, 'utf8');
    expect(text).toMatch(/# wrongcert\.example\.net: no address passed: 127\.0\.0\.1 \(ERR_TLS_CERT_ALTNAME_INVALID/);
    const check = await runCli(['check-config', '--config', file]);
    expect(check.stderr).toBe('');
    expect(check.code).toBe(0);
    expect(check.stdout).toMatch(/; 1 pins/);
  });

  it('with no verified name at all the block is an empty mapping, still valid config', async () => {
    const file = `${pki.dir}/none.yaml`;
    const r = await runCli(['pins', 'learn', 'missing.example.net', ...base(), '--write', file]);
    expect(r.code).toBe(1);
    expect(readFileSync(file, 'utf8')).toMatch(/^pins: \{\}$/m);
    const check = await runCli(['check-config', '--config', file]);
    expect(check.code).toBe(0);
    expect(check.stdout).toMatch(/; 0 pins/);
  });

  it('a name without addresses, an unwritable --write and an unreadable --verify-ca are reported', async () => {
    const none = await runCli(['pins', 'learn', 'big.example.net', ...base()]); // TXT only
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/big\.example\.net: no A or AAAA records/);
    const write = await runCli(['pins', 'learn', 'goproxy.cn', ...base(), '--write', `${pki.dir}/no/such/dir/pins.yaml`]);
    expect(write.code).toBe(1);
    expect(write.stderr).toMatch(/--write: cannot write .*pins\.yaml: ENOENT/);
    const ca = await runCli(['pins', 'learn', 'goproxy.cn', '--upstream', doh.url, '--ca', pki.caFile, '--verify-ca', `${pki.dir}/nope.pem`]);
    expect(ca.code).toBe(2);
    expect(ca.stderr).toMatch(/--verify-ca: cannot read .*nope\.pem: ENOENT/);
  });

  it('rejects a bad name or port with one line and exit 2', async () => {
    const bad = await runCli(['pins', 'learn', 'not a name', ...base()]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^dohd: not a domain name: "not a name"\n$/);
    const port0 = await runCli(['pins', 'learn', 'goproxy.cn', '--upstream', doh.url, '--ca', pki.caFile, '--port', '70000']);
    expect(port0.code).toBe(2);
    expect(port0.stderr).toMatch(/--port: 70000 is not a port number/);
  });

  it('--help shows only what pins learn uses: no daemon options, no "[required] [default: []]"', async () => {
    const h = await runCli(['pins', 'learn', '--help']);
    expect(h.code).toBe(0);
    expect(h.stdout).toMatch(/^dohd pins learn NAME\.\.\. \[options\]\n/);
    for (const opt of ['--config', '--upstream', '--ca', '--port', '--verify-ca', '--write']) expect(h.stdout).toContain(opt);
    for (const daemonOnly of ['--listen', '--admin', '--log-level', '--workers']) expect(h.stdout).not.toContain(daemonOnly);
    expect(h.stdout).not.toContain('[required]');
    expect(h.stdout).not.toContain('[default: []]');
    const none = await runCli(['pins', 'learn']);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/need at least 1/);
  });
});
