/**
 * The clients people point at dohd, against a running dohd (UDP and TCP): Go (both
 * resolvers, built here), glibc (getent), musl (a static getaddrinfo program built with
 * musl-gcc, as in Alpine), dig and kdig. Each property of a well-behaved local stub is
 * checked with the clients that depend on it; upstream traffic is counted at the DoH fixture.
 *
 * Clients that read /etc/resolv.conf get a private one (a bind mount in `unshare -m`) naming
 * dohd on 127.0.0.153:53 — port 53, because glibc, Go and musl cannot be given another — in
 * the test's own network namespace (the suite runs in `unshare -n`; 127.0.0.153 keeps clear of
 * other tests' 127.0.0.1:53). Root only: skipped, with a note, elsewhere.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import dnsPacket from 'dns-packet';
import { startDaemon, type RunningDaemon } from '../fixtures/daemon.js';
import { startDohUpstream, stopDohUpstream, type DohServer } from '../fixtures/doh-server.js';
import type { Pki } from '../fixtures/pki.js';
import { defaultZone, type Zone } from '../fixtures/zone.js';
import { canUnshare, has } from '../fixtures/tools.js';

const NS = '127.0.0.153';
const TOOLS = ['go', 'musl-gcc', 'getent', 'dig', 'kdig'];
const missing = TOOLS.filter((t) => !has(t));
// Binding 127.0.0.153:53 needs root and must happen in a private network namespace: the
// suite runs in `unshare -n` (see the README); outside one, stay off the host's loopback.
// (No default route, IPv4 or IPv6: nothing here can leave the machine.)
const noRouteOut = ['-4', '-6'].every((v) => {
  const r = spawnSync('ip', [v, 'route', 'show', 'default'], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() === '';
});
const inPrivateNetns = noRouteOut;
const CAN = canUnshare() && missing.length === 0 && inPrivateNetns;
if (!CAN) console.warn(`clients-conformance skipped: needs root, unshare, ${TOOLS.join(', ')} and a network namespace with no default route (missing: ${missing.join(', ') || 'none'}; private netns: ${inPrivateNetns})`);

const CLIENTS = fileURLToPath(new URL('../fixtures/clients/', import.meta.url));
/** Upstream deadline of the dohd under test (ms). */
const TIMEOUT_MS = 700;
/** 100 A records: 1,6xx bytes, over every UDP size a client advertises. */
const MANY = Array.from({ length: 100 }, (_, i) => `198.51.100.${i + 1}`);

let pki: Pki;
let doh: DohServer;
let d: RunningDaemon;
let dir: string;
let goBin: string;
let muslBin: string;

interface Run {
  stdout: string;
  stderr: string;
  code: number;
  ms: number;
}

/** Runs a command asynchronously (dohd answers in this process), with `resolv` as /etc/resolv.conf. */
function run(cmd: string[], opts: { resolv?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Run> {
  const args = opts.resolv
    ? ['-m', '--propagation', 'private', 'sh', '-c', 'mount --bind "$0" /etc/resolv.conf && exec "$@"', opts.resolv, ...cmd]
    : cmd.slice(1);
  const bin = opts.resolv ? 'unshare' : cmd[0]!;
  const t0 = performance.now();
  return new Promise((resolve) => {
    execFile(bin, args, { env: { ...process.env, ...opts.env }, timeout: opts.timeoutMs ?? 30_000, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : -1) : 0;
      resolve({ stdout, stderr, code, ms: performance.now() - t0 });
    });
  });
}

function resolvConf(name: string, lines: string[]): string {
  const file = join(dir, name);
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

/** One line of the Go or musl program: NAME ok|err DETAIL MS. */
function parse(line: string | undefined): { ok: boolean; detail: string; ms: number } {
  const m = /^\S+ (ok|err) (.*) (\d+)$/.exec(line ?? '');
  if (!m) throw new Error(`unexpected client output: ${JSON.stringify(line)}`);
  return { ok: m[1] === 'ok', detail: m[2]!, ms: Number(m[3]) };
}

const go = (mode: 'go' | 'cgo', resolv: string, ...names: string[]) => run([goBin, ...names], { resolv, env: { GODEBUG: `netdns=${mode}` } });
const musl = (resolv: string, ...names: string[]) => run([muslBin, ...names], { resolv });
const dig = (...args: string[]) => run(['dig', `@${NS}`, '+time=3', '+tries=1', ...args]);
const kdig = (...args: string[]) => run(['kdig', `@${NS}`, '+time=3', '+retry=0', '+noadflag', ...args]);

/** Sets AD on answers to queries that asked with AD or DO (a validating upstream, RFC 6840), and signs signed.example.com for DO. */
function validating(zone: Zone): Zone {
  const answer = zone.answer.bind(zone);
  zone.answer = (q) => {
    const a = answer(q);
    const opt = q.additionals?.find((r) => r.type === 'OPT') as { flags?: number } | undefined;
    const dnssecOk = ((opt?.flags ?? 0) & dnsPacket.DNSSEC_OK) !== 0;
    if ((q.flags ?? 0) & dnsPacket.AUTHENTIC_DATA || dnssecOk) a.flags = (a.flags ?? 0) | dnsPacket.AUTHENTIC_DATA;
    if (dnssecOk && q.questions?.[0]?.name.toLowerCase() === 'signed.example.com' && q.questions[0].type === 'A') {
      a.answers!.push({
        name: q.questions[0].name,
        type: 'RRSIG',
        ttl: 300,
        data: { typeCovered: 'A', algorithm: 13, labels: 3, originalTTL: 300, expiration: 2000000000, inception: 1700000000, keyTag: 4242, signersName: 'example.com', signature: Buffer.alloc(64, 7) },
      } as dnsPacket.Answer);
    }
    return a;
  };
  return zone;
}

beforeAll(async () => {
  if (!CAN) return;
  dir = mkdtempSync(join(tmpdir(), 'dohd-clients-'));
  // Go: stdlib only, its caches in the temporary directory, nothing fetched.
  goBin = join(dir, 'lookup');
  const env = { ...process.env, GOCACHE: join(dir, 'gocache'), GOPATH: join(dir, 'gopath'), GOPROXY: 'off', GOFLAGS: '', GOTOOLCHAIN: 'local', CGO_ENABLED: '1' };
  const built = spawnSync('go', ['build', '-o', goBin, join(CLIENTS, 'lookup.go')], { env, encoding: 'utf8' });
  if (built.status !== 0) throw new Error(`go build: ${built.stderr}`);
  muslBin = join(dir, 'gai');
  const cc = spawnSync('musl-gcc', ['-static', '-O2', '-o', muslBin, join(CLIENTS, 'gai.c')], { encoding: 'utf8' });
  if (cc.status !== 0) throw new Error(`musl-gcc: ${cc.stderr}`);
  ({ pki, doh } = await startDohUpstream());
}, 120_000);

afterAll(async () => {
  if (!CAN) return;
  await stopDohUpstream({ pki, doh });
  rmSync(dir, { recursive: true, force: true });
});

async function start(extra: Record<string, unknown> = {}): Promise<void> {
  const zone = validating(defaultZone());
  for (const ip of MANY) zone.add({ name: 'many.example.com', type: 'A', data: ip });
  zone.add({ name: 'signed.example.com', type: 'A', data: '192.0.2.5' });
  zone.add({ name: 'goproxy.cn', type: 'AAAA', data: '2001:db8::53' });
  doh.zone = zone;
  doh.mode = 'ok';
  d = await startDaemon({
    listen: [`${NS}:53`],
    upstreams: [{ url: doh.url, ca: pki.caFile, name: 'fixture' }],
    timeoutMs: TIMEOUT_MS,
    pins: { 'pinned.example.com': ['192.0.2.77'] },
    ...extra,
  });
}

describe.skipIf(!CAN)('real clients against a running dohd', () => {
  let plain: string;
  let vc: string;
  beforeAll(() => {
    plain = resolvConf('resolv.plain', [`nameserver ${NS}`, 'options ndots:1 timeout:1 attempts:2 edns0 trust-ad']);
    vc = resolvConf('resolv.vc', [`nameserver ${NS}`, 'options ndots:1 timeout:1 attempts:2 use-vc single-request']);
  });
  afterEach(async () => {
    await d?.stop();
    doh.reset();
  });

  it('dig and kdig: RA set; ID, question (0x20 letter case) and RD echoed; OPT if and only if the query had one (UDP and TCP)', async () => {
    await start();
    for (const tcp of [[], ['+tcp']]) {
      // The question comes back as asked (0x20); record owners carry the upstream's spelling.
      const a = await dig(...tcp, '+noadflag', 'ExAmPlE.CoM', 'A');
      expect(a.stdout).toMatch(/flags: qr rd ra;/);
      expect(a.stdout).toContain(';ExAmPlE.CoM.\t\t\tIN\tA');
      expect(a.stdout).toContain('OPT PSEUDOSECTION');
      expect(a.stdout).toMatch(/^example\.com\.\s+\d+\s+IN\s+A\s+192\.0\.2\.1$/mi);
      const norec = await dig(...tcp, '+noadflag', '+norecurse', '+noedns', 'www.example.com', 'A');
      expect(norec.stdout).toMatch(/flags: qr ra;/);
      expect(norec.stdout).not.toContain('OPT PSEUDOSECTION');
      const k = await kdig(...tcp, '+nordflag', 'WwW.ExAmPlE.CoM', 'A');
      expect(k.stdout).toMatch(/;; Flags: qr ra;/);
      // kdig sends names lower-cased: the letter case is checked with dig above.
      expect(k.stdout).toMatch(/^;; QUESTION SECTION:\n;; www\.example\.com\.\s+IN\s+A$/m);
      expect(k.stdout).toMatch(/^www\.example\.com\.\s+\d+\s+IN\s+A\s+192\.0\.2\.3$/im);
      const ke = await kdig(...tcp, '+edns', 'example.com', 'AAAA');
      expect(ke.stdout).toMatch(/EDNS PSEUDOSECTION/);
      expect(ke.stdout).toMatch(/;; Flags: qr rd ra;/);
      const kn = await kdig(...tcp, '+noedns', 'example.com', 'AAAA');
      expect(kn.stdout).not.toMatch(/EDNS PSEUDOSECTION/);
    }
  });

  it('DNSSEC bits (RFC 6840 §5.7-5.8): AD only for clients that set AD or DO; DO keeps signatures; CD is forwarded', async () => {
    await start();
    expect((await dig('+adflag', 'example.com')).stdout).toMatch(/flags: qr rd ra ad;/);
    expect((await dig('+noadflag', 'example.org')).stdout).toMatch(/flags: qr rd ra;/); // another name: not from the cache
    expect((await dig('+noadflag', 'example.com')).stdout).toMatch(/flags: qr rd ra;/); // from the cache, which holds AD
    const signed = await dig('+noadflag', '+dnssec', 'signed.example.com', 'A');
    expect(signed.stdout).toMatch(/flags: qr rd ra ad;/);
    expect(signed.stdout).toMatch(/^signed\.example\.com\.\s+\d+\s+IN\s+RRSIG\s+A 13 3 300/m);
    expect((await dig('+noadflag', '+nodnssec', 'signed.example.com', 'A')).stdout).not.toMatch(/RRSIG/);
    await dig('+cd', 'cd.example.com', 'A');
    const up = doh.queries.find((q) => q.questions?.[0]?.name === 'cd.example.com');
    expect((up?.flags ?? 0) & dnsPacket.CHECKING_DISABLED).toBe(dnsPacket.CHECKING_DISABLED);
  });

  it('truncation: whole records with TC; Go (both resolvers) and glibc retry over TCP and get all 100 addresses, musl gets the addresses that fit', async () => {
    await start();
    // dig with a 512-byte buffer: TC, and the records that fit, whole.
    const udp = await dig('+noadflag', '+ignore', '+bufsize=512', 'many.example.com', 'A');
    expect(udp.stdout).toMatch(/flags: qr tc rd ra;/);
    const kept = udp.stdout.match(/^many\.example\.com\.\s+\d+\s+IN\s+A\s+198\.51\.100\.\d+$/gm) ?? [];
    expect(kept.length).toBeGreaterThanOrEqual(10);
    expect(kept.length).toBeLessThan(100);
    expect(udp.stdout).toContain(`ANSWER: ${kept.length}, AUTHORITY: 0, ADDITIONAL: 1`);
    const full = await dig('+bufsize=512', 'many.example.com', 'A'); // dig retries over TCP on TC
    expect(full.stdout.match(/IN\s+A\s+198\.51\.100\.\d+$/gm)?.length).toBe(100);
    for (const mode of ['go', 'cgo'] as const) {
      const r = parse((await go(mode, plain, 'many.example.com')).stdout.trim());
      expect([mode, r.ok, r.detail.split(',').length]).toEqual([mode, true, 100]);
    }
    const ahosts = await run(['getent', 'ahosts', 'many.example.com'], { resolv: plain });
    expect(new Set(ahosts.stdout.split('\n').filter(Boolean).map((l) => l.split(/\s+/)[0])).size).toBe(100);
    const hosts = await run(['getent', 'hosts', 'many.example.com'], { resolv: plain });
    expect(hosts.stdout).toMatch(/^198\.51\.100\.\d+\s+many\.example\.com/);
    // musl sends no EDNS (512 bytes) and never retries over TCP: the addresses that fit.
    const m = parse((await musl(plain, 'many.example.com')).stdout.trim());
    expect(m.ok).toBe(true);
    const got = m.detail.split(',');
    expect(got.length).toBeGreaterThanOrEqual(10);
    expect(got.every((a) => MANY.includes(a))).toBe(true);
  });

  it('every client resolves over UDP and over TCP only (use-vc, single-request), and a v4-only pin is no lame referral', async () => {
    await start();
    for (const conf of [plain, vc]) {
      for (const mode of ['go', 'cgo'] as const) {
        const out = (await go(mode, conf, 'example.com', 'pinned.example.com')).stdout.trim().split('\n');
        expect(out.map((l) => parse(l).detail)).toEqual(['192.0.2.1,2001:db8::1', '192.0.2.77']);
      }
      expect((await run(['getent', 'ahosts', 'pinned.example.com'], { resolv: conf })).stdout).toMatch(/^192\.0\.2\.77\s+STREAM pinned\.example\.com$/m);
    }
    expect(parse((await musl(plain, 'pinned.example.com')).stdout.trim()).detail).toBe('192.0.2.77');
    // The AAAA NODATA of the pin carries a SOA even without EDNS: never empty in every section.
    const nodata = await dig('+noedns', 'pinned.example.com', 'AAAA');
    expect(nodata.stdout).toMatch(/status: NOERROR.*\n.*ANSWER: 0, AUTHORITY: 1, ADDITIONAL: 0/);
  });

  it('NXDOMAIN only from the upstream: each client reports the name as not found, at once', async () => {
    await start();
    const goErr = parse((await go('go', plain, 'nope.example.com')).stdout.trim());
    expect(goErr.detail).toBe(`lookup nope.example.com on ${NS}:53: no such host`);
    const cgoErr = parse((await go('cgo', plain, 'nope.example.org')).stdout.trim());
    expect(cgoErr.detail).toBe('lookup nope.example.org: no such host');
    expect((await run(['getent', 'hosts', 'nope.example.net'], { resolv: plain })).code).toBe(2);
    expect(parse((await musl(plain, 'nope2.example.com')).stdout.trim()).detail).toBe('Name does not resolve');
    for (const q of doh.queries) expect(q.questions![0]!.name).toMatch(/^nope2?\.example\.(com|org|net)$/);
  });

  // Measured here with timeoutMs 700: Go 1.4 s and cgo 1.4 s (2 attempts), getent hosts 2.8 s
  // (an AAAA lookup, then an A lookup, 2 attempts each), musl 1.0 s (SERVFAIL ends its lookup).
  it('upstreams hanging: SERVFAIL (never NXDOMAIN), and each client gives up in about timeoutMs × its retries', async () => {
    await start();
    doh.mode = 'hang';
    const servfail = await dig('down.example.com');
    expect(servfail.stdout).toContain('status: SERVFAIL');
    // Go's own resolver: SERVFAIL is "server misbehaving"; attempts:2 for each of A and AAAA, in parallel.
    const g = parse((await go('go', plain, 'down1.example.com')).stdout.trim());
    expect(g.detail).toBe(`lookup down1.example.com on ${NS}:53: server misbehaving`);
    expect(g.ms).toBeLessThan(TIMEOUT_MS * 2 * 2 + 1500);
    // glibc (cgo and getent): "Try again" (EAI_AGAIN) after its two attempts.
    const c = parse((await go('cgo', plain, 'down2.example.com')).stdout.trim());
    expect(c.detail).toBe('lookup down2.example.com: Temporary failure in name resolution');
    expect(c.ms).toBeLessThan(TIMEOUT_MS * 2 * 2 + 1500);
    const ge = await run(['getent', 'hosts', 'down3.example.com'], { resolv: plain });
    expect(ge.code).toBe(2); // getent: "not found" exit status, nothing printed
    expect(ge.ms).toBeLessThan(TIMEOUT_MS * 2 * 2 + 1500);
    // musl: one answer per query, SERVFAIL ends it.
    const m = parse((await musl(plain, 'down4.example.com')).stdout.trim());
    expect(m.detail).toBe('Try again');
    expect(m.ms).toBeLessThan(TIMEOUT_MS * 2 + 1500);
    console.log(`failure timings with timeoutMs ${TIMEOUT_MS} (ms): go ${g.ms}, cgo ${c.ms}, getent ${Math.round(ge.ms)}, musl ${m.ms}`);
  });

  it('search storm: ndots:5 and three search domains make 8 queries for goproxy.cn; once cached, the upstream sees none', async () => {
    await start();
    const pod = resolvConf('resolv.pod', [`nameserver ${NS}`, 'search ns1.example.org svc.example.org example.org', 'options ndots:5 timeout:1 attempts:2 edns0']);
    const first = parse((await go('go', pod, 'goproxy.cn')).stdout.trim());
    expect(first.detail).toBe('192.0.2.53,2001:db8::53');
    const asked = doh.queries.map((q) => `${q.questions![0]!.name}/${q.questions![0]!.type}`).sort();
    expect(asked).toEqual(
      ['goproxy.cn', 'goproxy.cn.example.org', 'goproxy.cn.ns1.example.org', 'goproxy.cn.svc.example.org'].flatMap((n) => [`${n}/A`, `${n}/AAAA`]).sort(),
    );
    const before = doh.requests;
    for (const mode of ['go', 'cgo'] as const) expect(parse((await go(mode, pod, 'goproxy.cn')).stdout.trim()).detail).toBe('192.0.2.53,2001:db8::53');
    expect(parse((await musl(pod, 'goproxy.cn')).stdout.trim()).detail.split(',').sort()).toEqual(['192.0.2.53', '2001:db8::53']);
    expect((await run(['getent', 'ahosts', 'goproxy.cn'], { resolv: pod })).stdout).toContain('192.0.2.53');
    expect(doh.requests - before).toBe(0);
  });
});
