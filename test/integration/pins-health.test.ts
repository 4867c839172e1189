/**
 * Pins that heal: verified pins are probed with a TLS handshake (fixture PKI, loopback TLS
 * servers on 127.0.0.1 and 127.0.0.2, one port); failing addresses are withheld, a name whose
 * addresses all fail is answered from the upstreams, and everything comes back on recovery.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { queryUdp } from '../fixtures/dns-client.js';
import type { RunningDaemon } from '../fixtures/daemon.js';
import { useDohUpstream } from '../fixtures/doh-pair.js';
import { adminGet, parseProm } from '../fixtures/prom.js';
import { until } from '../fixtures/resources.js';

// The PKI's certificate is for the pinned name; after each test, the TLS servers a test shut are open again.
const up = useDohUpstream({ pki: { dnsNames: ['goproxy.cn', 'proxy.golang.org'] } }, async () => {
  if (!servers.has('127.0.0.1')) await open('127.0.0.1');
  if (!servers.has('127.0.0.2')) await open('127.0.0.2');
});
/** The daemon of the test (aRecords asks it); stopped after the test by useDohUpstream. */
let d: RunningDaemon | undefined;
const servers = new Map<string, tls.Server>();
let port = 0;


/** A TLS server for the pinned names on HOST:port (the certificate says goproxy.cn). */
async function open(host: string, p = port): Promise<number> {
  const s = tls.createServer({ key: up.pki.keyPem, cert: up.pki.certPem }, (sock) => {
    sock.on('error', () => {});
    sock.end();
  });
  s.on('tlsClientError', () => {});
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.listen(p, host, () => resolve());
  });
  servers.set(host, s);
  return (s.address() as AddressInfo).port;
}

async function shut(host: string): Promise<void> {
  const s = servers.get(host);
  servers.delete(host);
  if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
}

const aRecords = async (name = 'goproxy.cn') => {
  const r = await queryUdp({ port: d!.port, name });
  return r.response.answers.filter((x) => x.type === 'A').map((x) => x.data as string).sort();
};

beforeAll(async () => {
  port = await open('127.0.0.1', 0);
  await open('127.0.0.2');
});
afterAll(async () => {
  await Promise.all([...servers.keys()].map(shut));
});

const config = () => ({
  upstreams: [up.upstream],
  pins: {
    'goproxy.cn': { addresses: ['127.0.0.1', '127.0.0.2'], verify: true },
    'proxy.golang.org': ['127.0.0.3'], // not verified: always answered as pinned
  },
  pinVerify: { port, intervalMs: 150, timeoutMs: 1000, ca: up.pki.caFile },
});

describe('verified pins', () => {
  it('a pinned address whose port closes is withheld, and restored after it reopens', async () => {
    d = await up.start(config());
    await until(() => (d!.daemon.pinHealth?.rounds ?? 0) >= 1, 8000);
    expect(await aRecords()).toEqual(['127.0.0.1', '127.0.0.2']);
    expect(d.daemon.pinHealth!.state().every((s) => s.up && s.checks >= 1)).toBe(true);

    await shut('127.0.0.2');
    await until(async () => (await aRecords()).length === 1, 8000);
    expect(await aRecords()).toEqual(['127.0.0.1']);
    const st = d.daemon.pinHealth!.state().find((s) => s.address === '127.0.0.2')!;
    expect(st.up).toBe(false);
    expect(st.lastError).toMatch(/ECONNREFUSED/);
    expect(d.logs.some((l) => l.msg === 'pinned address fails verification; withheld' && l.address === '127.0.0.2')).toBe(true);

    await open('127.0.0.2');
    await until(async () => (await aRecords()).length === 2, 8000);
    expect(d.logs.some((l) => l.msg === 'pinned address verified again' && l.address === '127.0.0.2')).toBe(true);
    expect(up.doh.requests).toBe(0);
    // Unverified pins are answered as configured whatever happens.
    expect(await aRecords('proxy.golang.org')).toEqual(['127.0.0.3']);
  });

  it('when every pinned address fails, the name is answered from the upstreams (and logged), until they recover', async () => {
    d = await up.start(config());
    await until(() => (d!.daemon.pinHealth?.rounds ?? 0) >= 1, 8000);
    await shut('127.0.0.1');
    await shut('127.0.0.2');
    await until(async () => (await aRecords()).includes('192.0.2.53'), 8000); // the upstream's answer
    expect(up.doh.requests).toBeGreaterThanOrEqual(1);
    expect(d.logs.some((l) => l.msg === 'every pinned address fails verification; answering from the upstreams' && l.name === 'goproxy.cn')).toBe(true);
    await open('127.0.0.1');
    await until(async () => (await aRecords()).join() === '127.0.0.1', 8000);
    expect(d.logs.some((l) => l.msg === 'pinned addresses verified again; answering from the pin')).toBe(true);
  });

  it('the probe results reach /metrics as dohd_pin_up, following the real probes', async () => {
    d = await up.start({ ...config(), admin: { listen: '127.0.0.1:0' } });
    const admin = Number(d.daemon.admin!.bound!.split(':').pop());
    const pinUp = async () =>
      parseProm((await adminGet(admin, '/metrics')).body)
        .find('dohd_pin_up', { name: 'goproxy.cn' })
        .map((x) => `${x.labels.address}=${x.value}`)
        .sort()
        .join(' ');
    await until(async () => (await pinUp()) === '127.0.0.1=1 127.0.0.2=1', 8000);
    await shut('127.0.0.2');
    await until(async () => (await pinUp()) === '127.0.0.1=1 127.0.0.2=0', 8000);
    await open('127.0.0.2');
    await until(async () => (await pinUp()) === '127.0.0.1=1 127.0.0.2=1', 8000);
  });

  it('a certificate for another name fails verification', async () => {
    const cfg = config();
    // The server certificate does not cover example.org: the handshake must fail.
    cfg.pins = { 'example.org': { addresses: ['127.0.0.1'], verify: true } } as never;
    d = await up.start(cfg);
    await until(() => (d!.daemon.pinHealth?.rounds ?? 0) >= 1, 8000);
    const st = d.daemon.pinHealth!.state();
    expect(st).toHaveLength(1);
    expect(st[0]!.up).toBe(false);
    expect(st[0]!.lastError).toMatch(/ERR_TLS_CERT_ALTNAME_INVALID|altnames/i);
  });

  it('without the test CA the handshake is not trusted', async () => {
    const cfg = config();
    delete (cfg.pinVerify as { ca?: string }).ca;
    d = await up.start(cfg);
    await until(() => (d!.daemon.pinHealth?.rounds ?? 0) >= 1, 8000);
    expect(d.daemon.pinHealth!.state().every((s) => !s.up)).toBe(true);
    expect(d.daemon.pinHealth!.state()[0]!.lastError).toMatch(/certificate|UNABLE_TO|SELF_SIGNED/i);
  });
});
