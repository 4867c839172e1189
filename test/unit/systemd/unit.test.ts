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
import { has } from '../../fixtures/tools.js';

const UNIT = readFileSync(new URL('../../../systemd/dohd.service', import.meta.url), 'utf8');

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

describe('SystemCallFilter', () => {
  it('the unit refuses (EPERM) rather than kills on a syscall outside the set', () => {
    expect(parseUnit(UNIT).get('Service')!.get('SystemCallErrorNumber')).toEqual(['EPERM']);
  });
});

// The traced run of the built daemon and the pkey_alloc seccomp run: test/e2e/syscall-filter.test.ts.
