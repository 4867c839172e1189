/**
 * The chaos soak (issue 18 item 8): the real CLI in a child process, queried at a steady rate
 * with a mix of cache hits and misses, while every `flipMs` each upstream switches to another
 * fault mode. The upstreams: two DoH upstreams that go through every mode of
 * test/fixtures/doh-server.ts (hang, reset, GOAWAY, garbage, wrong question, SERVFAIL, ...)
 * and of test/fixtures/tls-faults.ts (bad certificates, ALPN, TLS versions, stalled or reset
 * handshakes), and a plain-DNS upstream (for `corp.example.net`, by a forward rule) through the modes
 * of test/fixtures/plain-dns-server.ts. Each upstream walks its own seeded shuffle of the
 * modes, so every mode comes up.
 *
 * It reports answers by rcode, silence (queries with no answer at all), wrong answers (a
 * NOERROR with the wrong data, an NXDOMAIN for a name that exists, an answer to another
 * question, any rcode but NOERROR, SERVFAIL and REFUSED — the last two are failures the
 * upstreams' faults cause, passed on honestly), dohd's RSS every `sampleMs`, upstream transport restarts (from /metrics) and
 * process restarts (the child died). Used by `npm run soak` (10 minutes, bench/soak-run.ts)
 * and test/e2e/chaos-soak.test.ts (60 s inside `npm test`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import dnsPacket from 'dns-packet';
import type { DohMode } from '../test/fixtures/doh-server.js';
import { startPlainDnsServer, type PlainDnsMode } from '../test/fixtures/plain-dns-server.js';
import { startTlsFaultUpstream, TLS_FAULTS, type TlsFault, type TlsFaultUpstream } from '../test/fixtures/tls-faults.js';
import { Zone, type ZoneRecord } from '../test/fixtures/zone.js';
import { Rng } from './fuzz.js';
import { rssOf } from './proc.js';

/** Every mode of the DoH fixture server (applied behind a good TLS front). */
const DOH_MODES: readonly DohMode[] = [
  'hang', 'slow', 'http500', 'http429', 'http404', 'reset', 'goaway', 'garbage', 'truncated',
  'wrongContentType', 'wrongQuestion', 'oversized', 'servfail', 'refused', 'wrongId',
];
const PLAIN_MODES: readonly PlainDnsMode[] = ['hang', 'servfail', 'truncate'];

type UpstreamMode = { kind: 'ok' } | { kind: 'doh'; mode: DohMode } | { kind: 'tls'; mode: TlsFault };

export interface SoakOptions {
  durationMs: number;
  /** Client queries per second. */
  rate: number;
  /** Each upstream switches mode this often. */
  flipMs: number;
  /** RSS is sampled this often. */
  sampleMs: number;
  seed: number;
  /** dohd's query deadline. */
  timeoutMs?: number;
  log?: (line: string) => void;
}

export interface SoakReport {
  seed: number;
  seconds: number;
  sent: number;
  byRcode: Record<string, number>;
  silence: number;
  wrong: number;
  wrongExamples: string[];
  rssMb: number[];
  /** Largest spread of the RSS samples after warm-up (the first third), relative to their mean. */
  rssSpreadAfterWarmup: number;
  transportRestarts: number;
  processRestarts: number;
  errorLines: number;
  errorExamples: string[];
  modesSeen: Record<string, string[]>;
  kernelDrops: number;
}

/** The soak's records: fixed names (hits) and `m<N>.soak.example.net` (misses, one address each, computed). */
class SoakZone extends Zone {
  override lookup(name: string, type?: string): ZoneRecord[] {
    const m = /^m(\d+)\.(soak|corp)\.example\.net\.?$/i.exec(name);
    if (m) {
      if (type && type !== 'A' && type !== 'ANY') return [];
      return [{ name, type: 'A', ttl: 300, data: missAddress(Number(m[1])) }];
    }
    return super.lookup(name, type);
  }
  override nameExists(name: string): boolean {
    return /^m\d+\.(soak|corp)\.example\.net\.?$/i.test(name) || super.nameExists(name);
  }
}

function missAddress(n: number): string {
  return `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
}

const HITS: { name: string; address: string }[] = [
  { name: 'example.com', address: '192.0.2.1' },
  { name: 'www.example.com', address: '192.0.2.3' },
  { name: 'goproxy.cn', address: '192.0.2.53' },
  { name: 'hit1.soak.example.net', address: '198.51.100.1' },
  { name: 'hit2.soak.example.net', address: '198.51.100.2' },
  { name: 'hit1.corp.example.net', address: '198.51.100.11' },
];

function shuffled<T>(rng: Rng, xs: readonly T[]): T[] {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

function modeName(m: UpstreamMode): string {
  return m.kind === 'ok' ? 'ok' : `${m.kind}:${m.mode}`;
}

export async function soak(opts: SoakOptions): Promise<SoakReport> {
  const log = opts.log ?? (() => {});
  const rng = new Rng(opts.seed);
  const zone = new SoakZone();
  for (const h of HITS) zone.add({ name: h.name, type: 'A', ttl: 300, data: h.address });
  // Short TTLs on two of the hits: they expire during the soak and are asked upstream again.
  zone.add({ name: 'short.soak.example.net', type: 'A', ttl: 2, data: '198.51.100.9' });
  const hits = [...HITS, { name: 'short.soak.example.net', address: '198.51.100.9' }];

  const fronts: TlsFaultUpstream[] = await Promise.all([startTlsFaultUpstream({ zone }), startTlsFaultUpstream({ zone })]);
  const plain = await startPlainDnsServer({ zone });
  const dir = fronts[0]!.pki.dir;
  // Both DoH upstreams are reached as doh.test: one CA file holding both fronts' CAs.
  const caFile = join(dir, 'soak-ca.pem');
  writeFileSync(caFile, fronts.map((f) => readFileSync(f.pki.caFile, 'utf8')).join(''));
  const config = join(dir, 'soak.yaml');
  writeFileSync(
    config,
    [
      'listen: ["127.0.0.1:0"]',
      'admin: { listen: "127.0.0.1:0" }',
      'loopProbe: false',
      `timeoutMs: ${opts.timeoutMs ?? 1500}`,
      'rateLimit: { qps: 0 }',
      'upstreams:',
      ...fronts.flatMap((f, i) => [`  - url: ${f.url}`, '    bootstrap: [127.0.0.1]', `    ca: ${caFile}`, `    name: doh${i + 1}`]),
      'forward:',
      '  corp.example.net: corp',
      'groups:',
      '  corp:',
      '    upstreams:',
      `      - url: udp://127.0.0.1:${plain.port}`,
      '        name: plain',
      '',
    ].join('\n'),
  );

  const lines: string[] = [];
  let processRestarts = 0;
  const cli = resolve(process.cwd(), 'dist/cli.js');
  const startChild = (): ChildProcess => {
    const c = spawn(process.execPath, [cli, 'run', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    let partial = '';
    c.stdout!.on('data', (d: Buffer) => {
      const parts = (partial + d.toString()).split('\n');
      partial = parts.pop()!;
      lines.push(...parts);
    });
    c.stderr!.on('data', (d: Buffer) => lines.push(`stderr: ${d.toString()}`));
    return c;
  };
  const child = startChild();
  const listening = await new Promise<{ port: number; admin: number }>((res, rej) => {
    const t = setInterval(() => {
      const l = lines.find((x) => x.includes('"dohd listening"'));
      if (l) {
        clearInterval(t);
        const j = JSON.parse(l) as { listen: string[]; admin: string | { host: string; port: number } };
        const first = j.listen[0]!;
        const admin = typeof j.admin === 'string' ? Number(j.admin.slice(j.admin.lastIndexOf(':') + 1)) : j.admin.port;
        res({ port: Number(first.slice(first.lastIndexOf(':') + 1)), admin });
      } else if (child.exitCode !== null) {
        clearInterval(t);
        rej(new Error(`dohd exited at start: ${lines.join('\n')}`));
      }
    }, 50);
  });
  let died = false;
  child.once('exit', (code, signal) => {
    if (!stopping) {
      died = true;
      processRestarts++;
      log(`soak: dohd EXITED (${code ?? signal}) during the soak`);
    }
  });
  let stopping = false;

  // Fault flips: each upstream walks its own shuffle of its modes, with `ok` between some of them.
  const dohModes: UpstreamMode[] = [
    { kind: 'ok' },
    ...DOH_MODES.map((mode) => ({ kind: 'doh' as const, mode })),
    ...TLS_FAULTS.map((mode) => ({ kind: 'tls' as const, mode })),
  ];
  const plans = fronts.map(() => shuffled(rng, dohModes));
  const plainPlan = shuffled(rng, ['ok', ...PLAIN_MODES] as PlainDnsMode[]);
  const modesSeen: Record<string, string[]> = { doh1: [], doh2: [], plain: [] };
  let flip = 0;
  const applyFlip = () => {
    fronts.forEach((f, i) => {
      const m = plans[i]![flip % plans[i]!.length]!;
      f.good.mode = m.kind === 'doh' ? m.mode : 'ok';
      f.good.delayMs = m.kind === 'doh' && m.mode === 'slow' ? 400 : 0;
      f.setMode(m.kind === 'tls' ? m.mode : 'ok', true);
      modesSeen[`doh${i + 1}`]!.push(modeName(m));
    });
    plain.mode = plainPlan[flip % plainPlan.length]!;
    modesSeen.plain!.push(plain.mode);
    flip++;
  };
  applyFlip();
  const flipper = setInterval(applyFlip, opts.flipMs);

  // The client: one UDP socket, steady rate, every query tracked until answered or given up on.
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.connect(listening.port, '127.0.0.1', () => r()));
  const inflight = new Map<number, { name: string; address: string; exists: boolean; at: number }>();
  const byRcode: Record<string, number> = {};
  let silence = 0;
  let wrong = 0;
  const wrongExamples: string[] = [];
  let sent = 0;
  let miss = 0;
  let nextId = 1;
  const noteWrong = (s: string) => {
    wrong++;
    if (wrongExamples.length < 10) wrongExamples.push(s);
  };
  sock.on('message', (msg) => {
    const id = msg.readUInt16BE(0);
    const q = inflight.get(id);
    if (!q) return;
    inflight.delete(id);
    let p: dnsPacket.DecodedPacket & { rcode?: string };
    try {
      p = dnsPacket.decode(msg) as typeof p;
    } catch {
      return noteWrong(`${q.name}: reply does not decode`);
    }
    const rcode = p.rcode ?? '?';
    byRcode[rcode] = (byRcode[rcode] ?? 0) + 1;
    if (p.questions?.[0]?.name.toLowerCase() !== q.name) return noteWrong(`${q.name}: answer for ${p.questions?.[0]?.name}`);
    if (rcode === 'NOERROR') {
      const got = (p.answers ?? []).filter((a) => a.type === 'A').map((a) => (a as { data: string }).data);
      if (got.join() !== q.address) noteWrong(`${q.name}: NOERROR ${got.join()} (want ${q.address})`);
    } else if (rcode === 'NXDOMAIN' && q.exists) noteWrong(`${q.name}: NXDOMAIN`);
    // SERVFAIL (no upstream could answer) and REFUSED (the upstreams' own refusal, passed on when
    // nothing better came) are failures, not wrong answers; anything else would be.
    else if (rcode !== 'SERVFAIL' && rcode !== 'REFUSED' && rcode !== 'NXDOMAIN') noteWrong(`${q.name}: ${rcode}`);
  });
  sock.on('error', () => {});

  const giveUpMs = (opts.timeoutMs ?? 1500) + 3000;
  const t0 = performance.now();
  const rss: number[] = [rssOf(child.pid!)];
  let lastSample = t0;
  const interval = 1000 / opts.rate;
  let due = t0;
  await new Promise<void>((done) => {
    const tick = () => {
      const now = performance.now();
      // Silence: no answer long after the deadline.
      for (const [id, q] of inflight) {
        if (now - q.at > giveUpMs) {
          inflight.delete(id);
          silence++;
          if (wrongExamples.length < 10) wrongExamples.push(`${q.name}: no answer (silence)`);
        }
      }
      if (now - lastSample >= opts.sampleMs) {
        lastSample = now;
        rss.push(rssOf(child.pid!));
        log(`soak: ${Math.round((now - t0) / 1000)} s: ${sent} sent, ${JSON.stringify(byRcode)}, silence ${silence}, wrong ${wrong}, RSS ${Math.round(rss[rss.length - 1]!)} MB`);
      }
      if (now - t0 >= opts.durationMs || died) return done();
      while (due <= now) {
        due += interval;
        // Half hits (a few names, answered from the cache), half misses (a new name each time); one in five to the plain group.
        const corp = rng.int(5) === 0;
        let q: { name: string; address: string; exists: boolean };
        if (rng.int(2) === 0) {
          const h = corp ? HITS[5]! : rng.pick(hits.slice(0, 5).concat(hits[6]!));
          q = { ...h, exists: true };
        } else {
          const n = ++miss;
          q = { name: `m${n}.${corp ? 'corp' : 'soak'}.example.net`, address: missAddress(n), exists: true };
        }
        const id = nextId++ & 0xffff || nextId++;
        inflight.set(id, { ...q, at: now });
        sock.send(dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name: q.name, type: 'A', class: 'IN' }] }));
        sent++;
      }
      setTimeout(tick, 5);
    };
    tick();
  });
  clearInterval(flipper);
  // The last answers.
  const drainUntil = performance.now() + giveUpMs;
  while (inflight.size > 0 && performance.now() < drainUntil) await new Promise((r) => setTimeout(r, 50));
  silence += inflight.size;
  rss.push(rssOf(child.pid!));

  let transportRestarts = 0;
  let kernelDrops = 0;
  if (!died) {
    try {
      const text = await (await fetch(`http://127.0.0.1:${listening.admin}/metrics`)).text();
      for (const l of text.split('\n')) {
        const m = /^dohd_upstream_restarts_total\{[^}]*\} (\d+)/.exec(l);
        if (m) transportRestarts += Number(m[1]);
        const dm = /^dohd_udp_socket_drops_total\{[^}]*\} (\d+)/.exec(l);
        if (dm) kernelDrops += Number(dm[1]);
      }
    } catch (err) {
      log(`soak: /metrics unreadable: ${(err as Error).message}`);
    }
  }
  stopping = true;
  sock.close();
  child.kill('SIGTERM');
  await new Promise<void>((r) => (child.exitCode !== null ? r() : child.once('exit', () => r())));
  await Promise.all([...fronts.map((f) => f.close()), plain.close()]);

  const after = rss.slice(Math.ceil(rss.length / 3));
  const mean = after.reduce((a, b) => a + b, 0) / Math.max(1, after.length);
  const errors = lines.filter((l) => /"level":(50|60)/.test(l) || l.startsWith('stderr:'));
  return {
    seed: opts.seed,
    seconds: Math.round((performance.now() - t0) / 1000),
    sent,
    byRcode,
    silence,
    wrong,
    wrongExamples,
    rssMb: rss.map((x) => Math.round(x)),
    rssSpreadAfterWarmup: after.length ? (Math.max(...after) - Math.min(...after)) / mean : 0,
    transportRestarts,
    processRestarts,
    errorLines: errors.length,
    errorExamples: errors.slice(0, 5),
    modesSeen,
    kernelDrops,
  };
}
