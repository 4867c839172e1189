/**
 * The daemon's life as an operator sees it, on the built CLI in a child process:
 * SIGHUP reloads (a good file applies, a bad one is refused and the old one keeps running),
 * SIGTERM drains (queries in flight are all answered, exit 0), and readiness reaches
 * systemd through $NOTIFY_SOCKET (a unix datagram socket this test listens on with python3).
 */
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { queryTcp, queryUdp, TcpDnsClient } from '../fixtures/dns-client.js';
import { useDohPair } from '../fixtures/doh-pair.js';
import type { DohServer } from '../fixtures/doh-server.js';
import { adminGet, parseProm } from '../fixtures/prom.js';
import { listeningPort, spawnCli, type Spawned } from '../fixtures/spawn.js';
import { has } from '../fixtures/tools.js';
import { useTempDir } from '../fixtures/temp-dir.js';

// useDohPair's afterEach (servers reset) runs after this file's (dohd killed): hooks run as a stack.
const pair = useDohPair(['a', 'b']);
const tmp = useTempDir('dohd-life-');
let a: DohServer;
let b: DohServer;
let dohd: Spawned | undefined;

beforeAll(() => {
  [a, b] = pair.servers;
});
afterEach(async () => {
  await dohd?.kill('SIGKILL');
  dohd = undefined;
});


function yaml(o: Record<string, unknown>): string {
  return JSON.stringify(o, null, 2); // JSON is YAML
}

// No loop probe: these tests count the requests each upstream gets.
function writeConfig(file: string, o: Record<string, unknown>): void {
  writeFileSync(file, yaml({ listen: ['127.0.0.1:0'], admin: { listen: '127.0.0.1:0' }, loopProbe: false, ...o }));
}

async function adminPortOf(s: Spawned): Promise<number> {
  const line = await s.waitForLog((l) => l.msg === 'dohd listening');
  return Number(String(line.admin).split(':').pop());
}


describe('SIGHUP reloads the configuration', () => {
  it('a good file: upstreams, pins, timeout and log level change live; listen needs a restart and says so', async () => {
    const file = join(tmp.path, 'good.yaml');
    writeConfig(file, { upstreams: pair.upstreams(a) });
    dohd = spawnCli(['run', '--config', file]);
    const port = await listeningPort(dohd);
    const admin = await adminPortOf(dohd);
    expect((await queryUdp({ port, name: 'example.com' })).response.answers[0]!.data).toBe('192.0.2.1');
    expect(a.requests).toBe(1);

    writeConfig(file, {
      listen: ['127.0.0.1:1'],
      upstreams: pair.upstreams(b),
      pins: { 'pinned.example.net': ['192.0.2.99'] },
      timeoutMs: 1500,
      log: { level: 'debug' },
    });
    dohd.child.kill('SIGHUP');
    const done = await dohd.waitForLog((l) => l.msg === 'configuration reloaded');
    expect(done.applied).toEqual(['log', 'pins', 'timeoutMs', 'upstreams']);
    const warn = await dohd.waitForLog((l) => /needs a restart/.test(String(l.msg)));
    expect(warn).toMatchObject({ level: 'warn', keys: ['listen'] });
    expect(String(warn.msg)).toContain('listen');

    // Still on the old address; the new upstream and pin answer.
    const www = await queryUdp({ port, name: 'www.example.com' });
    expect(www.response.answers[0]!.data).toBe('192.0.2.3');
    expect(b.requests).toBe(1);
    expect(a.requests).toBe(1);
    expect((await queryTcp({ port, name: 'pinned.example.net' })).response.answers[0]!.data).toBe('192.0.2.99');
    const s = parseProm((await adminGet(admin, '/metrics')).body);
    expect(s.value('dohd_config_reloads_total', { result: 'ok' })).toBe(1);
    expect(s.value('dohd_upstream_wins_total', { upstream: 'b' })).toBe(1);
  });

  it('a bad file is refused with the reason, and the running configuration stays', async () => {
    const file = join(tmp.path, 'bad.yaml');
    writeConfig(file, { upstreams: pair.upstreams(a), pins: { 'pinned.example.net': ['192.0.2.98'] } });
    dohd = spawnCli(['run', '--config', file]);
    const port = await listeningPort(dohd);
    const admin = await adminPortOf(dohd);

    writeFileSync(file, yaml({ listen: ['127.0.0.1:0'], upstreams: pair.upstreams(b), timeoutMs: 'soon', cache: { colour: 'blue' } }));
    dohd.child.kill('SIGHUP');
    const err = await dohd.waitForLog((l) => l.msg === 'configuration reload failed: the running configuration stays');
    expect(err.level).toBe('error');
    expect(String(err.error)).toContain('timeoutMs: found the text "soon"; expected a whole number from 50 to 60000 (the default: timeoutMs: 2500)');
    expect(String(err.error)).toContain('cache.colour: unknown key; known keys here: maxEntries, maxBytes,');

    writeFileSync(file, 'listen: [127.0.0.1:0\n');
    dohd.child.kill('SIGHUP');
    await vi.waitFor(() => expect(dohd!.stdout.filter((l) => l.includes('not valid YAML'))).toHaveLength(1));

    // The old upstream and pin still answer; the process is alive.
    expect((await queryUdp({ port, name: 'example.com' })).response.answers[0]!.data).toBe('192.0.2.1');
    expect((await queryUdp({ port, name: 'pinned.example.net' })).response.answers[0]!.data).toBe('192.0.2.98');
    expect(a.requests).toBe(1);
    expect(b.requests).toBe(0);
    const s = parseProm((await adminGet(admin, '/metrics')).body);
    expect(s.value('dohd_config_reloads_total', { result: 'invalid' })).toBe(2);
    expect(dohd.child.exitCode).toBeNull();
  });

  it('without --config, SIGHUP says there is nothing to reload', async () => {
    dohd = spawnCli(['run', '--listen', '127.0.0.1:0', '--admin', 'off', '--upstream', a.url, '--ca', pair.pki.caFile]);
    await listeningPort(dohd);
    dohd.child.kill('SIGHUP');
    const w = await dohd.waitForLog((l) => /no configuration file to reload/.test(String(l.msg)));
    expect(w.level).toBe('warn');
  });
});

describe('admin listener from the command line', () => {
  it('--admin on a taken port stops start-up with one line that names the admin settings', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const taken = (blocker.address() as AddressInfo).port;
    try {
      dohd = spawnCli(['run', '--listen', '127.0.0.1:0', '--admin', `127.0.0.1:${taken}`, '--upstream', a.url, '--ca', pair.pki.caFile]);
      const exit = await dohd.exited;
      expect(exit.code).toBe(1);
      expect(dohd.stderr.trim()).toBe(
        `dohd: admin listener: cannot listen on 127.0.0.1:${taken}/tcp: the address is already in use by ${readFileSync('/proc/self/comm', 'utf8').trim()} (pid ${process.pid}). Choose another with admin.listen (or --admin ADDR:PORT), or turn it off with admin: false (--admin off) (see: ss -ltnp 'sport = :${taken}')`,
      );
    } finally {
      blocker.close();
    }
  });

  it('--admin serves /healthz and /metrics of the spawned daemon', async () => {
    dohd = spawnCli(['run', '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--upstream', a.url, '--ca', pair.pki.caFile]);
    const port = await listeningPort(dohd);
    const admin = await adminPortOf(dohd);
    await queryUdp({ port, name: 'example.com' });
    expect((await adminGet(admin, '/healthz')).body).toBe('ok\n');
    expect(parseProm((await adminGet(admin, '/metrics')).body).value('dohd_queries_total', { transport: 'udp' })).toBe(1);
  });
});

describe('SIGTERM drains', () => {
  it('queries in flight over UDP and TCP are all answered, new ones are not taken, exit 0', async () => {
    a.delayMs = 800;
    dohd = spawnCli(['run', '--listen', '127.0.0.1:0', '--admin', 'off', '--upstream', a.url, '--ca', pair.pki.caFile]);
    const port = await listeningPort(dohd);
    const names = ['example.com', 'www.example.com', 'cname.example.net', 'goproxy.cn', 'short.example.net'];
    const tcp = await TcpDnsClient.connect('127.0.0.1', port);
    const pending = [
      ...names.map((name) => queryUdp({ port, name, timeoutMs: 5000 })),
      ...names.map((name) => queryUdp({ port, name, type: 'AAAA', timeoutMs: 5000 })),
      ...names.map((name) => tcp.query({ name, type: 'TXT', timeoutMs: 5000 })),
    ];
    // (The start-up loop probe is one more request: count only the clients' queries.)
    const clientQueries = () => a.queries.filter((q) => !String(q.questions?.[0]?.name).includes('dohd-loop-probe')).length;
    await vi.waitFor(() => expect(clientQueries()).toBe(15), { timeout: 5000 });
    dohd.child.kill('SIGTERM');
    await dohd.waitForLog((l) => String(l.msg).startsWith('dohd stopping'));
    // Taken no more: a new UDP query gets nothing, a new TCP connection is refused.
    await expect(queryUdp({ port, name: 'late.example.net', timeoutMs: 300 })).rejects.toThrow(/timed out/);
    await expect(TcpDnsClient.connect('127.0.0.1', port, 1000)).rejects.toThrow(/ECONNREFUSED/);
    const results = await Promise.all(pending);
    expect(results.map((r) => r.response.rcode)).toEqual(Array(15).fill('NOERROR'));
    expect(results[0]!.response.answers[0]!.data).toBe('192.0.2.1');
    const exit = await dohd.exited;
    expect(exit).toEqual({ code: 0, signal: null });
    const stopped = dohd.stdout.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'dohd stopped');
    expect(stopped).toBeDefined();
    expect(stopped!.unfinished).toBeUndefined();
    await tcp.closed;
  });
});

const HAVE_NOTIFY = has('systemd-notify') && has('python3');

/** A unix datagram socket like systemd's $NOTIFY_SOCKET, printing each message as a JSON line. */
function notifyReceiver(path: string) {
  const py = spawn('python3', [
    '-c',
    [
      'import socket, sys, json',
      's = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)',
      's.bind(sys.argv[1])',
      'print(json.dumps("bound"), flush=True)',
      'while True:',
      '    print(json.dumps(s.recv(4096).decode()), flush=True)',
    ].join('\n'),
    path,
  ]);
  const messages: string[] = [];
  let buf = '';
  py.stdout.on('data', (d: Buffer) => {
    buf += d.toString();
    const lines = buf.split('\n');
    buf = lines.pop()!;
    for (const l of lines) messages.push(JSON.parse(l) as string);
  });
  return { py, messages, stop: () => py.kill('SIGKILL') };
}

describe.skipIf(!HAVE_NOTIFY)('systemd readiness (Type=notify)', () => {
  it('sends READY=1 through $NOTIFY_SOCKET once the listeners are up', async () => {
    const sock = join(tmp.path, 'notify.sock');
    const rx = notifyReceiver(sock);
    try {
      await vi.waitFor(() => expect(rx.messages).toContain('bound'));
      dohd = spawnCli(['run', '--listen', '127.0.0.1:0', '--admin', 'off', '--upstream', a.url, '--ca', pair.pki.caFile], { env: { NOTIFY_SOCKET: sock } });
      const port = await listeningPort(dohd);
      await vi.waitFor(() => expect(rx.messages.some((m) => m.includes('READY=1'))).toBe(true), { timeout: 10_000 });
      const ready = rx.messages.find((m) => m.includes('READY=1'))!;
      expect(ready.split('\n')).toEqual(['READY=1', `STATUS=answering DNS on 127.0.0.1:${port}`]);
      // The listener named in READY answers.
      expect((await queryUdp({ port, name: 'example.com' })).response.rcode).toBe('NOERROR');
      expect(dohd.stdout.some((l) => l.includes('could not notify'))).toBe(false);
    } finally {
      rx.stop();
    }
  });

  it('a NOTIFY_SOCKET nobody listens on is logged, and dohd keeps serving', async () => {
    dohd = spawnCli(['run', '--listen', '127.0.0.1:0', '--admin', 'off', '--upstream', a.url, '--ca', pair.pki.caFile], {
      env: { NOTIFY_SOCKET: join(tmp.path, 'nobody.sock') },
    });
    const port = await listeningPort(dohd);
    const err = await dohd.waitForLog((l) => String(l.msg).startsWith('could not notify systemd'));
    expect(err.level).toBe('error');
    expect((await queryUdp({ port, name: 'example.com' })).response.rcode).toBe('NOERROR');
  });
});
