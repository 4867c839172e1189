/**
 * The unit's SystemCallFilter=@system-service against the built daemon (dist/): every syscall a
 * traced run makes is in the set (but pkey_alloc, refused with EPERM), and node and dohd run
 * normally with pkey_alloc refused. Moved from test/unit/systemd/unit.test.ts: they spawn dist/.
 */
import { describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { has } from '../fixtures/tools.js';

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
