/**
 * systemd socket activation: dohd started the way systemd starts it, with bound UDP and
 * listening TCP sockets at fds 3, 4, ... and LISTEN_FDS / LISTEN_PID / LISTEN_FDNAMES set
 * (test/fixtures/sd-activate.py does what systemd does, then execs the real CLI).
 */
import { afterEach, describe, expect, it } from 'vitest';
import dgram from 'node:dgram';
import { closeSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { queryTcp, queryUdp } from '../fixtures/dns-client.js';
import { useDohUpstream } from '../fixtures/doh-pair.js';
import { spawnCli, type Spawned } from '../fixtures/spawn.js';
import { ActivationError, identifySocket, pairByAddress, parseProcAddress, takeListenFds } from '../../src/server/socket-activation.js';

const LAUNCHER = fileURLToPath(new URL('../fixtures/sd-activate.py', import.meta.url));

const up = useDohUpstream();
let child: Spawned | undefined;

afterEach(async () => {
  await child?.kill();
  child = undefined;
});

function activated(sockets: string[], args: string[], names?: string): Spawned {
  const cmd = ['python3', LAUNCHER, ...sockets, ...(names ? ['--names', names] : []), '--', process.execPath];
  return spawnCli(args, { cmd, env: { HOME: up.pki.dir } });
}

describe('systemd socket activation', () => {
  it('serves on the UDP and TCP sockets it was handed (IPv4 and IPv6), binds nothing itself, and logs which it took', async () => {
    // Port 0: the launcher takes the kernel's port for each UDP/TCP pair; dohd says which it got.
    child = activated(
      ['--udp', '127.0.0.1:0', '--tcp', '127.0.0.1:0', '--udp', '[::1]:0', '--tcp', '[::1]:0'],
      // The configured listen address is not used: systemd's sockets replace it.
      ['run', '--listen', '127.0.0.1:1', '--upstream', up.doh.url, '--ca', up.pki.caFile],
      'dns:dns:dns6:dns6',
    );
    const took = await child.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('socket activation'));
    const portOf = (i: number) => Number(String((took.sockets as { address: string }[])[i]!.address).split(':').pop());
    const [p4, p6] = [portOf(0), portOf(2)];
    expect(p4).toBeGreaterThan(0);
    expect(p6).toBeGreaterThan(0);
    expect(took.sockets).toEqual([
      { fd: 3, name: 'dns', proto: 'udp', address: `127.0.0.1:${p4}` },
      { fd: 4, name: 'dns', proto: 'tcp', address: `127.0.0.1:${p4}` },
      { fd: 5, name: 'dns6', proto: 'udp', address: `[::1]:${p6}` },
      { fd: 6, name: 'dns6', proto: 'tcp', address: `[::1]:${p6}` },
    ]);
    const listening = await child.waitForLog((l) => l.msg === 'dohd listening');
    expect(listening.listen).toEqual([`127.0.0.1:${p4}`, `[::1]:${p6}`]);
    const a = await queryUdp({ port: p4, name: 'example.com' });
    expect(a.response.answers?.map((x) => ('data' in x ? x.data : null))).toEqual(['192.0.2.1']);
    const b = await queryTcp({ port: p4, name: 'example.com', type: 'AAAA' });
    expect(b.response.answers?.map((x) => ('data' in x ? x.data : null))).toEqual(['2001:db8::1']);
    const c = await queryUdp({ host: '::1', port: p6, name: 'www.example.com' });
    expect(c.response.rcode).toBe('NOERROR');
    const e = await queryTcp({ host: '::1', port: p6, name: 'www.example.com' });
    expect(e.response.rcode).toBe('NOERROR');
    // Nothing listens on the configured address.
    const probe = dgram.createSocket('udp4');
    await new Promise<void>((r, j) => {
      probe.once('error', j);
      probe.bind(1, '127.0.0.1', () => r());
    });
    probe.close();
    const exit = await child.kill('SIGTERM');
    expect(exit.code).toBe(0);
  });

  it('a socket handed over without its TCP (or UDP) twin is refused in one line', async () => {
    child = activated(['--udp', '127.0.0.1:0'], ['run', '--upstream', up.doh.url, '--ca', up.pki.caFile]);
    const exit = await child.exited;
    expect(exit.code, child.stderr).toBe(1);
    expect(child.stderr.trim().split('\n'), child.stderr).toHaveLength(1);
    const p = Number(/socket activation: 127\.0\.0\.1:(\d+) came with UDP only/.exec(child.stderr)?.[1]);
    expect(p, child.stderr).toBeGreaterThan(0);
    expect(child.stderr).toContain(`ListenStream=127.0.0.1:${p}`);
  });

  it('an upstream pointing at a handed-over socket is a forwarding loop: refused, exit 2', async () => {
    // The upstream names the handed-over port before it is bound, so it cannot come from the
    // kernel: a fixed port below the ephemeral range, that no service uses (the launcher fails
    // loudly if it is taken).
    const p = 10053;
    child = activated(['--udp', `127.0.0.1:${p}`, '--tcp', `127.0.0.1:${p}`], ['run', '--upstream', `https://127.0.0.1:${p}/dns-query`, '--ca', up.pki.caFile]);
    const exit = await child.exited;
    expect(exit.code).toBe(2);
    expect(child.stderr).toContain(`upstreams[0].url: https://127.0.0.1:${p}/dns-query is dohd's own listening address 127.0.0.1:${p}`);
  });
});

describe('socket activation pieces', () => {
  it('LISTEN_* are read only when LISTEN_PID is ours, and removed either way', () => {
    const other = { LISTEN_PID: '1', LISTEN_FDS: '2', LISTEN_FDNAMES: 'a:b', KEEP: 'x' };
    expect(takeListenFds(other, 4242)).toBeNull();
    expect(other).toEqual({ KEEP: 'x' });
    const none = { LISTEN_PID: '4242', LISTEN_FDS: '0' };
    expect(takeListenFds(none, 4242)).toBeNull();
    expect(none).toEqual({});
    expect(() => takeListenFds({ LISTEN_PID: '4242', LISTEN_FDS: 'x' }, 4242)).toThrow(ActivationError);
  });

  it('an fd that is not an IP socket is named, not guessed', () => {
    const file = join(up.pki.dir, 'not-a-socket');
    writeFileSync(file, '');
    const fd = openSync(file, 'r');
    try {
      expect(identifySocket(fd)).toBe(`not a socket (${file})`);
    } finally {
      closeSync(fd);
    }
    expect(identifySocket(99_999)).toMatch(/^not an open file descriptor/);
  });

  it('kernel socket table addresses', () => {
    expect(parseProcAddress('0100007F:0035', 4)).toEqual({ host: '127.0.0.1', port: 53, family: 4 });
    expect(parseProcAddress('00000000000000000000000001000000:14E9', 6)).toEqual({ host: '::1', port: 5353, family: 6 });
    expect(parseProcAddress('B80D0120000000000000000007000000:0035', 6)).toEqual({ host: '2001:db8::7', port: 53, family: 6 });
    expect(parseProcAddress('zz', 4)).toBeNull();
  });

  it('pairs UDP and TCP per address; a duplicate is refused', () => {
    const a = { host: '127.0.0.1', port: 53, family: 4 as const };
    const pairs = pairByAddress([
      { fd: 3, name: 'x', proto: 'tcp', address: a },
      { fd: 4, name: 'x', proto: 'udp', address: a },
    ]);
    expect(pairs.map((p) => [p.udp.fd, p.tcp.fd])).toEqual([[4, 3]]);
    expect(() =>
      pairByAddress([
        { fd: 3, name: 'x', proto: 'udp', address: a },
        { fd: 4, name: 'x', proto: 'udp', address: a },
      ]),
    ).toThrow(/two UDP sockets for 127\.0\.0\.1:53/);
  });
});
