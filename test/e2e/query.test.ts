/**
 * `dohd query` as a user runs it: against a running dohd (which upstream answered, cache, pins,
 * truncation to TCP), straight against a DoH server, and against nothing at all.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import dgram from 'node:dgram';
import { promisify } from 'node:util';
import dnsPacket from 'dns-packet';
import { startDaemon, type RunningDaemon } from '../fixtures/daemon.js';
import { useDohServers } from '../fixtures/doh-pair.js';
import type { DohServer } from '../fixtures/doh-server.js';
import { startPlainDnsServer, type PlainDnsServer } from '../fixtures/plain-dns-server.js';
import { runCli } from '../fixtures/spawn.js';
import { appendEdnsOption, EXPLAIN_OPTION } from '../../src/dns/explain.js';
import { explainAnswer } from '../../src/server/explain.js';
import { decodeQuery } from '../../src/dns/message.js';
import { buildClientQuery } from '../../src/dns/client.js';

const run = promisify(execFile);
const ups = useDohServers([{ name: 'good' }, { name: 'broken', mode: 'http500' }]);
let doh: DohServer;
let broken: DohServer;
let plain: PlainDnsServer;
let d: RunningDaemon;

beforeAll(async () => {
  [doh, broken] = ups.servers;
  plain = await startPlainDnsServer();
  d = await startDaemon({ upstreams: [{ url: doh.url, ca: ups.pki.caFile, name: 'good' }], pins: { 'pinned.example.net': ['192.0.2.77'] } });
});
afterAll(async () => {
  await d.stop();
  await plain.close();
});

const query = (...args: string[]) => runCli(['query', ...args]);

const server = () => `127.0.0.1:${d.port}`;

describe('dohd query against a running dohd', () => {
  it('prints a dig-style answer with the upstream that won, then the cache on the second ask', async () => {
    const first = await query('www.example.com', '--server', server());
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    const out = first.stdout;
    expect(out).toMatch(/^;; ->>HEADER<<- opcode: QUERY, status: NOERROR, id: \d+$/m);
    expect(out).toMatch(/^;; flags: qr rd ra; QUERY: 1, ANSWER: 1, AUTHORITY: 0, ADDITIONAL: 1$/m);
    expect(out).toContain(';; QUESTION SECTION:\n;www.example.com.\t\t\tIN\tA\n');
    expect(out).toContain(';; ANSWER SECTION:\nwww.example.com.\t\t300\tIN\tA\t192.0.2.3\n');
    expect(out).toMatch(/^;; Query time: \d+ msec$/m);
    expect(out).toContain(`;; SERVER: ${server()} (UDP)`);
    expect(out).toMatch(/^;; ANSWERED BY: upstream good, \d+\.\d ms inside dohd$/m);
    const second = await query('www.example.com', 'A', '--server', server());
    expect(second.stdout).toMatch(/^;; ANSWERED BY: dohd's cache, \d+\.\d ms inside dohd$/m);
    expect(second.stdout).toMatch(/^www\.example\.com\.\t\t(300|299)\tIN\tA\t192\.0\.2\.3$/m);
  });

  it('names pins, shows NXDOMAIN with its SOA, and AAAA/TXT/MX records', async () => {
    const pin = await query('pinned.example.net', '--server', server(), '--tcp');
    expect(pin.stdout).toContain('pinned.example.net.\t\t60\tIN\tA\t192.0.2.77');
    expect(pin.stdout).toMatch(/;; ANSWERED BY: a pin in dohd's configuration/);
    expect(pin.stdout).toContain(`;; SERVER: ${server()} (TCP)`);
    const nx = await query('nothing-here.example.net', '--server', server());
    expect(nx.code).toBe(0);
    expect(nx.stdout).toMatch(/status: NXDOMAIN/);
    expect(nx.stdout).toContain(';; AUTHORITY SECTION:\nnet.\t\t60\tIN\tSOA\tns.net. hostmaster.net. 1 3600 600 86400 60');
    const aaaa = await query('example.com', 'aaaa', '--server', server());
    expect(aaaa.stdout).toContain('example.com.\t\t300\tIN\tAAAA\t2001:db8::1');
  });

  it('retries over TCP when the UDP answer is truncated, and says so', async () => {
    const r = await query('big.example.net', 'TXT', '--server', server());
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`;; SERVER: ${server()} (TCP, after a truncated UDP answer)`);
    expect(r.stdout).toMatch(/ANSWER: 40,/);
    expect(r.stdout).toMatch(/^big\.example\.net\.\t\t300\tIN\tTXT\t"txt-00-abcdef/m);
  });

  it('--short prints only the data, like dig +short', async () => {
    const r = await query('cname.example.net', '--server', server(), '--short');
    expect(r.stdout).toBe('example.com.\n192.0.2.1\n');
    const { stdout } = await run('dig', ['@127.0.0.1', '-p', String(d.port), '+short', '+time=3', '+tries=1', 'cname.example.net', 'A']);
    expect(r.stdout).toBe(stdout);
  });

  it('a server that is not dohd answers, but does not say who answered', async () => {
    const r = await query('example.com', '--server', `127.0.0.1:${plain.port}`);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('example.com.\t\t300\tIN\tA\t192.0.2.1');
    expect(r.stdout).toMatch(/;; ANSWERED BY: not reported/);
  });

  it('nothing listening, or a silent server: exit 1 with what to check', async () => {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
    const silent = s.address().port;
    const closedPort = await new Promise<number>((resolve) => {
      const t = dgram.createSocket('udp4');
      t.bind(0, '127.0.0.1', () => {
        const p = t.address().port;
        t.close(() => resolve(p));
      });
    });
    try {
      const refused = await query('example.com', '--server', `127.0.0.1:${closedPort}`);
      expect(refused.code).toBe(1);
      expect(refused.stderr.trim()).toBe(
        `dohd: no answer: 127.0.0.1:${closedPort}/udp: connection refused (nothing listens there). Is dohd running there? (systemctl status dohd; journalctl -u dohd)`,
      );
      const timeout = await query('example.com', '--server', `127.0.0.1:${silent}`, '--timeout', '300');
      expect(timeout.code).toBe(1);
      expect(timeout.stderr).toMatch(/no answer: 127\.0\.0\.1:\d+\/udp: no answer within 300 ms/);
    } finally {
      s.close();
    }
  });

  it('refuses bad arguments with exit 2', async () => {
    expect((await query('example.com', 'BOGUS', '--server', server())).stderr).toMatch(/"BOGUS" is not a DNS record type/);
    const bad = await query('example.com', '--server', 'localhost:53');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--server: "localhost:53" is not an IP address/);
  });
});

describe('dohd query --doh', () => {
  it('asks a DoH server directly, through the bootstrap address with the URL host as TLS name', async () => {
    const url = doh.urlFor('doh.test');
    const r = await query('example.com', '--doh', url, '--bootstrap', '127.0.0.1', '--ca', ups.pki.caFile);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('example.com.\t\t300\tIN\tA\t192.0.2.1');
    expect(r.stdout).toContain(`;; SERVER: ${url} via 127.0.0.1 (DNS-over-HTTPS, HTTP/2)`);
    expect(r.stdout).toMatch(new RegExp(`;; ANSWERED BY: doh\\.test:${doh.port}, \\d+\\.\\d ms`));
    expect(doh.lastRequest!.servername).toBe('doh.test');
    expect(doh.lastRequest!.headers[':method']).toBe('POST');
  });

  it('says why a DoH server gave no answer, and what a --doh URL lacks', async () => {
    const r = await query('example.com', '--doh', broken.url, '--ca', ups.pki.caFile);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe(`dohd: no answer from ${broken.url} (via 127.0.0.1): http_status: HTTP 500`);
    const noTrust = await query('example.com', '--doh', doh.url);
    expect(noTrust.code).toBe(1);
    expect(noTrust.stderr).toMatch(/intercepted: .*issued by "dohd test CA"/);
    const nb = await query('example.com', '--doh', 'https://doh.example:443/dns-query');
    expect(nb.code).toBe(2);
    expect(nb.stderr).toMatch(/"doh\.example" needs --bootstrap IP/);
    const http = await query('example.com', '--doh', 'http://127.0.0.1/dns-query');
    expect(http.stderr).toMatch(/must be an https:\/\/ URL/);
  });
});

describe('the explain option', () => {
  const ctxFor = (address: string, explain: boolean) => {
    const decoded = decodeQuery(buildClientQuery('example.com', 'A', { explain }).wire);
    if (!decoded.ok) throw new Error('query');
    return { query: decoded.query, transport: 'udp' as const, client: { address, port: 5353 }, signal: new AbortController().signal, received: 0 };
  };
  const reply = () => {
    const wire = dnsPacket.encode({
      type: 'response',
      id: 1,
      flags: 0x8180,
      questions: [{ name: 'example.com', type: 'A', class: 'IN' }],
      answers: [{ name: 'example.com', type: 'A', ttl: 60, data: '192.0.2.1' }],
      additionals: [{ name: '.', type: 'OPT', udpPayloadSize: 1232, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }],
    });
    return wire;
  };
  const result = { wire: Buffer.alloc(0), source: 'upstream' as const, rcode: 0, upstream: 'good' };

  it('is added only for loopback clients that asked for it', () => {
    const asked = explainAnswer(ctxFor('127.0.0.1', true), result, reply(), 12.34);
    const opt = (dnsPacket.decode(asked).additionals as { type: string; options: { code: number; data: Buffer }[] }[]).find((a) => a.type === 'OPT')!;
    expect(opt.options.find((o) => o.code === EXPLAIN_OPTION)!.data.toString()).toBe('source=upstream upstream=good ms=12.3');
    expect(explainAnswer(ctxFor('::ffff:127.0.0.1', true), result, reply(), 1).length).toBeGreaterThan(reply().length);
    expect(explainAnswer(ctxFor('192.0.2.50', true), result, reply(), 1)).toEqual(reply());
    expect(explainAnswer(ctxFor('127.0.0.1', false), result, reply(), 1)).toEqual(reply());
  });

  it('is not added when it would not fit the UDP limit, or when the OPT record is not last', () => {
    const r = reply();
    expect(appendEdnsOption(r, EXPLAIN_OPTION, Buffer.from('x'), r.length + 4)).toEqual(r);
    expect(appendEdnsOption(r, EXPLAIN_OPTION, Buffer.from('x'), r.length + 5).length).toBe(r.length + 5);
    const noOpt = dnsPacket.encode({ type: 'response', id: 1, questions: [{ name: 'a.example.net', type: 'A' }] });
    expect(appendEdnsOption(noOpt, EXPLAIN_OPTION, Buffer.from('x'))).toEqual(noOpt);
  });
});
