/**
 * `dohd proxy-dns` as a drop-in for the removed `cloudflared proxy-dns`: the old flags,
 * TUNNEL_DNS_* variables and cloudflared YAML keys, answering through the suite's DoH
 * servers (trusted through NODE_EXTRA_CA_CERTS, as a private CA would be), and what it
 * cannot honour refused by name.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { queryTcp, queryUdp } from '../fixtures/dns-client.js';
import { startDohServer, type DohServer } from '../fixtures/doh-server.js';
import { makePki, type Pki } from '../fixtures/pki.js';
import { boundUdpPort, CLI, listeningPort, spawnCli, type Spawned } from '../fixtures/spawn.js';
import { adminGet, parseProm } from '../fixtures/prom.js';
import { CLOUDFLARED_DEFAULTS, listenAddresses, proxyDnsSettings } from '../../src/config/cloudflared.js';
import { ConfigError } from '../../src/config/load.js';

const exec = promisify(execFile);
let pki: Pki;
let doh: DohServer;
let doh2: DohServer;
let boot: DohServer;
let child: Spawned | undefined;
let home: string;

beforeAll(async () => {
  pki = await makePki();
  doh = await startDohServer({ pki, name: 'one' });
  doh2 = await startDohServer({ pki, name: 'two' });
  boot = await startDohServer({ pki, name: 'bootstrap' });
  boot.zone.add({ name: 'doh.test', type: 'A', data: '127.0.0.1' });
  home = join(pki.dir, 'home');
  mkdirSync(home, { recursive: true });
});
afterAll(async () => {
  await Promise.all([doh.close(), doh2.close(), boot.close()]);
  await pki.cleanup();
});
afterEach(async () => {
  await child?.kill();
  child = undefined;
  doh.reset();
  doh2.reset();
  boot.reset();
});

/** The environment of a migrated service: a private CA the way Node takes one, and a HOME without cloudflared config. */
const env = (extra: NodeJS.ProcessEnv = {}) => ({ NODE_EXTRA_CA_CERTS: pki.caFile, HOME: home, ...extra });

const data = (r: { response: { answers?: unknown[] } }) => (r.response.answers ?? []).map((a) => (a as { data?: unknown }).data);

describe('dohd proxy-dns with cloudflared proxy-dns command lines', () => {
  it('the Pi-hole setup: --port 5053-style, two --upstream, --no-autoupdate; dig @127.0.0.1 -p PORT answers', async () => {
    // Port 0: the kernel picks it (a fixed port such as 5053 could be taken).
    child = spawnCli(['proxy-dns', '--no-autoupdate', '--port', '0', '--upstream', doh.url, '--upstream', doh2.url, '--max-upstream-conns', '0'], { env: env() });
    const port = await listeningPort(child);
    const { stdout } = await exec('dig', ['@127.0.0.1', '-p', String(port), '+time=3', '+tries=1', 'example.com', 'A']);
    expect(stdout).toMatch(/status: NOERROR/);
    expect(stdout).toMatch(/^example\.com\.\s+\d+\s+IN\s+A\s+192\.0\.2\.1$/m);
    const tcp = await queryTcp({ port, name: 'example.com', type: 'AAAA' });
    expect(data(tcp)).toEqual(['2001:db8::1']);
    expect(doh.requests + doh2.requests).toBeGreaterThanOrEqual(2);
    const settings = await child.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('proxy-dns: cloudflared settings'));
    expect(settings.port).toEqual({ value: 0, from: '--port' });
    expect(settings.address).toEqual({ value: 'localhost', from: 'default' });
    expect(settings.upstream).toEqual({ value: [doh.url, doh2.url], from: '--upstream' });
    expect(settings.maxUpstreamConns).toEqual({ value: 0, from: '--max-upstream-conns' });
    const listening = await child.waitForLog((l) => l.msg === 'dohd listening');
    expect(listening.listen).toEqual([`127.0.0.1:${port}`]);
  });

  it('TUNNEL_DNS_* variables, with a flag winning over its variable as in cloudflared', async () => {
    child = spawnCli(['proxy-dns', '--port', '0'], {
      env: env({
        TUNNEL_DNS_ADDRESS: '127.0.0.1',
        TUNNEL_DNS_PORT: '5053', // overridden by --port: never bound
        TUNNEL_DNS_UPSTREAM: `${doh.url}, ${doh2.url}`,
        TUNNEL_DNS_MAX_UPSTREAM_CONNS: '2',
        TUNNEL_LOGLEVEL: 'debug',
      }),
    });
    const p = await listeningPort(child);
    const r = await queryUdp({ port: p, name: 'www.example.com' });
    expect(data(r)).toEqual(['192.0.2.3']);
    const settings = await child.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('proxy-dns: cloudflared settings'));
    expect(settings.address).toEqual({ value: '127.0.0.1', from: 'TUNNEL_DNS_ADDRESS' });
    expect(settings.port).toEqual({ value: 0, from: '--port' });
    expect(settings.upstream).toEqual({ value: [doh.url, doh2.url], from: 'TUNNEL_DNS_UPSTREAM' });
    expect(settings.loglevel).toEqual({ value: 'debug', from: 'TUNNEL_LOGLEVEL' });
  });

  it('--loglevel maps onto dohd\'s log level: at warn, a healthy start-up logs nothing', async () => {
    child = spawnCli(['proxy-dns', '--loglevel', 'warn', '--port', '0', '--address', '127.0.0.1', '--upstream', doh.url], { env: env() });
    const port = await boundUdpPort(child); // nothing logged at warn: read from the socket table
    let answered = null;
    for (let i = 0; i < 100 && !answered; i++) {
      answered = await queryUdp({ port, name: 'example.com', timeoutMs: 200 }).catch(() => null);
    }
    expect(answered && data(answered)).toEqual(['192.0.2.1']);
    expect(child.stdout).toEqual([]);
  });

  it('the proxy-dns keys of a cloudflared config.yml given with --config', async () => {
    const file = join(pki.dir, 'cloudflared.yml');
    writeFileSync(
      file,
      ['proxy-dns: true', 'proxy-dns-port: 0', 'proxy-dns-address: 127.0.0.1', 'proxy-dns-upstream:', `  - ${doh.url}`, `  - ${doh2.url}`, 'proxy-dns-max-upstream-conns: 3', 'no-autoupdate: true', ''].join('\n'),
    );
    child = spawnCli(['proxy-dns', '--config', file], { env: env({ TUNNEL_DNS_PORT: '' }) });
    const p = await listeningPort(child);
    const r = await queryUdp({ port: p, name: 'example.com' });
    expect(data(r)).toEqual(['192.0.2.1']);
    const settings = await child.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('proxy-dns: cloudflared settings'));
    expect(settings.config).toBe(file);
    expect(settings.upstream).toEqual({ value: [doh.url, doh2.url], from: `${file}: proxy-dns-upstream` });
    expect(settings.maxUpstreamConns).toEqual({ value: 3, from: `${file}: proxy-dns-max-upstream-conns` });
  });

  it("cloudflared's default config place is read when --config is not given, as cloudflared did", async () => {
    const h = join(pki.dir, 'home-with-config');
    mkdirSync(join(h, '.cloudflared'), { recursive: true });
    writeFileSync(join(h, '.cloudflared', 'config.yml'), `port: 0\naddress: 127.0.0.1\nupstream: [${doh.url}]\n`);
    child = spawnCli(['proxy-dns'], { env: env({ HOME: h }) });
    const p = await listeningPort(child);
    expect(data(await queryUdp({ port: p, name: 'example.com' }))).toEqual(['192.0.2.1']);
    const settings = await child.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('proxy-dns: cloudflared settings'));
    expect(settings.config).toBe(join(h, '.cloudflared', 'config.yml'));
  });

  it('an upstream given by name is found through the --bootstrap DoH server, never the system resolver', async () => {
    child = spawnCli(['proxy-dns', '--port', '0', '--address', '127.0.0.1', '--upstream', doh.urlFor('doh.test'), '--bootstrap', boot.url], { env: env() });
    const p = await listeningPort(child);
    const found = await child.waitForLog((l) => l.msg === 'proxy-dns: upstream address found through the bootstrap servers');
    expect(found.addresses).toEqual(['127.0.0.1']);
    expect(boot.queries.map((q) => `${q.questions![0]!.name}/${q.questions![0]!.type}`).sort()).toEqual(['doh.test/A', 'doh.test/AAAA']);
    const r = await queryUdp({ port: p, name: 'example.com' });
    expect(data(r)).toEqual(['192.0.2.1']);
    expect(doh.lastRequest!.servername).toBe('doh.test');
  });

  it('an upstream name no bootstrap server can find stops start-up, naming it', async () => {
    boot.mode = 'http500';
    child = spawnCli(['proxy-dns', '--port', '0', '--upstream', doh.urlFor('doh.test'), '--bootstrap', boot.url], { env: env() });
    const exit = await child.exited;
    expect(exit.code).toBe(1);
    expect(child.stderr.trim().split('\n')).toHaveLength(1);
    expect(child.stderr).toContain(`dohd: proxy-dns: --upstream ${doh.urlFor('doh.test')}: cannot find the address of doh.test through ${boot.url}`);
  });
});

describe('metrics and private CAs, as cloudflared users had them', () => {
  it('--metrics ADDR serves /metrics there (as cloudflared did); TUNNEL_METRICS=localhost: picks a port; without it, no admin listener', async () => {
    child = spawnCli(['proxy-dns', '--port', '0', '--upstream', doh.url, '--metrics', 'localhost:0'], { env: env() });
    const up = await child.waitForLog((l) => l.msg === 'dohd listening');
    const port = await listeningPort(child);
    expect(up.admin).toMatch(/^127\.0\.0\.1:\d+$/);
    const metrics = Number(String(up.admin).split(':')[1]);
    expect(metrics).toBeGreaterThan(0);
    await queryUdp({ port, name: 'example.com' });
    const m = parseProm((await adminGet(metrics, '/metrics')).body);
    expect(m.value('dohd_queries_total')).toBe(1);
    await child.kill();

    child = spawnCli(['proxy-dns', '--port', '0', '--upstream', doh.url], { env: env({ TUNNEL_METRICS: 'localhost:' }) });
    const random = await child.waitForLog((l) => l.msg === 'dohd listening');
    expect(random.admin).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(random.admin).not.toBe('127.0.0.1:0');
    const r = await adminGet(Number(String(random.admin).split(':')[1]), '/healthz');
    expect(r.body).toBe('ok\n');
    await child.kill();

    child = spawnCli(['proxy-dns', '--port', '0', '--upstream', doh.url], { env: env() });
    const none = await child.waitForLog((l) => l.msg === 'dohd listening');
    expect(none.admin).toBeNull();
    const help = await exec(process.execPath, [CLI, 'proxy-dns', '--help']);
    const flat = help.stdout.replace(/\s+/g, ' ');
    expect(flat).toContain("--metrics Listen address for metrics reporting: dohd's admin listener (/metrics, /healthz, /readyz, /status) on ADDR:PORT");
    expect(flat).toContain('Without it dohd proxy-dns opens no admin listener. [$TUNNEL_METRICS]');
  });

  it('a private CA: without it the certificate error names the fix; --ca trusts it', async () => {
    child = spawnCli(['proxy-dns', '--port', '0', '--upstream', doh.url], { env: { HOME: home } });
    const port = await listeningPort(child);
    const r = await queryUdp({ port, name: 'example.com' });
    expect(r.response.rcode).toBe('SERVFAIL');
    const failed = await child.waitForLog((l) => l.msg === 'upstream failed');
    expect(failed.reason).toBe('intercepted'); // an unknown CA: either interception or a private CA, and the hint says both
    expect(String(failed.detail)).toMatch(
      /\(UNABLE_TO_VERIFY_LEAF_SIGNATURE\); if the upstream uses a private CA, trust it with --ca FILE, "ca: FILE" on the upstream in the configuration, or NODE_EXTRA_CA_CERTS=FILE$/,
    );
    await child.kill();

    child = spawnCli(['proxy-dns', '--port', '0', '--upstream', doh.url, '--ca', pki.caFile], { env: { HOME: home } });
    expect(data(await queryUdp({ port: await listeningPort(child), name: 'example.com' }))).toEqual(['192.0.2.1']);
    await child.kill();

    child = spawnCli(['proxy-dns', '--port', '0', '--upstream', doh.url, '--ca', join(pki.dir, 'nope.pem')], { env: { HOME: home } });
    const exit = await child.exited;
    expect(exit.code).toBe(2);
    expect(child.stderr.trim()).toBe(`dohd: proxy-dns: --ca: cannot read ${join(pki.dir, 'nope.pem')}: ENOENT`);
  });
});

describe('what dohd proxy-dns cannot honour is refused by name', () => {
  const refused = async (args: string[], extraEnv: NodeJS.ProcessEnv = {}) => {
    const c = spawnCli(['proxy-dns', '--port', '0', '--upstream', doh.url, ...args], { env: env(extraEnv) });
    const exit = await c.exited;
    return { code: exit.code, stderr: c.stderr.trim() };
  };

  it('a flag cloudflared had elsewhere, or never had', async () => {
    const a = await refused(['--logfile', '/var/log/cloudflared.log']);
    expect(a.code).toBe(2);
    expect(a.stderr).toBe('dohd: unknown option --logfile (see dohd proxy-dns --help)');
  });

  it('tunnel keys in the cloudflared config file', async () => {
    const file = join(pki.dir, 'tunnel.yml');
    writeFileSync(file, 'tunnel: 6ff42ae2-765d-4adf-8112-31c55c1551ef\ncredentials-file: /root/.cloudflared/x.json\nproxy-dns: true\nproxy-dns-port: 5053\n');
    const r = await refused(['--config', file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe(
      `dohd: proxy-dns: ${file}: "tunnel", "credentials-file" are not part of cloudflared's DNS proxy, which is all dohd proxy-dns replaces; give dohd a file with only the proxy-dns keys (--config FILE)`,
    );
  });

  it('a bootstrap URL whose host is a name, and a plain-http upstream', async () => {
    const a = await refused(['--bootstrap', 'https://dns.example/dns-query']);
    expect(a.stderr).toBe('dohd: proxy-dns: --bootstrap: "https://dns.example/dns-query": a bootstrap URL\'s host must be an IP address');
    const c = spawnCli(['proxy-dns', '--port', '0'], { env: env({ TUNNEL_DNS_UPSTREAM: 'http://127.0.0.1:8053/dns-query' }) });
    expect((await c.exited).code).toBe(2);
    expect(c.stderr.trim()).toBe('dohd: proxy-dns: TUNNEL_DNS_UPSTREAM: "http://127.0.0.1:8053/dns-query" must be an https:// URL (dohd speaks DNS-over-HTTPS only)');
  });
});

describe('cloudflared settings, resolved', () => {
  it("defaults are cloudflared's: localhost:53 (127.0.0.1), Cloudflare's IP upstreams, its bootstrap URLs, 5 connections", () => {
    const s = proxyDnsSettings({}, {}, home);
    expect(s.address).toEqual({ value: 'localhost', from: 'default' });
    expect(s.port).toEqual({ value: 53, from: 'default' });
    expect(s.upstream.value).toEqual(['https://1.1.1.1/dns-query', 'https://1.0.0.1/dns-query']);
    expect(s.bootstrap.value).toEqual([...CLOUDFLARED_DEFAULTS.bootstrap]);
    expect(s.maxUpstreamConns.value).toBe(5);
    expect(s.configFile).toBeNull();
    expect(listenAddresses(s)).toEqual(['127.0.0.1:53']);
  });

  it('flag, then variable, then file, then default', () => {
    const file = join(pki.dir, 'order.yml');
    writeFileSync(file, 'proxy-dns-port: 5300\nproxy-dns-address: "::1"\nproxy-dns-upstream: https://192.0.2.9/dns-query\n');
    const s = proxyDnsSettings({ config: file, address: '127.0.0.2' }, { TUNNEL_DNS_PORT: '5353' }, home);
    expect(s.address).toEqual({ value: '127.0.0.2', from: '--address' });
    expect(s.port).toEqual({ value: 5353, from: 'TUNNEL_DNS_PORT' });
    expect(s.upstream).toEqual({ value: ['https://192.0.2.9/dns-query'], from: `${file}: proxy-dns-upstream` });
    expect(listenAddresses({ address: { value: '::1', from: '' }, port: { value: 5053, from: '' } })).toEqual(['[::1]:5053']);
    // cloudflared's wildcard was one dual-stack socket: IPv4 and IPv6 (IPv4 only on a machine without IPv6).
    for (const wildcard of ['', '0.0.0.0', '::']) {
      expect(listenAddresses({ address: { value: wildcard, from: '' }, port: { value: 53, from: '' } }, true)).toEqual(['0.0.0.0:53', '[::]:53']);
      expect(listenAddresses({ address: { value: wildcard, from: '' }, port: { value: 53, from: '' } }, false)).toEqual(['0.0.0.0:53']);
    }
  });

  it('problems are collected and named, one line', () => {
    const file = join(pki.dir, 'bad.yml');
    writeFileSync(file, 'proxy-dns: false\nport: 53\nproxy-dns-port: 54\nloglevel: chatty\nno-autoupdate: false\n');
    let err: ConfigError | undefined;
    try {
      proxyDnsSettings({ config: file, upstream: ['ftp://x/'], maxUpstreamConns: '-1' }, {}, home);
    } catch (e) {
      err = e as ConfigError;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect(err!.problems).toEqual([
      `${file}: proxy-dns: false turns the DNS proxy off: nothing for dohd proxy-dns to do`,
      `${file}: "port" and "proxy-dns-port" set the same thing; keep one`,
      `${file}: no-autoupdate: false asks for automatic updates, which dohd never does; remove the key or set it to true`,
      '--upstream: "ftp://x/" must be an https:// URL (dohd speaks DNS-over-HTTPS only)',
      '--max-upstream-conns: expected a whole number from 0 to 1000000, got "-1"',
      `${file}: loglevel: unknown log level "chatty" (debug, info, warn, error, fatal)`,
    ]);
    expect(err!.message).not.toContain('\n');
  });
});
