/**
 * `dohd doctor`'s containers check on staged machines: a bin directory standing in for PATH
 * (with dockerd, podman or nerdctl executables that are never run), a staged resolv.conf,
 * daemon.json and containers.conf. Each verdict: containers will get 8.8.8.8 (and the exact
 * fix), the runtime names an address dohd does not listen on, a loopback address, an address
 * outside the ACL, a broken daemon.json, and the healthy setup. Nothing is contacted.
 */
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { execFile, execSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DEFAULT_ACL_ALLOW, DEFAULT_LISTEN } from '../../src/config/defaults.js';
import { checkContainers, listensOn, readPodmanConfig, type ContainerTargets } from '../../src/doctor/containers.js';
import { parseResolvConf } from '../../src/doctor/resolv-conf.js';
import type { DoctorContext, Section } from '../../src/doctor/types.js';
import { CLI } from '../fixtures/spawn.js';

const dir = mkdtempSync(join(tmpdir(), 'dohd-doctor-ctr-'));
const bin = join(dir, 'bin');
const daemonJson = join(dir, 'daemon.json');
const containersConf = join(dir, 'containers.conf');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Puts executables with these names in the staged PATH directory (they are never run). */
function installRuntimes(...names: string[]): void {
  rmSync(bin, { recursive: true, force: true });
  mkdirSync(bin);
  for (const n of names) {
    writeFileSync(join(bin, n), '#!/bin/sh\necho "the doctor must not run container runtimes" >&2\nexit 99\n');
    chmodSync(join(bin, n), 0o755);
  }
}

function check(resolv: string, targets: Partial<ContainerTargets> = {}): Section {
  const t: ContainerTargets = {
    dockerConfig: daemonJson,
    podmanConfig: containersConf,
    runtimePath: bin,
    resolvedConf: join(dir, 'resolved-resolv.conf'),
    listen: [...DEFAULT_LISTEN],
    aclAllow: [...DEFAULT_ACL_ALLOW],
    ...targets,
  };
  const ctx = { opts: { env: {}, containers: t }, resolv: parseResolvConf(resolv) } as unknown as DoctorContext;
  return checkContainers(ctx);
}

const LOOPBACK_ONLY = 'nameserver 127.0.0.1\nnameserver ::1\noptions edns0 trust-ad\n';
const faults = (s: Section) => s.findings.filter((f) => f.level === 'fault');

beforeEach(() => {
  rmSync(daemonJson, { force: true });
  rmSync(containersConf, { force: true });
  installRuntimes();
});

describe('doctor: what DNS containers get', () => {
  it('no runtime installed: nothing to say', () => {
    const s = check(LOOPBACK_ONLY);
    expect(s.findings).toEqual([]);
    expect(s.lines.join('\n')).toContain('no container runtime found');
  });

  it('Docker installed, host resolv.conf loopback-only, no "dns": containers get 8.8.8.8, and the fix is printed', () => {
    installRuntimes('dockerd', 'docker');
    const s = check(LOOPBACK_ONLY);
    expect(s.lines[0]).toContain(`docker (${join(bin, 'dockerd')})`);
    const [f, ...rest] = faults(s);
    expect(rest).toEqual([]);
    expect(f!.message).toContain('gives containers 8.8.8.8 and 8.8.4.4 instead (moby#6388)');
    expect(f!.message).toContain('lookup goproxy.cn on 8.8.8.8:53');
    expect(f!.fix).toEqual([
      `# in dohd's configuration, add "172.17.0.1:53" to "listen"`,
      'sudo systemctl restart dohd',
      `echo '{ "dns": ["172.17.0.1"] }' | sudo tee ${daemonJson}`,
      'sudo systemctl restart docker   # containers created before keep their resolv.conf: recreate them',
    ]);
    // The fix works: run the daemon.json command (here without sudo), add the listen entry, ask again.
    execSync(f!.fix![2]!.replace('sudo ', ''), { stdio: 'ignore' });
    expect(check(LOOPBACK_ONLY, { listen: [...DEFAULT_LISTEN, '172.17.0.1:53'] }).findings).toEqual([
      { check: 'containers', level: 'ok', message: 'docker: containers are given 172.17.0.1, where dohd listens' },
    ]);
  });

  it('daemon.json moves docker0 ("bip"): the fix names that address', () => {
    installRuntimes('docker');
    writeFileSync(daemonJson, JSON.stringify({ bip: '192.168.99.1/24', 'log-driver': 'journald' }));
    const [f] = faults(check(LOOPBACK_ONLY));
    expect(f!.fix).toContain(`# in ${daemonJson}, add:  "dns": ["192.168.99.1"]`);
    expect(f!.fix![0]).toBe(`# in dohd's configuration, add "192.168.99.1:53" to "listen"`);
  });

  it('host resolv.conf has a non-loopback resolver: Docker copies it; not the 8.8.8.8 case', () => {
    installRuntimes('dockerd');
    const s = check('nameserver 192.168.1.1\n');
    expect(faults(s)).toEqual([]);
    expect(s.lines.join('\n')).toContain('containers get the host\'s non-loopback nameservers (192.168.1.1), not dohd');
  });

  it("behind systemd-resolved's stub, what resolved forwards to decides: dohd on loopback is the 8.8.8.8 case, a LAN server is not", () => {
    installRuntimes('dockerd');
    writeFileSync(join(dir, 'resolved-resolv.conf'), 'nameserver 127.0.0.1\n');
    expect(faults(check('nameserver 127.0.0.53\noptions edns0 trust-ad\n'))[0]!.message).toContain('lists only loopback resolvers (127.0.0.1)');
    writeFileSync(join(dir, 'resolved-resolv.conf'), 'nameserver 192.168.1.1\n');
    const s = check('nameserver 127.0.0.53\n');
    expect(faults(s)).toEqual([]);
    expect(s.lines.join('\n')).toContain("systemd-resolved's stub: runtimes copy");
  });

  it('"dns" names an address dohd listens on, inside the ACL: OK', () => {
    installRuntimes('dockerd');
    writeFileSync(daemonJson, '{ "dns": ["172.17.0.1"] }\n');
    const s = check(LOOPBACK_ONLY, { listen: ['127.0.0.1:53', '172.17.0.1:53'] });
    expect(s.findings).toEqual([{ check: 'containers', level: 'ok', message: 'docker: containers are given 172.17.0.1, where dohd listens' }]);
  });

  it('"dns" names an address dohd does not listen on: fault, with the listen entry to add', () => {
    installRuntimes('dockerd');
    writeFileSync(daemonJson, '{ "dns": ["172.17.0.1"] }\n');
    const [f, ...rest] = faults(check(LOOPBACK_ONLY));
    expect(rest).toEqual([]);
    expect(f!.message).toContain('"dns" in');
    expect(f!.message).toContain('is 172.17.0.1, but dohd does not listen on 172.17.0.1:53');
    expect(f!.fix).toEqual([`# in dohd's configuration, add "172.17.0.1:53" to "listen"`, 'sudo systemctl restart dohd']);
  });

  it('dohd listening on the wildcard (0.0.0.0:53) covers the bridge address', () => {
    expect(listensOn(['0.0.0.0:53'], '172.17.0.1')).toBe(true);
    expect(listensOn(['0.0.0.0:53'], 'fd00::1')).toBe(false);
    expect(listensOn(['172.17.0.1:5353'], '172.17.0.1')).toBe(false); // runtimes ask port 53 only
  });

  it('"dns" is a loopback address: fault (inside a container it is the container)', () => {
    installRuntimes('dockerd');
    writeFileSync(daemonJson, '{ "dns": ["127.0.0.1"] }\n');
    const [f] = faults(check(LOOPBACK_ONLY));
    expect(f!.message).toContain('127.0.0.1 is a loopback address: inside a container it is the container itself');
    expect(f!.fix).toContain(`# in ${daemonJson}, add:  "dns": ["172.17.0.1"]`);
  });

  it('dohd listens on the address but its ACL does not admit the network: containers get REFUSED', () => {
    installRuntimes('dockerd');
    writeFileSync(daemonJson, '{ "dns": ["198.51.100.1"] }\n');
    const [f] = faults(check(LOOPBACK_ONLY, { listen: ['198.51.100.1:53'] }));
    expect(f!.message).toContain('acl.allow does not admit that network: containers get REFUSED');
  });

  it('a daemon.json that is not JSON is named', () => {
    installRuntimes('dockerd');
    writeFileSync(daemonJson, '{ "dns": ["172.17.0.1"], }\n');
    const [f] = faults(check(LOOPBACK_ONLY));
    expect(f!.message).toContain(`${daemonJson}: not valid JSON`);
  });

  it('Podman: dns_servers in containers.conf is read (multi-line array); absent with a loopback-only host, the fix is printed', () => {
    installRuntimes('podman');
    expect(check(LOOPBACK_ONLY).findings[0]!.fix).toContain(`# in ${containersConf}, in the [containers] table:  dns_servers = ["10.88.0.1"]   (new containers get it)`);
    writeFileSync(containersConf, '[network]\ndns_servers = ["192.0.2.9"]\n[containers]\n# a comment\ndns_servers = [\n  "10.88.0.1",  # podman0\n]\n[engine]\n');
    expect(readPodmanConfig(containersConf).dns).toEqual(['10.88.0.1']);
    const s = check(LOOPBACK_ONLY, { listen: ['10.88.0.1:53'] });
    expect(s.findings).toEqual([{ check: 'containers', level: 'ok', message: 'podman: containers are given 10.88.0.1, where dohd listens' }]);
  });

  it('nerdctl: no global setting, so a warning with the per-container flag', () => {
    installRuntimes('nerdctl');
    const s = check(LOOPBACK_ONLY);
    expect(s.findings).toHaveLength(1);
    expect(s.findings[0]!.level).toBe('warn');
    expect(s.findings[0]!.fix).toContain('nerdctl run --dns 10.4.0.1 ...   # compose: dns: [10.4.0.1]');
  });
});

describe('dohd doctor (the CLI) runs the containers check with its flags', () => {
  it('--runtime-path, --docker-config and --config reach it; the fault sets exit 1', async () => {
    installRuntimes('dockerd');
    writeFileSync(daemonJson, '{ "dns": ["172.17.0.1"] }\n');
    writeFileSync(join(dir, 'resolv.conf'), LOOPBACK_ONLY);
    writeFileSync(join(dir, 'hosts'), '127.0.0.1 localhost\n');
    writeFileSync(join(dir, 'dohd.yaml'), 'listen: ["127.0.0.1:53"]\nupstreams: [{ url: "https://127.0.0.1:9/dns-query" }]\n');
    // Every other target is staged on loopback too: a closed port for the nameservers and the upstream.
    const args = [CLI, 'doctor', '--json', '--go', 'none', '--names', 'goproxy.example.net', '--timeout', '300', '--dns-port', '9', '--port', '9',
      '--resolv-conf', join(dir, 'resolv.conf'), '--hosts', join(dir, 'hosts'), '--config', join(dir, 'dohd.yaml'),
      '--runtime-path', bin, '--docker-config', daemonJson, '--podman-config', containersConf];
    const r = await promisify(execFile)(process.execPath, args, { timeout: 30_000 }).then(
      (x) => ({ code: 0, stdout: x.stdout }),
      (e: { code: number; stdout: string }) => ({ code: e.code, stdout: e.stdout }),
    );
    expect(r.code).toBe(1);
    const report = JSON.parse(r.stdout) as { sections: Section[] };
    const s = report.sections.find((x) => x.check === 'containers')!;
    expect(s.findings.map((f) => f.message)).toEqual([expect.stringContaining('is 172.17.0.1, but dohd does not listen on 172.17.0.1:53')]);
    expect(s.lines).toContain(`dohd listens on: 127.0.0.1:53 (from ${join(dir, 'dohd.yaml')})`);
  });
});
