import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import dgram from 'node:dgram';
import { promisify } from 'node:util';
import { queryUdp } from '../fixtures/dns-client.js';
import { startDohUpstream, stopDohUpstream, type DohServer } from '../fixtures/doh-server.js';
import type { Pki } from '../fixtures/pki.js';
import { CLI, listeningPort, spawnCli } from '../fixtures/spawn.js';

const run = promisify(execFile);
let pki: Pki;
let doh: DohServer;

beforeAll(async () => {
  ({ pki, doh } = await startDohUpstream());
});
afterAll(() => stopDohUpstream({ pki, doh }));

async function cli(args: string[], opts: { cmd?: string[] } = {}) {
  const argv = [...(opts.cmd ?? []), process.execPath, CLI, ...args];
  try {
    const r = await run(argv[0]!, argv.slice(1), { timeout: 10_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

describe('dohd command line', () => {
  it('dohd check-config --preset cn shows each provider with its other paths (contacts nothing)', async () => {
    const out = (await cli(['check-config', '--preset', 'cn'])).stdout;
    expect(out).toContain('upstreams https://dns.alidns.com/dns-query (+https://223.5.5.5/dns-query, tls://dns.alidns.com), https://doh.pub/dns-query (+https://1.12.12.12/dns-query, tls://dot.pub)');
  });

  it('check-config accepts the documented example and names the key that is wrong', async () => {
    const ok = await cli(['check-config', '--config', 'dohd.example.yaml']);
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/configuration OK/);
    const file = `${pki.dir}/bad.yaml`;
    writeFileSync(file, 'listen: ["127.0.0.1:53"]\ntimeoutMs: fast\ncache: { maxEntries: 10, colour: blue }\nupstreams:\n  - url: ftp://x/\n');
    const bad = await cli(['check-config', '--config', file]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('timeoutMs: expected number, got string "fast"');
    expect(bad.stderr).toContain('cache: unknown key "colour"');
    expect(bad.stderr).toContain('upstreams[0].url');
    expect(bad.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  it('an unreadable or non-PEM CA file is a configuration error naming the key', async () => {
    const r = await cli(['check-config', '--upstream', doh.url, '--ca', `${pki.dir}/missing.pem`]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/upstreams\[0\]\.ca: cannot read .*missing\.pem: ENOENT/);
    const notPem = `${pki.dir}/not.pem`;
    writeFileSync(notPem, 'hello');
    const r2 = await cli(['check-config', '--upstream', doh.url, '--ca', notPem]);
    expect(r2.stderr).toMatch(/upstreams\[0\]\.ca: .*not\.pem holds no PEM certificate/);
  });

  it('a YAML syntax error and a missing file are one clear line each', async () => {
    const file = `${pki.dir}/broken.yaml`;
    writeFileSync(file, 'listen: [127.0.0.1:53\n');
    const bad = await cli(['check-config', '-c', file]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/not valid YAML/);
    const missing = await cli(['check-config', '-c', `${pki.dir}/nope.yaml`]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/cannot read config file .*nope\.yaml: ENOENT/);
  });

  it('run: answers through the upstream given by flags, and SIGTERM exits 0 after logging', async () => {
    const d = spawnCli(['run', '--listen', '127.0.0.1:0', '--upstream', doh.url, '--ca', pki.caFile]);
    try {
      const port = await listeningPort(d);
      const r = await queryUdp({ port, name: 'example.test' });
      expect(r.response.answers[0]!.data).toBe('192.0.2.1');
      // Nothing per query at info level.
      expect(d.stdout.filter((l) => l.includes('example.test'))).toEqual([]);
    } finally {
      const exit = await d.kill('SIGTERM');
      expect(exit.code).toBe(0);
    }
    expect(d.stdout.some((l) => l.includes('"dohd stopped"'))).toBe(true);
  });

  it('an address already in use is named, without a stack trace', async () => {
    const blocker = dgram.createSocket('udp4');
    await new Promise<void>((r) => blocker.bind(0, '127.0.0.1', () => r()));
    const port = blocker.address().port;
    try {
      const r = await cli(['run', '--listen', `127.0.0.1:${port}`, '--upstream', doh.url, '--ca', pki.caFile]);
      expect(r.code).toBe(1);
      expect(r.stderr.trim()).toBe(
        `dohd: cannot listen on 127.0.0.1:${port}/udp: the address is already in use by another program. Stop it, or choose another address with --listen`,
      );
    } finally {
      blocker.close();
    }
  });

  const unprivStart = Number(readFileSync('/proc/sys/net/ipv4/ip_unprivileged_port_start', 'utf8'));
  const canDrop = process.getuid?.() === 0 && unprivStart > 53;
  it.skipIf(!canDrop)('port 53 without permission says how to fix it', async () => {
    const r = await cli(['run', '--listen', '127.0.0.1:53', '--upstream', doh.url], {
      cmd: ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--'],
    });
    expect(r.code).toBe(1);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^dohd: cannot listen on 127\.0\.0\.1:53\/udp: permission denied/);
    expect(lines[0]).toContain('setcap cap_net_bind_service');
    expect(lines[0]).toContain('--listen 127.0.0.1:5353');
    expect(lines[0]).toContain('root');
  });
});
