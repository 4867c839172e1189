/**
 * systemd/dohd.service: checked by systemd itself (`systemd-analyze verify`, which exits 0 on
 * unknown keys and bad values, so any output counts as a failure), and read for the hardening
 * the README promises.
 */
import { describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { has } from '../fixtures/tools.js';

const UNIT = readFileSync(new URL('../../systemd/dohd.service', import.meta.url), 'utf8');

/** Section → key → values (a key may repeat). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const out = new Map<string, Map<string, string[]>>();
  let section: Map<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    const s = /^\[(.+)\]$/.exec(line);
    if (s) {
      section = new Map();
      out.set(s[1]!, section);
      continue;
    }
    const i = line.indexOf('=');
    if (!section || i < 0) throw new Error(`not a unit line: ${line}`);
    const key = line.slice(0, i);
    section.set(key, [...(section.get(key) ?? []), line.slice(i + 1)]);
  }
  return out;
}


/** Runs systemd-analyze verify on a copy of `text`; returns everything it printed. */
function verify(text: string): { status: number | null; output: string } {
  const dir = mkdtempSync(join(tmpdir(), 'dohd-unit-'));
  try {
    const node = execFileSync('sh', ['-c', 'command -v node']).toString().trim();
    writeFileSync(join(dir, 'dohd.service'), existsSync('/usr/bin/node') ? text : text.replaceAll('/usr/bin/node', node));
    const r = spawnSync('systemd-analyze', ['verify', 'dohd.service'], { cwd: dir, encoding: 'utf8' });
    return { status: r.status, output: `${r.stdout}${r.stderr}`.trim() };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('systemd/dohd.service', () => {
  const unit = parseUnit(UNIT);
  const svc = unit.get('Service')!;
  const one = (k: string) => {
    const v = svc.get(k);
    expect(v, k).toHaveLength(1);
    return v![0]!;
  };

  it.skipIf(!has('systemd-analyze'))('passes systemd-analyze verify without a single complaint', () => {
    expect(verify(UNIT)).toEqual({ status: 0, output: '' });
  });

  it.skipIf(!has('systemd-analyze'))('the same check catches a broken unit', () => {
    const broken = verify(UNIT.replace('ProtectSystem=strict', 'ProtectSystem=strictest\nProtectEverything=yes'));
    expect(broken.output).toMatch(/Failed to parse protect system value/);
    expect(broken.output).toMatch(/Unknown key 'ProtectEverything'/);
  });

  it('runs unprivileged with only CAP_NET_BIND_SERVICE', () => {
    expect(one('DynamicUser')).toBe('yes');
    expect(one('AmbientCapabilities')).toBe('CAP_NET_BIND_SERVICE');
    expect(one('CapabilityBoundingSet')).toBe('CAP_NET_BIND_SERVICE');
    expect(one('NoNewPrivileges')).toBe('yes');
    expect(svc.has('User')).toBe(false);
  });

  it('is sandboxed the way distributions ship DNS daemons, without breaking V8', () => {
    expect(one('ProtectSystem')).toBe('strict');
    expect(one('ProtectHome')).toBe('yes');
    expect(one('PrivateTmp')).toBe('yes');
    expect(one('SystemCallFilter')).toBe('@system-service');
    expect(one('RestrictAddressFamilies').split(' ').sort()).toEqual(['AF_INET', 'AF_INET6', 'AF_UNIX']);
    expect(one('StateDirectory')).toBe('dohd');
    expect(one('Restart')).toBe('on-failure');
    // V8 writes and then executes its JIT code: this option would abort node at start.
    expect(svc.has('MemoryDenyWriteExecute')).toBe(false);
  });

  it('reports readiness, reloads on SIGHUP, and runs the configured daemon', () => {
    expect(one('Type')).toBe('notify');
    expect(one('NotifyAccess')).toBe('all'); // the READY=1 datagram comes from systemd-notify, a child
    expect(one('ExecReload')).toBe('/bin/kill -HUP $MAINPID');
    expect(one('ExecStart')).toMatch(/^\/usr\/bin\/node \/opt\/dohd\/dist\/cli\.js run --config \/etc\/dohd\/dohd\.yaml$/);
    expect(unit.get('Install')!.get('WantedBy')).toEqual(['multi-user.target']);
    expect(unit.get('Unit')!.get('Before')).toEqual(['nss-lookup.target']);
  });
});

/** Every syscall of a systemd filter set, groups expanded (systemd-analyze syscall-filter). */
function filterSet(group: string, seen = new Set<string>()): Set<string> {
  const out = new Set<string>();
  if (seen.has(group)) return out;
  seen.add(group);
  const text = execFileSync('systemd-analyze', ['syscall-filter', group], { encoding: 'utf8' });
  for (const raw of text.split('\n').slice(1)) {
    const s = raw.trim();
    if (!s || s.startsWith('#')) continue;
    if (s.startsWith('@')) for (const x of filterSet(s, seen)) out.add(x);
    else out.add(s);
  }
  return out;
}

const CAN_TRACE = has('strace') && has('systemd-analyze') && spawnSync('strace', ['-f', '-o', '/dev/null', 'true']).status === 0;

describe.skipIf(!CAN_TRACE)('SystemCallFilter=@system-service fits the daemon', () => {
  it('dohd serving, scraped, reloaded and stopped makes no syscall outside the set but pkey_alloc (EPERM, harmless)', async () => {
    const { spawnCli, listeningPort } = await import('../fixtures/spawn.js');
    const { queryUdp, queryTcp } = await import('../fixtures/dns-client.js');
    const dir = mkdtempSync(join(tmpdir(), 'dohd-strace-'));
    const cfg = join(dir, 'dohd.yaml');
    writeFileSync(cfg, 'listen: ["127.0.0.1:0"]\nadmin: { listen: "127.0.0.1:0" }\nupstreams: [{ url: "https://127.0.0.1:9/dns-query" }]\npins: { goproxy.cn: [192.0.2.1] }\ntimeoutMs: 300\n');
    const trace = join(dir, 'trace');
    const d = spawnCli(['run', '--config', cfg], { cmd: ['strace', '-f', '-c', '-o', trace, process.execPath] });
    try {
      const line = await d.waitForLog((l) => l.msg === 'dohd listening', 15_000);
      const port = await listeningPort(d);
      const admin = Number(String(line.admin).split(':').pop());
      await queryUdp({ port, name: 'goproxy.cn' });
      await queryTcp({ port, name: 'goproxy.cn', type: 'AAAA' });
      await queryUdp({ port, name: 'example.com', timeoutMs: 2000 }); // the upstream is down: SERVFAIL path
      await fetch(`http://127.0.0.1:${admin}/metrics`).then((r) => r.text());
      await fetch(`http://127.0.0.1:${admin}/readyz`).then((r) => r.text());
      process.kill(line.pid as number, 'SIGHUP');
      await d.waitForLog((l) => String(l.msg).startsWith('configuration reloaded'));
      process.kill(line.pid as number, 'SIGTERM');
      expect((await d.exited).code).toBe(0);
      const used = readFileSync(trace, 'utf8')
        .split('\n')
        .map((l) => l.trim().split(/\s+/))
        .filter((f) => f.length >= 5 && /^\d/.test(f[0]!))
        .map((f) => f[f.length - 1]!)
        .filter((n) => n !== 'total');
      expect(used.length).toBeGreaterThan(20);
      const allowed = filterSet('@system-service');
      const outside = used.filter((s) => !allowed.has(s));
      // V8 asks for memory protection keys; refused (SystemCallErrorNumber=EPERM) it carries on without.
      expect(outside.filter((s) => s !== 'pkey_alloc')).toEqual([]);
    } finally {
      await d.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the unit refuses (EPERM) rather than kills on a syscall outside the set', () => {
    expect(parseUnit(UNIT).get('Service')!.get('SystemCallErrorNumber')).toEqual(['EPERM']);
  });
});

/** A seccomp filter that answers pkey_alloc with EPERM, as the unit's filter does (C, built here). */
const DENY_PKEY_C = `#include <stddef.h>
#include <stdio.h>
#include <errno.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
int main(int argc, char **argv) {
  struct sock_filter f[] = {
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_pkey_alloc, 0, 1),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog p = { .len = 4, .filter = f };
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &p)) { perror("seccomp"); return 99; }
  execvp(argv[1], argv + 1);
  perror("exec");
  return 98;
}
`;

describe.skipIf(!has('cc'))('pkey_alloc refused with EPERM', () => {
  it('node and dohd run normally (V8 goes on without memory protection keys)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dohd-seccomp-'));
    try {
      writeFileSync(join(dir, 'deny.c'), DENY_PKEY_C);
      execFileSync('cc', ['-o', join(dir, 'deny'), join(dir, 'deny.c')]);
      const cli = new URL('../../dist/cli.js', import.meta.url).pathname;
      const r = spawnSync(join(dir, 'deny'), [process.execPath, cli, 'check-config', '--listen', '127.0.0.1:53'], { encoding: 'utf8' });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      expect(r.stdout).toMatch(/^configuration OK: listen 127\.0\.0\.1:53/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
