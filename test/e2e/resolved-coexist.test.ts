/**
 * Living next to systemd-resolved: its stub listens on 127.0.0.53:53 and 127.0.0.54:53 (the
 * specific addresses, not 0.0.0.0), so dohd can own 127.0.0.1:53 beside it. Staged in a
 * private network namespace (root only): a stand-in stub holding 127.0.0.53 and 127.0.0.54
 * (a second dohd answering other addresses), dohd on 127.0.0.1, dig asking each.
 * This does not run systemd-resolved itself (no systemd here); it checks the addresses.
 */
import { describe, expect, it } from 'vitest';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CLI } from '../fixtures/spawn.js';
import { has } from '../fixtures/tools.js';

const exec = promisify(execFile);
const CAN = process.getuid?.() === 0 && has('unshare') && has('dig') && spawnSync('unshare', ['-n', 'true']).status === 0;

describe.skipIf(!CAN)('dohd beside a resolver stub on 127.0.0.53 and 127.0.0.54', () => {
  it('dohd binds 127.0.0.1:53 while the stub holds its addresses; each answers its own clients', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dohd-resolved-'));
    try {
      const common = 'upstreams: [{ url: "https://127.0.0.1:9/dns-query" }]\nadmin: false\nlog: { level: warn }\n';
      writeFileSync(join(dir, 'stub.yaml'), `listen: ["127.0.0.53:53", "127.0.0.54:53"]\npins: { goproxy.cn: [192.0.2.153] }\n${common}`);
      writeFileSync(join(dir, 'dohd.yaml'), `listen: ["127.0.0.1:53"]\npins: { goproxy.cn: [192.0.2.1] }\n${common}`);
      const script = [
        'set -e',
        'ip link set lo up',
        `${process.execPath} ${CLI} run --config ${dir}/stub.yaml & stub=$!; echo "stub=$stub"`,
        'for i in $(seq 1 50); do dig +short +time=1 +tries=1 @127.0.0.53 goproxy.cn >/dev/null 2>&1 && break; sleep 0.1; done',
        `${process.execPath} ${CLI} run --config ${dir}/dohd.yaml & dohd=$!`,
        'for i in $(seq 1 50); do dig +short +time=1 +tries=1 @127.0.0.1 goproxy.cn >/dev/null 2>&1 && break; sleep 0.1; done',
        'echo "dohd: $(dig +short +time=2 +tries=1 @127.0.0.1 goproxy.cn)"',
        'echo "dohd-tcp: $(dig +short +tcp +time=2 +tries=1 @127.0.0.1 goproxy.cn)"',
        'echo "stub53: $(dig +short +time=2 +tries=1 @127.0.0.53 goproxy.cn)"',
        'echo "stub54: $(dig +short +time=2 +tries=1 @127.0.0.54 goproxy.cn)"',
        'kill $dohd $stub; wait $dohd $stub || true',
      ].join('\n');
      const { stdout, stderr } = await exec('unshare', ['-n', 'sh', '-c', script], { timeout: 30_000 });
      expect(stderr).not.toMatch(/cannot listen/);
      expect(stdout).toContain('dohd: 192.0.2.1\n');
      expect(stdout).toContain('dohd-tcp: 192.0.2.1\n');
      expect(stdout).toContain('stub53: 192.0.2.153\n');
      expect(stdout).toContain('stub54: 192.0.2.153\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a stub on 0.0.0.0:53 (DNSStubListenerExtra, dnsmasq) is named as the address in use', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dohd-resolved-'));
    try {
      const common = 'upstreams: [{ url: "https://127.0.0.1:9/dns-query" }]\nadmin: false\nlog: { level: warn }\n';
      writeFileSync(join(dir, 'stub.yaml'), `listen: ["0.0.0.0:53"]\n${common}`);
      writeFileSync(join(dir, 'dohd.yaml'), `listen: ["127.0.0.1:53"]\n${common}`);
      const script = [
        'ip link set lo up',
        `${process.execPath} ${CLI} run --config ${dir}/stub.yaml & stub=$!; echo "stub=$stub"`,
        'for i in $(seq 1 50); do dig +time=1 +tries=1 @127.0.0.1 x.example.net >/dev/null 2>&1 && break; sleep 0.1; done',
        `${process.execPath} ${CLI} run --config ${dir}/dohd.yaml; echo "exit=$?"`,
        'echo "stubcomm=$(cat /proc/$stub/comm)"',
        'kill $stub; wait $stub',
      ].join('\n');
      const { stdout, stderr } = await exec('unshare', ['-n', 'sh', '-c', script], { timeout: 30_000 });
      expect(stdout).toContain('exit=1');
      const stub = /stub=(\d+)/.exec(stdout)![1];
      // The program in the way is named from /proc (the socket's inode in /proc/net/udp, then /proc/PID/fd).
      expect(stderr).toContain(
        `dohd: cannot listen on 127.0.0.1:53/udp: the address is already in use by ${/stubcomm=(.*)/.exec(stdout)![1]} (pid ${stub}). Stop it, or choose another address with --listen (see: ss -lunp 'sport = :53')`,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
