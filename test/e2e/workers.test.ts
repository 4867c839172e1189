/**
 * `dohd run --workers 2` as a real process tree: both workers answer on the same UDP and
 * TCP sockets, share what they cache, a worker that dies is replaced, SIGTERM stops all.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import dgram from 'node:dgram';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { queryTcp, queryUdp, TcpDnsClient } from '../fixtures/dns-client.js';
import { startDohServer, type DohServer } from '../fixtures/doh-server.js';
import { makePki, type Pki } from '../fixtures/pki.js';
import { until } from '../fixtures/resources.js';
import { useTempDir } from '../fixtures/temp-dir.js';
import { Zone } from '../fixtures/zone.js';
import { CLI, spawnCli, type Spawned } from '../fixtures/spawn.js';
import { adminGet, parseProm } from '../fixtures/prom.js';
import type { StatusReport } from '../../src/server/status.js';

const run = promisify(execFile);
const tmp = useTempDir('dohd-workers-');
let pki: Pki;
let doh: DohServer;

/** Names the tests ask: each with an A and an AAAA record. */
const NAMES = [
  ...Array.from({ length: 6 }, (_, i) => [`udp${i}.example.com`, `tcp${i}.example.com`, `after${i}.example.com`]).flat(),
  ...['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'].map((l) => `${l}.shared.example.net`),
  'dig.example.com',
  'during.example.com',
];

beforeAll(async () => {
  pki = await makePki();
  const zone = new Zone(NAMES.flatMap((name) => [
    { name, type: 'A', ttl: 300, data: '192.0.2.1' },
    { name, type: 'AAAA', ttl: 300, data: '2001:db8::1' },
  ]));
  doh = await startDohServer({ pki, zone });
});
afterAll(async () => {
  await doh.close();
  await pki.cleanup();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function logs(d: Spawned, msg: string): Record<string, unknown>[] {
  return d.stdout.flatMap((l) => {
    try {
      const j = JSON.parse(l) as Record<string, unknown>;
      return j.msg === msg ? [j] : [];
    } catch {
      return [];
    }
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function startWorkers(extra: string[] = []) {
  const d = spawnCli(['run', '--listen', '127.0.0.1:0', '--upstream', doh.url, '--ca', pki.caFile, '--workers', '2', ...extra]);
  const ready = await d.waitForLog((l) => l.msg === 'dohd workers ready', 15_000);
  const first = (ready.listen as string[])[0]!;
  return { d, port: Number(first.slice(first.lastIndexOf(':') + 1)), ready };
}

/**
 * Each `<letter>.shared.example.net` is asked once, then again of the other worker, which must
 * answer it from the entry the first one shared: the upstream is asked once per name. The primary
 * deals TCP connections out round robin, so consecutive connections land on alternate workers.
 */
async function expectShared(port: number, letters: string[]): Promise<void> {
  doh.reset();
  const names = letters.map((l) => `${l}.shared.example.net`);
  const clients: TcpDnsClient[] = [];
  for (let i = 0; i <= names.length; i++) clients.push(await TcpDnsClient.connect('127.0.0.1', port));
  try {
    for (let i = 0; i < names.length; i++) {
      const first = await clients[i]!.query({ name: names[i]! });
      expect(first.response.rcode).toBe('NOERROR');
      expect(asked(names[i]!)).toBe(1);
      await sleep(300); // the entry travels worker → primary → worker
      const again = await clients[i + 1]!.query({ name: names[i]! });
      expect(again.response.answers[0]!.data).toBe('192.0.2.1');
      expect(asked(names[i]!), `${names[i]} asked upstream again`).toBe(1);
    }
  } finally {
    for (const c of clients) c.close();
  }
}

const asked = (name: string) => doh.queries.filter((q) => q.questions?.[0]?.name.toLowerCase() === name).length;

describe('dohd run --workers 2', () => {
  it('two workers answer on one address over UDP and TCP; SIGTERM stops them all', async () => {
    const { d, port, ready } = await startWorkers();
    let pids: number[] = [];
    try {
      expect(ready.workers).toBe(2);
      const workers = logs(d, 'dohd listening');
      expect(workers.map((w) => w.worker).sort()).toEqual([1, 2]);
      pids = workers.map((w) => w.pid as number);
      expect(new Set([...pids, d.child.pid]).size).toBe(3);
      // Every worker listens on the same port.
      expect(new Set(workers.map((w) => (w.listen as string[])[0])).size).toBe(1);
      for (let i = 0; i < 6; i++) {
        const u = await queryUdp({ port, name: `udp${i}.example.com` });
        expect(u.response.rcode).toBe('NOERROR');
        expect(u.response.answers[0]!.data).toBe('192.0.2.1');
        const t = await queryTcp({ port, name: `tcp${i}.example.com`, type: 'AAAA' });
        expect(t.response.rcode).toBe('NOERROR');
        expect(t.response.answers[0]!.type).toBe('AAAA');
      }
      // dig, a real client, over both transports.
      for (const tcp of [[], ['+tcp']]) {
        const r = await run('dig', ['+short', '+tries=1', '+time=3', ...tcp, '-p', String(port), '@127.0.0.1', 'dig.example.com', 'A']);
        expect(r.stdout.trim()).toBe('192.0.2.1');
      }
    } finally {
      const exit = await d.kill('SIGTERM');
      expect(exit.code).toBe(0);
    }
    expect(logs(d, 'dohd stopped')).toHaveLength(3);
    for (const pid of pids) expect(alive(pid)).toBe(false);
  });

  it('an answer one worker caches is a hit in the other', async () => {
    const { d, port } = await startWorkers();
    try {
      await expectShared(port, ['a', 'b', 'c', 'd']);
    } finally {
      await d.kill('SIGTERM');
    }
  });

  it('the new cache a reload starts is shared too', async () => {
    const file = join(tmp.path, 'reload-cache.yaml');
    writeFileSync(file, 'cache:\n  maxEntries: 1000\n');
    const { d, port } = await startWorkers(['--config', file]);
    try {
      writeFileSync(file, 'cache:\n  maxEntries: 2000\n');
      d.child.kill('SIGHUP');
      await until(() => logs(d, 'configuration reloaded').filter((l) => (l.applied as string[]).includes('cache')).length === 2, 10_000);
      await expectShared(port, ['e', 'f', 'g', 'h']);
    } finally {
      await d.kill('SIGTERM');
    }
  });

  it('a worker that dies is replaced, and the others answer meanwhile', async () => {
    const { d, port, ready } = await startWorkers(['--admin', '127.0.0.1:0']);
    const admin = ready.admin as string;
    const adminPort = Number(admin.slice(admin.lastIndexOf(':') + 1));
    try {
      const victim = logs(d, 'dohd listening')[0]!;
      process.kill(victim.pid as number, 'SIGKILL');
      await d.waitForLog((l) => l.msg === 'dohd worker died; restarting it' && l.pid === victim.pid, 10_000);
      // Answers keep coming from the other worker while the replacement starts.
      const r = await queryUdp({ port, name: 'during.example.com', timeoutMs: 3000 });
      expect(r.response.rcode).toBe('NOERROR');
      // Meanwhile (the replacement waits out a 500 ms backoff) /readyz says not ready, a scrape
      // gets the running worker's metrics and /status its report.
      const [readyz, metrics, status] = await Promise.all(['/readyz', '/metrics', '/status'].map((path) => adminGet(adminPort, path)));
      expect(readyz!.status).toBe(503);
      expect(readyz!.body).toMatch(/1 of 2 workers not running \(restarting\)/);
      expect(metrics!.status).toBe(200);
      expect(parseProm(metrics!.body).value('dohd_queries_total')).toBeGreaterThanOrEqual(1);
      expect(status!.status).toBe(200);
      expect((JSON.parse(status!.body) as StatusReport).workers).toBe(1);
      await until(() => logs(d, 'dohd listening').length === 3, 15_000, 'a replacement worker listening');
      await until(async () => (await adminGet(adminPort, '/readyz')).status === 200, 10_000, 'ready again');
      const replacement = logs(d, 'dohd listening')[2]!;
      expect(replacement.pid).not.toBe(victim.pid);
      expect(alive(replacement.pid as number)).toBe(true);
      for (let i = 0; i < 4; i++) expect((await queryTcp({ port, name: `after${i}.example.com` })).response.rcode).toBe('NOERROR');
    } finally {
      const exit = await d.kill('SIGTERM');
      expect(exit.code).toBe(0);
    }
  });

  it('an address in use stops start-up with one line, and no worker is left running', async () => {
    const blocker = dgram.createSocket('udp4');
    await new Promise<void>((r) => blocker.bind(0, '127.0.0.1', () => r()));
    const port = blocker.address().port;
    try {
      const d = spawnCli(['run', '--listen', `127.0.0.1:${port}`, '--upstream', doh.url, '--ca', pki.caFile, '--workers', '2']);
      const exit = await d.exited;
      expect(exit.code).toBe(1);
      expect(d.stderr.trim()).toBe(
        `dohd: cannot listen on 127.0.0.1:${port}/udp: the address is already in use by ${readFileSync('/proc/self/comm', 'utf8').trim()} (pid ${process.pid}). Stop it, or choose another address with --listen (see: ss -lunp 'sport = :${port}')`,
      );
      expect(logs(d, 'dohd listening')).toEqual([]);
    } finally {
      blocker.close();
    }
  });

  it('the primary owns the admin listener: /metrics counts every query of every worker, /readyz and /status cover them all', async () => {
    const { d, port, ready } = await startWorkers(['--admin', '127.0.0.1:0']);
    try {
      const admin = ready.admin as string;
      const adminPort = Number(admin.slice(admin.lastIndexOf(':') + 1));
      // TCP connections are dealt round robin by the primary: both workers answer some.
      for (let i = 0; i < 20; i++) await queryUdp({ port, name: `count${i}.example.com` });
      for (let i = 20; i < 40; i++) await queryTcp({ port, name: `count${i}.example.com` });
      const s = parseProm((await adminGet(adminPort, '/metrics')).body);
      expect(s.value('dohd_queries_total')).toBe(40);
      expect(s.value('dohd_queries_total', { transport: 'tcp' })).toBe(20);
      expect(s.value('dohd_upstream_wins_total')).toBe(40);
      const readyz = await adminGet(adminPort, '/readyz');
      expect(readyz.status).toBe(200);
      expect(readyz.body).toMatch(/^ready: 2 workers ready; /);
      const st = JSON.parse((await run(process.execPath, [CLI, 'status', '--admin', admin, '--json'])).stdout) as StatusReport;
      expect(st.workers).toBe(2);
      expect(st.upstreams[0]!.sinceStart.answers).toBe(40);
      expect(st.cache.misses).toBe(40);
      // No worker opens the admin listener, so none finds "another program" on it.
      expect(d.stdout.filter((l) => /another program|admin listener/.test(l))).toEqual([]);
      expect(logs(d, 'dohd listening').map((l) => l.admin)).toEqual([null, null]);
    } finally {
      const exit = await d.kill('SIGTERM');
      expect(exit.code).toBe(0);
    }
  });

  it('a bad worker count is a configuration error naming the key', async () => {
    for (const bad of ['0', 'many']) {
      const r = await run(process.execPath, [CLI, 'run', '--listen', '127.0.0.1:0', '--upstream', doh.url, '--ca', pki.caFile, '--workers', bad]).catch((e: { code: number; stderr: string }) => e);
      expect((r as { code: number }).code).toBe(2);
      expect((r as { stderr: string }).stderr).toMatch(/^dohd: invalid configuration: workers: /);
    }
  });
});
