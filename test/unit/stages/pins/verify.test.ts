/** The TLS check behind verified pins and `pins learn`, against loopback servers. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import net, { type AddressInfo } from 'node:net';
import tls from 'node:tls';
import { probeCa, probeTls } from '../../../../src/stages/pins/verify.js';
import { makePki, type Pki } from '../../../fixtures/pki.js';

let pki: Pki;
let good: tls.Server;
let silent: net.Server;
const sockets = new Set<net.Socket>();

beforeAll(async () => {
  pki = await makePki({ dnsNames: ['goproxy.cn'] });
  good = tls.createServer({ key: pki.keyPem, cert: pki.certPem }, (s) => s.end());
  good.on('tlsClientError', () => {});
  silent = net.createServer((s) => {
    sockets.add(s); // accepts TCP, never speaks TLS
    s.on('error', () => {});
  });
  await Promise.all([
    new Promise<void>((r) => good.listen(0, '127.0.0.1', () => r())),
    new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r())),
  ]);
});
afterAll(async () => {
  for (const s of sockets) s.destroy();
  await Promise.all([new Promise((r) => good.close(r)), new Promise((r) => silent.close(r))]);
  await pki.cleanup();
});

describe('probeTls', () => {
  it('passes for the right name with the CA, fails without it or for another name', async () => {
    const port = (good.address() as AddressInfo).port;
    const ca = probeCa(pki.caFile);
    expect(await probeTls('127.0.0.1', 'goproxy.cn', { port, timeoutMs: 2000, ...(ca ? { ca } : {}) })).toMatchObject({ ok: true });
    const untrusted = await probeTls('127.0.0.1', 'goproxy.cn', { port, timeoutMs: 2000 });
    expect(untrusted.ok).toBe(false);
    const other = await probeTls('127.0.0.1', 'goproxy.io', { port, timeoutMs: 2000, ...(ca ? { ca } : {}) });
    expect(other).toMatchObject({ ok: false });
    expect((other as { error: string }).error).toMatch(/ERR_TLS_CERT_ALTNAME_INVALID/);
  });

  it('times out on a port that accepts TCP but never completes the handshake', async () => {
    const port = (silent.address() as AddressInfo).port;
    const r = await probeTls('127.0.0.1', 'goproxy.cn', { port, timeoutMs: 300 });
    expect(r).toMatchObject({ ok: false, error: 'no TLS handshake within 300 ms', stage: 'tls', timedOut: true });
  });

  it('without an extra CA file the public roots are used', () => {
    expect(probeCa(undefined)).toBeUndefined();
    expect(probeCa(pki.caFile)!.at(-1)).toBe(pki.caPem);
  });
});
