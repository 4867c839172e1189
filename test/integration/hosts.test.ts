/**
 * The hosts file: names in it are answered locally (A, AAAA, PTR), others go upstream, and
 * the file is reloaded when it is written in place or replaced by rename (as editors do).
 */
import { describe, expect, it } from 'vitest';
import { mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { queryUdp } from '../fixtures/dns-client.js';
import type { RunningDaemon } from '../fixtures/daemon.js';
import { useDohUpstream } from '../fixtures/doh-pair.js';
import { until } from '../fixtures/resources.js';
import { useTempDir } from '../fixtures/temp-dir.js';

const up = useDohUpstream();
const tmp = useTempDir('dohd-hosts-');
/** The daemon of the test (answers() asks it); stopped after the test by useDohUpstream. */
let d: RunningDaemon | undefined;

async function answers(name: string, type = 'A'): Promise<string[]> {
  const r = await queryUdp({ port: d!.port, name, type });
  return r.response.answers.map((x) => String(x.data));
}

async function waitForAnswer(name: string, want: string[], ms = 6000): Promise<void> {
  let got: string[] = [];
  await until(async () => (got = await answers(name)).join() === want.join(), ms, name, () => `still ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
}

describe('hosts file', () => {
  it('answers names from the file (A, AAAA, PTR, aliases, case), and everything else upstream', async () => {
    const file = join(tmp.path, 'hosts1');
    writeFileSync(file, '# comment\n127.0.0.1 localhost\n10.0.0.5  build.lan build  # the build box\nfd00::5 build.lan\n\nnot-an-ip foo\n');
    d = await up.start({ upstreams: [up.upstream], hosts: { file, ttl: 42 } });
    const r = await queryUdp({ port: d.port, name: 'Build.LAN' });
    expect(r.response.answers.map((x) => [x.type, x.data, x.ttl])).toEqual([['A', '10.0.0.5', 42]]);
    expect((r.response.flags ?? 0) & 0x0400).toBe(0x0400); // authoritative: it is our own data
    expect(await answers('build')).toEqual(['10.0.0.5']);
    expect(await answers('build.lan', 'AAAA')).toEqual(['fd00::5']);
    expect(await answers('5.0.0.10.in-addr.arpa', 'PTR')).toEqual(['build.lan', 'build']);
    const mx = await queryUdp({ port: d.port, name: 'build.lan', type: 'MX' });
    expect(mx.response.rcode).toBe('NOERROR');
    expect(mx.response.answers).toEqual([]);
    expect(await answers('foo')).toEqual([]); // the malformed line is skipped: foo went upstream (NXDOMAIN)
    expect(up.doh.requests).toBe(1);
    expect(await answers('example.com')).toEqual(['192.0.2.1']);
    expect(up.doh.requests).toBe(2);
  });

  it('reloads when the file is written in place, and when an editor renames a new file over it', async () => {
    const file = join(tmp.path, 'hosts2');
    writeFileSync(file, '10.0.0.1 box.lan\n');
    d = await up.start({ upstreams: [up.upstream], hosts: { file, pollMs: 60_000 } });
    expect(await answers('box.lan')).toEqual(['10.0.0.1']);
    writeFileSync(file, '10.0.0.2 box.lan\n10.0.0.9 new.lan\n');
    await waitForAnswer('box.lan', ['10.0.0.2']);
    expect(await answers('new.lan')).toEqual(['10.0.0.9']);
    const swap = join(tmp.path, '.hosts2.swp');
    writeFileSync(swap, '10.0.0.3 box.lan\n');
    renameSync(swap, file);
    await waitForAnswer('box.lan', ['10.0.0.3']);
    expect(up.doh.requests).toBe(0);
    // A name removed from the file goes upstream again.
    expect(await answers('new.lan')).toEqual([]);
    expect(up.doh.requests).toBe(1);
    expect(d.logs.filter((l) => l.msg === 'hosts file loaded').length).toBeGreaterThanOrEqual(3);
  });

  it('follows a Kubernetes ConfigMap update (a ..data symlink swapped by rename)', async () => {
    const cm = join(tmp.path, 'configmap');
    mkdirSync(join(cm, '..v1'), { recursive: true });
    writeFileSync(join(cm, '..v1', 'hosts'), '10.0.0.1 cm.lan\n');
    symlinkSync('..v1', join(cm, '..data'));
    symlinkSync('..data/hosts', join(cm, 'hosts'));
    d = await up.start({ upstreams: [up.upstream], hosts: { file: join(cm, 'hosts'), pollMs: 60_000 } });
    expect(await answers('cm.lan')).toEqual(['10.0.0.1']);
    mkdirSync(join(cm, '..v2'));
    writeFileSync(join(cm, '..v2', 'hosts'), '10.0.0.2 cm.lan\n');
    symlinkSync('..v2', join(cm, '..data_tmp'));
    renameSync(join(cm, '..data_tmp'), join(cm, '..data'));
    await waitForAnswer('cm.lan', ['10.0.0.2']);
  });

  it('polling catches changes a watch would miss', async () => {
    const sub = join(tmp.path, 'polled');
    const file = join(sub, 'hosts');
    mkdirSync(sub);
    writeFileSync(file, '10.0.0.1 p.lan\n');
    d = await up.start({ upstreams: [up.upstream], hosts: { file, pollMs: 100 } });
    d.daemon.hostsFile!['watcher']?.close(); // no watch: only the poll is left
    writeFileSync(file, '10.0.0.7 p.lan\n');
    await waitForAnswer('p.lan', ['10.0.0.7']);
  });

  it('a missing hosts file is a configuration error naming the key', async () => {
    await expect(up.start({ upstreams: [up.upstream], hosts: { file: join(tmp.path, 'nope') } })).rejects.toThrow(
      /hosts\.file: cannot read .*nope: ENOENT/,
    );
  });

  it('a file that disappears later empties the table (logged); it comes back when the file does', async () => {
    const file = join(tmp.path, 'hosts3');
    writeFileSync(file, '10.0.0.1 gone.lan\n');
    d = await up.start({ upstreams: [up.upstream], hosts: { file, pollMs: 100 } });
    expect(await answers('gone.lan')).toEqual(['10.0.0.1']);
    rmSync(file);
    await waitForAnswer('gone.lan', []);
    expect(d.logs.some((l) => l.msg === 'hosts file unreadable; answering without it')).toBe(true);
    writeFileSync(file, '10.0.0.4 gone.lan\n');
    await waitForAnswer('gone.lan', ['10.0.0.4']);
  });
});
