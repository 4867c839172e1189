import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import dgram from 'node:dgram';
import net from 'node:net';
import { queryUdp } from '../fixtures/dns-client.js';
import { startDohServer, startDohUpstream, stopDohUpstream, type DohServer } from '../fixtures/doh-server.js';
import type { Pki } from '../fixtures/pki.js';
import { listeningPort, runCli, spawnCli, type RunCliOptions } from '../fixtures/spawn.js';

let pki: Pki;
let doh: DohServer;

beforeAll(async () => {
  ({ pki, doh } = await startDohUpstream());
});
afterAll(() => stopDohUpstream({ pki, doh }));

const cli = (args: string[], opts: RunCliOptions = {}) => runCli(args, { timeoutMs: 10_000, ...opts });

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
    expect(bad.stderr).toContain('timeoutMs: found the text "fast"; expected a whole number from 50 to 60000 (the default: timeoutMs: 2500)');
    expect(bad.stderr).toContain('cache.colour: unknown key; known keys here: maxEntries, maxBytes,');
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

  it('errors that teach: each names the key or flag, what was found, what is expected, and the fix', async () => {
    const yaml = (name: string, text: string) => {
      const f = `${pki.dir}/${name}.yaml`;
      writeFileSync(f, text);
      return f;
    };
    const cases: [string[], string][] = [
      [['check-config', '-c', yaml('workers', 'workers: abc\n')], `${pki.dir}/workers.yaml: invalid configuration: workers: found the text "abc"; expected a whole number of processes from 1 to 256, or "auto" (one per CPU)`],
      [['run', '--workers', 'abc'], 'invalid configuration: workers: found the text "abc"; expected a whole number of processes from 1 to 256, or "auto" (one per CPU)'],
      [['check-config', '-c', yaml('typo', 'timeoutms: 900\ncache: { maxEntrie: 5 }\n')], `${pki.dir}/typo.yaml: invalid configuration: cache.maxEntrie: unknown key; did you mean "maxEntries"?; timeoutms: unknown key; did you mean "timeoutMs"?`],
      [['check-config', '-c', yaml('enum', 'strategy: rase\nlisten: 127.0.0.1:53\n')], `${pki.dir}/enum.yaml: invalid configuration: listen: found the text "127.0.0.1:53"; expected a list; write it as a list: listen: ["127.0.0.1:53"]; strategy: found the text "rase"; expected one of race, hedged, failover; did you mean "race"?`],
      [['check-config', '-c', yaml('broken', 'listen: [127.0.0.1:53\n')], `${pki.dir}/broken.yaml: not valid YAML at line 2, column 1: Flow sequence in block collection must be sufficiently indented and end with a ]\n  1 | listen: [127.0.0.1:53\n  2 | \n    | ^`],
      [['check-config', '-c', yaml('nested', 'timeoutMs: 900\nlog: level: warn\n')], `${pki.dir}/nested.yaml: not valid YAML at line 2, column 6: Nested mappings are not allowed in compact mappings\n  1 | timeoutMs: 900\n  2 | log: level: warn\n    |      ^`],
      [['check-config', '--upstream', 'https://1.1.1.1'], 'invalid configuration: upstreams[0].url: "https://1.1.1.1" has no path; DoH servers answer on a path, usually /dns-query: write "https://1.1.1.1/dns-query"'],
      [['check-config', '--config'], '--config: no file named; give --config FILE, or leave --config out to run on the built-in defaults'],
      [['check-config', '--config', ''], '--config: no file named; give --config FILE, or leave --config out to run on the built-in defaults'],
      [['check-config', '--listen'], '--listen: no value given; give --listen ADDR:PORT, or leave --listen out'],
      [['check-config', '--no-such-flag'], 'unknown option --no-such-flag (see dohd check-config --help)'],
      [['run', '--listn', '127.0.0.1:0'], 'unknown option --listn; did you mean --listen? (see dohd run --help)'],
      [['chek-config'], 'unexpected argument "chek-config"; did you mean the command "check-config"? (see dohd --help)'],
    ];
    for (const [args, message] of cases) {
      const r = await cli(args);
      expect({ args, stderr: r.stderr }).toEqual({ args, stderr: `dohd: ${message}\n` });
      expect(r.code).toBe(2);
    }
  });

  it('a TCP port conflict names the program and the TCP ss command', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const r = await cli(['run', '--listen', `127.0.0.1:${port}`, '--upstream', doh.url, '--ca', pki.caFile, '--admin', 'off']);
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(
        `dohd: cannot listen on 127.0.0.1:${port}/tcp: the address is already in use by ${readFileSync('/proc/self/comm', 'utf8').trim()} (pid ${process.pid}). Stop it, or choose another address with --listen (see: ss -ltnp 'sport = :${port}')\n`,
      );
    } finally {
      blocker.close();
    }
  });

  it('run: answers through the upstream given by flags, and SIGTERM exits 0 after logging', async () => {
    const d = spawnCli(['run', '--listen', '127.0.0.1:0', '--upstream', doh.url, '--ca', pki.caFile]);
    try {
      const port = await listeningPort(d);
      const r = await queryUdp({ port, name: 'example.com' });
      expect(r.response.answers[0]!.data).toBe('192.0.2.1');
      // Nothing per query at info level.
      expect(d.stdout.filter((l) => l.includes('example.com'))).toEqual([]);
    } finally {
      const exit = await d.kill('SIGTERM');
      expect(exit.code).toBe(0);
    }
    expect(d.stdout.some((l) => l.includes('"dohd stopped"'))).toBe(true);
  });

  it('SIGTERM with two raced upstreams, one still answering: nothing logged as a failure, and the stop is quick', async () => {
    const slow = await startDohServer({ pki, name: 'slow', delayMs: 2000 });
    const file = `${pki.dir}/raced.yaml`;
    writeFileSync(file, `listen: ["127.0.0.1:0"]\nadmin: false\nupstreams:\n  - { url: "${doh.url}", ca: "${pki.caFile}", name: fast }\n  - { url: "${slow.url}", ca: "${pki.caFile}", name: slow }\n`);
    const d = spawnCli(['run', '--config', file]);
    try {
      const port = await listeningPort(d);
      expect((await queryUdp({ port, name: 'example.com' })).response.rcode).toBe('NOERROR');
      const t0 = Date.now();
      const exit = await d.kill('SIGTERM'); // the slow upstream's request is still running (it lost the race)
      const ms = Date.now() - t0;
      expect(exit.code).toBe(0);
      expect(ms).toBeLessThan(1500); // typically ~10-20 ms; generous for a loaded machine
      expect(d.stdout.filter((l) => /upstream failed|destroyed/.test(l))).toEqual([]);
      expect(d.stdout.some((l) => l.includes('"dohd stopped"'))).toBe(true);
    } finally {
      await slow.close();
    }
  });

  it('an address already in use is named, without a stack trace', async () => {
    const blocker = dgram.createSocket('udp4');
    await new Promise<void>((r) => blocker.bind(0, '127.0.0.1', () => r()));
    const port = blocker.address().port;
    try {
      const r = await cli(['run', '--listen', `127.0.0.1:${port}`, '--upstream', doh.url, '--ca', pki.caFile]);
      expect(r.code).toBe(1);
      expect(r.stderr.trim()).toBe(
        `dohd: cannot listen on 127.0.0.1:${port}/udp: the address is already in use by ${readFileSync('/proc/self/comm', 'utf8').trim()} (pid ${process.pid}). Stop it, or choose another address with --listen (see: ss -lunp 'sport = :${port}')`,
      );
    } finally {
      blocker.close();
    }
  });

  const unprivStart = Number(readFileSync('/proc/sys/net/ipv4/ip_unprivileged_port_start', 'utf8'));
  const canDrop = process.getuid?.() === 0 && unprivStart > 53;
  it.skipIf(!canDrop)('port 53 without permission says how to fix it', async () => {
    const r = await cli(['run', '--listen', '127.0.0.1:53', '--upstream', doh.url], {
      cmd: ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--', process.execPath],
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
