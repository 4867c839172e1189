/**
 * `dohd doctor` against staged machines, entirely on loopback: a fake resolv.conf and hosts
 * file, a plain DNS server as "the system resolver", the suite's DoH server as dohd's
 * upstream, and TLS servers standing in for the Go module proxies. Each broken setup must be
 * named, with a fix that works (the hosts fix is run and the doctor asked again).
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import dgram from 'node:dgram';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { startDohServer, type DohServer } from '../fixtures/doh-server.js';
import { makePki, type Pki } from '../fixtures/pki.js';
import { startPlainDnsServer, type PlainDnsServer } from '../fixtures/plain-dns-server.js';
import { runCli } from '../fixtures/spawn.js';
import { Zone, type ZoneRecord } from '../fixtures/zone.js';
import { useTempDir } from '../fixtures/temp-dir.js';
import { GO_PROXY_NAMES } from '../../src/config/defaults.js';
import { removeHostsLine } from '../../src/doctor/hosts.js';
import { parseHosts } from '../../src/stages/hosts/hosts-file.js';
import { parseResolvConf } from '../../src/doctor/resolv-conf.js';
import { proxyHosts, sumdbHost } from '../../src/doctor/go-env.js';

const run = promisify(execFile);
let pki: Pki;
let otherPki: Pki;
let doh: DohServer;
let system: PlainDnsServer;
let proxyPort: number;
const tlsServers: tls.Server[] = [];

/** A TLS server standing in for a module proxy: completes the handshake, then hangs up. */
async function tlsServer(host: string, port: number, p: Pki): Promise<number> {
  const srv = tls.createServer({ key: p.keyPem, cert: p.certPem }, (s) => s.end());
  srv.on('tlsClientError', () => {});
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(port, host, () => resolve());
  });
  tlsServers.push(srv);
  return (srv.address() as AddressInfo).port;
}

const zone = (records: ZoneRecord[]) => new Zone(records);
const healthy: ZoneRecord[] = [
  { name: 'goproxy.example.net', type: 'A', data: '127.0.0.1' },
  { name: 'proxy.example.net', type: 'A', data: '127.0.0.2' },
  { name: 'sum.example.net', type: 'A', data: '127.0.0.1' },
];

const tmp = useTempDir('dohd-doctor-');

beforeAll(async () => {
  pki = await makePki({ dnsNames: ['goproxy.example.net', 'proxy.example.net', 'sum.example.net', 'doh.test', 'goproxy.io', 'localhost'], ips: ['127.0.0.1'] });
  otherPki = await makePki({ dnsNames: ['other.example.net'], ips: [] });
  doh = await startDohServer({ pki });
  system = await startPlainDnsServer();
  proxyPort = await tlsServer('127.0.0.2', 0, pki);
  await tlsServer('127.0.0.1', proxyPort, pki);
  await tlsServer('127.0.0.3', proxyPort, otherPki); // answers TLS with a certificate for other.example.net
});
afterAll(async () => {
  await Promise.all([doh.close(), system.close(), ...tlsServers.map((s) => new Promise((r) => s.close(r)))]);
  await Promise.all([pki.cleanup(), otherPki.cleanup()]);
});
beforeEach(() => {
  doh.reset();
  doh.zone = zone(healthy);
  system.zone = zone(healthy);
  system.mode = 'ok';
  writeFileSync(join(tmp.path, 'resolv.conf'), '# staged\nnameserver 127.0.0.1\nsearch corp.example.net\noptions ndots:2 edns0\n');
  writeFileSync(join(tmp.path, 'hosts'), '127.0.0.1 localhost\n::1 localhost ip6-localhost\n');
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function doctor(args: string[], env: NodeJS.ProcessEnv = { GOPROXY: 'https://goproxy.example.net,https://proxy.example.net,direct' }): Promise<Run> {
  const defaults: Record<string, string> = {
    '--resolv-conf': join(tmp.path, 'resolv.conf'),
    '--hosts': join(tmp.path, 'hosts'),
    '--dns-port': String(system.port),
    '--port': String(proxyPort),
    '--upstream': doh.url,
    '--ca': pki.caFile,
    '--timeout': '1500',
    // No container runtime on the staged machine (the containers check has its own tests).
    '--runtime-path': tmp.path,
  };
  // Every target points at this test's staged machine unless the test says otherwise.
  const base = ['doctor', ...Object.entries(defaults).flatMap(([k, v]) => (args.includes(k) ? [] : [k, v]))];
  const cleanEnv: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, ...env };
  return runCli([...base, ...args], { cleanEnv, timeoutMs: 30_000 });
}

const verdict = (out: string) => out.slice(out.indexOf('== Verdict'));

describe('dohd doctor on a healthy staged machine', () => {
  it('reads resolv.conf and reports every name resolved both ways and reachable: exit 0', async () => {
    const r = await doctor(['--names', 'goproxy.example.net,proxy.example.net', '--go', 'none']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`== resolv.conf (${join(tmp.path, 'resolv.conf')})`);
    expect(r.stdout).toContain('nameservers: 127.0.0.1; search: corp.example.net; ndots: 2; edns0: yes');
    expect(r.stdout).toMatch(/note  ndots:2 with 1 search domains: .* goproxy\.cn\.corp\.example\.net/);
    expect(r.stdout).toContain(`127.0.0.1:${system.port}: answered 2 of 2 names`);
    expect(r.stdout).toMatch(/goproxy\.example\.net\s+127\.0\.0\.1\s+127\.0\.0\.1/);
    expect(r.stdout).toMatch(new RegExp(`proxy\\.example\\.net\\s+127\\.0\\.0\\.2:${proxyPort}\\s+\\(system, doh\\)\\s+OK\\s+TLS TLSv1\\.3 ok, certificate for proxy\\.example\\.net`));
    expect(r.stdout).toContain('GOPROXY=https://goproxy.example.net,https://proxy.example.net,direct');
    expect(verdict(r.stdout)).toContain('OK: the resolver answers, the names resolve, and their servers answer TLS.');
    expect(doh.requests).toBeGreaterThanOrEqual(4); // A and AAAA for each name, over DoH
  });

  it('without --names, checks the Go proxy names and the GOPROXY and GOSUMDB hosts', async () => {
    const r = await doctor(['--go', 'none', '--json'], { GOPROXY: 'https://goproxy.example.net', GOSUMDB: 'sum.example.net' });
    const report = JSON.parse(r.stdout) as { sections: { check: string; lines: string[] }[] };
    const table = report.sections.find((s) => s.check === 'doh')!.lines.slice(1).map((l) => l.split(/\s+/)[0]);
    expect(table).toEqual([...GO_PROXY_NAMES, 'goproxy.example.net', 'sum.example.net']);
  });
});

describe('dohd doctor names each staged fault', () => {
  it('resolver down (connection refused): FAULT, the system resolver is down, with the restart commands', async () => {
    const closed = await new Promise<number>((resolve) => {
      const s = dgram.createSocket('udp4');
      s.bind(0, '127.0.0.1', () => {
        const p = s.address().port;
        s.close(() => resolve(p));
      });
    });
    const r = await doctor(['--names', 'goproxy.example.net', '--go', 'none', '--dns-port', String(closed)]);
    expect(r.code).toBe(1);
    const v = verdict(r.stdout);
    expect(v).toContain(
      `1. FAULT [system-resolver] nameserver 127.0.0.1:${closed} does not answer: unreachable (connection refused) (the system resolver is down: every lookup on this machine fails)`,
    );
    expect(v).toContain('sudo systemctl restart dohd   # if dohd is this resolver');
  });

  it('resolver down (silent): the timeout is named too', async () => {
    system.mode = 'hang';
    const r = await doctor(['--names', 'goproxy.example.net', '--go', 'none', '--timeout', '400']);
    expect(r.code).toBe(1);
    expect(verdict(r.stdout)).toContain(`nameserver 127.0.0.1:${system.port} does not answer: no answer (timeout)`);
  });

  it('hosts entry pointing elsewhere: named with the line, the fix works', async () => {
    const hosts = join(tmp.path, 'hosts');
    writeFileSync(hosts, '127.0.0.1 localhost\n# old mirror\n127.0.0.9   goproxy.example.net   gp\n');
    const r = await doctor(['--names', 'goproxy.example.net', '--go', 'none']);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('WARN  goproxy.example.net is fixed to 127.0.0.9 (line 3): DNS is never asked for it, and the DoH upstreams say 127.0.0.1');
    const v = verdict(r.stdout);
    expect(v).toContain(
      `FAULT [reachability] goproxy.example.net: the address this machine uses (fixed in ${hosts}) fails: 127.0.0.9:${proxyPort} (TCP: connection refused (nothing listens on that port)); 127.0.0.1 from the DoH upstreams works`,
    );
    const fix = removeHostsLine(hosts, 'goproxy.example.net');
    expect(v).toContain(fix);
    // Run the printed fix (as root already: without sudo) and ask again.
    await run('sh', ['-c', fix.replace(/^sudo /, '')]);
    expect(readFileSync(hosts, 'utf8')).toBe('127.0.0.1 localhost\n# old mirror\n');
    const again = await doctor(['--names', 'goproxy.example.net', '--go', 'none']);
    expect(again.code).toBe(0);
    expect(verdict(again.stdout)).toContain('OK:');
  });

  it('proxy port closed: FAULT naming the refused address, and a reachable proxy to switch to', async () => {
    doh.zone = zone([...healthy.filter((r) => r.name !== 'goproxy.example.net'), { name: 'goproxy.example.net', type: 'A', data: '127.0.0.4' }]);
    system.zone = doh.zone;
    const r = await doctor(['--names', 'goproxy.example.net,proxy.example.net', '--go', 'none']);
    expect(r.code).toBe(1);
    const v = verdict(r.stdout);
    expect(v).toContain(
      `FAULT [reachability] goproxy.example.net cannot be reached on port ${proxyPort} at any address: 127.0.0.4:${proxyPort} TCP: connection refused (nothing listens on that port)`,
    );
    expect(v).toContain('go env -w GOPROXY=https://proxy.example.net,direct   # proxy.example.net is reachable from here');
    expect(v).not.toMatch(/FAULT \[reachability\] proxy\.example\.net/);
  });

  it('advice never recommends a proxy it found unreachable: another reachable proxy instead, listed once', async () => {
    // Every name resolves to loopback on this staged machine: goproxy.cn and proxy.golang.org to a closed port.
    const closed: ZoneRecord[] = [
      { name: 'goproxy.cn', type: 'A', data: '127.0.0.4' },
      { name: 'proxy.golang.org', type: 'A', data: '127.0.0.4' },
      { name: 'goproxy.io', type: 'A', data: '127.0.0.1' },
    ];
    doh.zone = zone([...healthy, ...closed]);
    system.zone = doh.zone;
    const r = await doctor(['--names', 'goproxy.cn,proxy.golang.org,goproxy.io', '--go', 'none'], {});
    expect(r.code).toBe(1);
    const v = verdict(r.stdout);
    expect(v).toContain(`FAULT [reachability] goproxy.cn cannot be reached on port ${proxyPort} at any address`);
    expect(v).toContain('GOPROXY is not set, so Go uses proxy.golang.org, which cannot be reached from here');
    expect(v).not.toContain('GOPROXY=https://goproxy.cn');
    expect(v).not.toContain('GOPROXY=https://proxy.golang.org');
    const fixAll = v.slice(v.indexOf('To fix all of it'));
    expect(fixAll.split('\n').filter((l) => l.includes('go env -w GOPROXY='))).toEqual(['     go env -w GOPROXY=https://goproxy.io,direct   # goproxy.io is reachable from here']);
  });

  it('when no proxy can be reached, no proxy is recommended: what is in the way is named', async () => {
    doh.zone = zone([
      ...healthy,
      { name: 'goproxy.cn', type: 'A', data: '127.0.0.4' },
      { name: 'proxy.golang.org', type: 'A', data: '127.0.0.4' },
    ]);
    system.zone = doh.zone;
    const r = await doctor(['--names', 'goproxy.cn,proxy.golang.org', '--go', 'none'], {});
    const v = verdict(r.stdout);
    expect(v).not.toContain('go env -w GOPROXY=');
    expect(v).toContain('# no module proxy could be reached from here: a firewall or a web proxy is in the way');
  });

  it("a pin of dohd's that differs from DoH is the user's choice, not \"normal for CDNs\"; a failing pin gets pins learn", async () => {
    const config = join(tmp.path, 'pinned.yaml');
    writeFileSync(config, 'pins:\n  goproxy.example.net: [127.0.0.2]\n');
    // The system resolver is dohd, answering the pin; DoH says 127.0.0.1.
    system.zone = zone([...healthy.filter((x) => x.name !== 'goproxy.example.net'), { name: 'goproxy.example.net', type: 'A', data: '127.0.0.2' }]);
    const r = await doctor(['--names', 'goproxy.example.net', '--go', 'none', '--config', config]);
    expect(r.stdout).toContain("note  goproxy.example.net: pinned by you to 127.0.0.2 (dohd's pins); the DoH upstreams say 127.0.0.1 (the reachability check below tries both)");
    expect(r.stdout).not.toContain('normal for CDNs');
    expect(r.code).toBe(0);

    writeFileSync(config, 'pins:\n  goproxy.example.net: [127.0.0.4]\n'); // nothing listens there any more
    system.zone = zone([...healthy.filter((x) => x.name !== 'goproxy.example.net'), { name: 'goproxy.example.net', type: 'A', data: '127.0.0.4' }]);
    const bad = await doctor(['--names', 'goproxy.example.net', '--go', 'none', '--config', config]);
    expect(bad.code).toBe(1);
    const v = verdict(bad.stdout);
    expect(v).toContain("goproxy.example.net: the address this machine uses (pinned by you in dohd's configuration) fails");
    expect(v).toContain('dohd pins learn goproxy.example.net');
    expect(v).not.toContain('systemctl enable --now dohd');
  });

  it('GOPROXY unset: WARN that Go falls back to proxy.golang.org, with the go env -w fix', async () => {
    const r = await doctor(['--names', 'goproxy.example.net', '--go', 'none'], {});
    expect(r.code).toBe(0); // a warning, not a fault: it works where proxy.golang.org is reachable
    expect(r.stdout).toContain("GOPROXY=https://proxy.golang.org,direct   (not set: Go's default)");
    const v = verdict(r.stdout);
    expect(v).toContain('nothing broken, 1 warning:');
    expect(v).toContain('1. WARN [go] GOPROXY is not set: Go fetches modules through https://proxy.golang.org');
    expect(v).toContain('go env -w GOPROXY=https://goproxy.cn,direct');
  });

  it('GOPROXY from `go env` (as go env -w leaves it) counts as set; a failing go is reported', async () => {
    const fakeGo = join(tmp.path, 'go');
    writeFileSync(fakeGo, '#!/bin/sh\n[ "$1" = env ] || exit 2\necho \'{"GOPROXY":"https://goproxy.example.net,direct","GOSUMDB":"sum.example.net","GOPRIVATE":"corp.example.net","GONOPROXY":"","GONOSUMDB":"","GOFLAGS":""}\'\n');
    chmodSync(fakeGo, 0o755);
    const r = await doctor(['--names', 'goproxy.example.net', '--go', fakeGo], {});
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`from "${fakeGo} env" (environment and go env -w)`);
    expect(r.stdout).toContain('GOPROXY=https://goproxy.example.net,direct\n');
    expect(r.stdout).toContain('GOPRIVATE=corp.example.net');
    expect(r.stdout).not.toContain('GOPROXY is not set');
    const broken = await doctor(['--names', 'goproxy.example.net', '--go', join(tmp.path, 'no-such-go')]);
    expect(broken.stdout).toContain(`from the environment (go env: ${join(tmp.path, 'no-such-go')} not found)`);
  });

  it('a resolver that says NXDOMAIN while DoH resolves the name: "no such host", named', async () => {
    system.zone = zone(healthy.filter((r) => r.name !== 'goproxy.example.net'));
    const r = await doctor(['--names', 'goproxy.example.net', '--go', 'none']);
    expect(r.code).toBe(1);
    expect(verdict(r.stdout)).toContain(
      'FAULT [doh] the system resolver cannot resolve goproxy.example.net (does not exist (NXDOMAIN)) but the DoH upstreams can (127.0.0.1): this is "lookup goproxy.example.net: no such host"',
    );
    expect(verdict(r.stdout)).toContain(`printf 'nameserver 127.0.0.1\\nnameserver ::1\\noptions edns0 trust-ad\\n' | sudo tee ${join(tmp.path, 'resolv.conf')}`);
  });

  it('a polluted answer leading to a server with an untrusted certificate: named forged plain DNS, with the TLS failure', async () => {
    system.zone = zone([...healthy.filter((r) => r.name !== 'goproxy.example.net'), { name: 'goproxy.example.net', type: 'A', data: '127.0.0.3' }]);
    const r = await doctor(['--names', 'goproxy.example.net', '--go', 'none']);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/goproxy\.example\.net: the system resolver and DoH give different addresses/);
    expect(verdict(r.stdout)).toContain(
      `FAULT [reachability] forged plain DNS: the system resolver answers goproxy.example.net with 127.0.0.3, which DoH does not give and which fails TLS for goproxy.example.net. goproxy.example.net: the address this machine uses (from the system resolver) fails: 127.0.0.3:${proxyPort} (TLS: the certificate is not from a trusted authority (an interception proxy or captive portal?) (UNABLE_TO_VERIFY_LEAF_SIGNATURE)); 127.0.0.1 from the DoH upstreams works`,
    );
  });

  it('a trusted certificate for another name is named as such', async () => {
    for (const z of [doh, system]) z.zone = zone([...healthy, { name: 'nosan.example.net', type: 'A', data: '127.0.0.1' }]);
    const r = await doctor(['--names', 'nosan.example.net', '--go', 'none']);
    expect(r.code).toBe(1);
    expect(verdict(r.stdout)).toContain(
      `FAULT [reachability] nosan.example.net cannot be reached on port ${proxyPort} at any address: 127.0.0.1:${proxyPort} TLS: the certificate is not for nosan.example.net (ERR_TLS_CERT_ALTNAME_INVALID)`,
    );
  });

  it('DoH upstreams unreachable: a warning with the command that shows why', async () => {
    doh.mode = 'http500';
    const r = await doctor(['--names', 'goproxy.example.net', '--go', 'none']);
    expect(verdict(r.stdout)).toMatch(/WARN \[doh\] the DoH upstreams answered none of the names: error \(http_status: HTTP 500\)/);
    expect(verdict(r.stdout)).toContain(`dohd query goproxy.example.net --doh ${doh.url} --bootstrap 127.0.0.1   # see why`);
  });

  it('--json carries every finding with its level and fix', async () => {
    writeFileSync(join(tmp.path, 'hosts'), '127.0.0.9 goproxy.example.net\n');
    const r = await doctor(['--names', 'goproxy.example.net', '--go', 'none', '--json'], {});
    const report = JSON.parse(r.stdout) as { faults: number; warnings: number; problems: { check: string; level: string; fix?: string[] }[] };
    expect(report.faults).toBe(1);
    expect(report.problems.map((p) => `${p.level}:${p.check}`).sort()).toEqual(['fault:reachability', 'warn:go', 'warn:hosts']);
    expect(report.problems.every((p) => p.fix && p.fix.length > 0)).toBe(true);
  });

  it('bad arguments exit 2', async () => {
    const r = await doctor(['--names', ' , ', '--go', 'none']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--names: give at least one name');
  });
});

describe('doctor parsers', () => {
  it('resolv.conf: nameservers, search, ndots, edns0, comments', () => {
    const c = parseResolvConf('# c\nnameserver 10.0.0.1 # x\nnameserver fe80::1%eth0\nsearch a.example.net b.example.net\noptions ndots:5 edns0 trust-ad\n');
    expect(c).toEqual({ nameservers: ['10.0.0.1', 'fe80::1'], search: ['a.example.net', 'b.example.net'], ndots: 5, edns0: true, options: ['ndots:5', 'edns0', 'trust-ad'] });
  });

  it('hosts: entries with names, lower-cased; comments and junk skipped', () => {
    expect(parseHosts('127.0.0.1 localhost\n# 1.2.3.4 x\n10.0.0.9 GoProxy.CN. alias # c\nnot-an-ip foo\n')).toEqual([
      { address: '127.0.0.1', names: ['localhost'], line: 1 },
      { address: '10.0.0.9', names: ['goproxy.cn', 'alias'], line: 3 },
    ]);
  });

  it('GOPROXY and GOSUMDB hosts', () => {
    expect(proxyHosts('https://goproxy.cn|https://mirrors.aliyun.com/goproxy/,direct')).toEqual(['goproxy.cn', 'mirrors.aliyun.com']);
    expect(proxyHosts('off')).toEqual([]);
    expect(sumdbHost('sum.golang.org')).toBe('sum.golang.org');
    expect(sumdbHost('sum.golang.google.cn')).toBe('sum.golang.google.cn');
    expect(sumdbHost('gosum.io+ce6e7565+AY5qEHUk https://gosum.io')).toBe('gosum.io');
    expect(sumdbHost('off')).toBeNull();
  });
});
