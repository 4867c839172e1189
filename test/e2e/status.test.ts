/**
 * `dohd status` against a running dohd (a real child process): upstream states, paths, round
 * trips and errors, cache, pins and listeners, from the admin listener's /status; exit 1 when
 * nothing is healthy or dohd cannot be reached.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { queryUdp } from '../fixtures/dns-client.js';
import { useDohServers } from '../fixtures/doh-pair.js';
import type { DohServer } from '../fixtures/doh-server.js';
import { listeningPort, runCli, spawnCli, type Spawned } from '../fixtures/spawn.js';
import { useTempDir } from '../fixtures/temp-dir.js';
import type { StatusReport } from '../../src/server/status.js';

const ups = useDohServers([{ name: 'good' }, { name: 'bad', mode: 'http500' }]);
const tmp = useTempDir('dohd-status-');
let good: DohServer;
let bad: DohServer;

beforeAll(() => {
  [good, bad] = ups.servers;
});

const status = (args: string[]) => runCli(['status', ...args]);

async function start(extra: string[] = []): Promise<{ d: Spawned; port: number; admin: string }> {
  const config = join(tmp.path, 'dohd.yaml');
  writeFileSync(
    config,
    [
      'listen: ["127.0.0.1:0"]',
      'admin: { listen: "127.0.0.1:0" }',
      'loopProbe: false',
      'upstreams:',
      `  - { url: "${good.url}", ca: "${ups.pki.caFile}", name: good }`,
      `  - { url: "${bad.url}", ca: "${ups.pki.caFile}", name: bad }`,
      'health: { failures: 2, backoffMs: 60000 }',
      'pins: { pinned.example.net: [192.0.2.7] }',
      '',
    ].join('\n'),
  );
  const d = spawnCli(['run', '--config', config, ...extra]);
  const port = await listeningPort(d);
  const line = await d.waitForLog((l) => l.msg === 'dohd listening' || l.msg === 'dohd workers ready');
  const admin = (line.admin as string | undefined) ?? '';
  return { d, port, admin };
}

describe('dohd status', () => {
  it('shows each upstream (in/out, next probe, path, round trips, errors), the cache, pins and listeners; --json; exit 0', async () => {
    const { d, port, admin } = await start();
    try {
      for (let i = 0; i < 6; i++) await queryUdp({ port, name: `n${i}.example.com` });
      await queryUdp({ port, name: 'n0.example.com' }); // a cache hit
      const json = await status(['--admin', admin, '--json']);
      expect(json.code).toBe(0);
      const r = JSON.parse(json.stdout) as StatusReport;
      expect(r.listeners).toEqual([`127.0.0.1:${port}`]);
      const g = r.upstreams.find((u) => u.name === 'good')!;
      const b = r.upstreams.find((u) => u.name === 'bad')!;
      expect(g).toMatchObject({ group: 'default', kind: 'doh', state: 'in', path: `${good.url} via 127.0.0.1` });
      expect(g.lastMinute.answers).toBe(6);
      expect(g.sinceStart.answers).toBe(6);
      expect(b.state).toBe('out'); // two HTTP 500s in a row take it out (health.failures: 2)
      expect(b.nextProbeInMs).toBeGreaterThan(50_000);
      expect(b.lastMinute.errors).toEqual({ http_status: 2 }); // then it is out, and no longer asked
      expect(b.sinceStart.errors).toEqual({ http_status: 2 });
      expect(r.cache).toMatchObject({ entries: 6, hits: 1, misses: 6, staleServed: 0 });
      expect(r.pins).toEqual([{ name: 'pinned.example.net', verify: false, addresses: [{ address: '192.0.2.7', state: 'unchecked' }] }]);

      const table = await status(['--admin', admin]);
      expect(table.code).toBe(0);
      const lines = table.stdout.split('\n');
      expect(lines[0]).toMatch(/^dohd \d+\.\d+\.\d+, pid \d+, up \d+s: ready \(/);
      expect(lines).toContain(`listeners: 127.0.0.1:${port} udp+tcp`);
      expect(lines.find((l) => l.startsWith('good '))).toMatch(/^good\s+default\s+in\s+6\s+[\d.]+ ms\s+[\d.]+ ms\s+-\s+6\s+[\d.]+ ms\s+[\d.]+ ms\s+-$/);
      expect(lines.find((l) => l.startsWith('bad '))).toMatch(/^bad\s+default\s+out, probe in (\d+m)?\d+s\s+0\s+-\s+-\s+http_status 2\s+0\s+-\s+-\s+http_status 2$/);
      expect(lines.find((l) => /^good\s+DoH/.test(l))).toMatch(new RegExp(`^good\\s+DoH ${good.url.replace(/[.]/g, "\\.")} via 127\\.0\\.0\\.1$`));
      expect(table.stdout).toMatch(/cache: 6 entries, [\d.]+ KiB; hit ratio 14\.3% \(1 hits, 6 misses\); 0 stale served/);
      expect(table.stdout).toContain('  pinned.example.net: 192.0.2.7 (not verified)');
    } finally {
      await d.kill('SIGTERM');
    }
  });

  it('exits 1 and says so when nothing is healthy', async () => {
    good.mode = 'http500';
    const { d, port, admin } = await start();
    try {
      for (let i = 0; i < 3; i++) await queryUdp({ port, name: `x${i}.example.com` });
      const deadline = Date.now() + 10_000;
      let last: StatusReport;
      do last = JSON.parse((await status(['--admin', admin, '--json'])).stdout) as StatusReport;
      while (!last.upstreams.every((u) => u.state === 'out') && Date.now() < deadline);
      expect(last.upstreams.map((u) => u.state)).toEqual(['out', 'out']);
      const r = await status(['--admin', admin]);
      expect(r.code).toBe(1);
      expect(r.stdout).toContain('NOTHING HEALTHY: no upstream is answering');
    } finally {
      good.mode = 'ok';
      await d.kill('SIGTERM');
    }
  });

  it('cannot reach dohd: exit 1 with where it looked and how to point it elsewhere', async () => {
    const r = await status(['--admin', '127.0.0.1:9']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      "dohd: cannot reach dohd's admin listener at 127.0.0.1:9 (ECONNREFUSED). Is dohd running? Its admin listener is admin.listen in its configuration (--admin ADDR:PORT here, or --config FILE)\n",
    );
  });
});
