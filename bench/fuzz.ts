/**
 * The network fuzzer (issue 18 item 7): seeded, mutated DNS packets at a running dohd over
 * UDP, and mutated frames over TCP, with a valid query interleaved after every batch whose
 * answer must be right. The same seed gives the same packets (replay: `npm run fuzz -- --seed N`).
 *
 * Used by test/e2e/fuzz.test.ts (a short run inside `npm test`) and bench/fuzz-run.ts
 * (`npm run fuzz`, 1,000,000+ packets). It only sends and checks; the caller watches the
 * process (alive, log, memory).
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import dnsPacket from 'dns-packet';

/** A small fast seeded PRNG (mulberry32): the same seed, the same packets. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
}

const TYPES = ['A', 'AAAA', 'TXT', 'MX', 'ANY', 'NS', 'SOA', 'CNAME', 'PTR', 'SRV', 'HTTPS', 'DS', 'DNSKEY', 'CAA'] as const;
const NAMES = ['example.com', 'www.example.com', 'big.example.net', 'cname.example.net', 'fuzz.example.net', 'a.b.c.d.e.f.g.fuzz.example.net', 'x', ''];

/** A well-formed query to start mutating from: odd names, types, flags, EDNS and options now and then. */
function seedQuery(rng: Rng): Buffer {
  const name = rng.int(4) === 0 ? `${rng.int(1e6).toString(36)}.${rng.pick(NAMES)}` : rng.pick(NAMES);
  const additionals =
    rng.int(3) === 0
      ? []
      : [
          {
            name: '.',
            type: 'OPT',
            udpPayloadSize: rng.pick([512, 1232, 4096, 65535, 0]),
            flags: rng.int(2) ? dnsPacket.DNSSEC_OK : 0,
            ednsVersion: rng.int(8) === 0 ? 1 : 0,
            options: rng.int(3) === 0 ? [{ code: rng.pick([8, 10, 11, 12, 14, 15, 65001]), data: Buffer.from(Array.from({ length: rng.int(24) }, () => rng.int(256))) }] : [],
          } as unknown as dnsPacket.Answer,
        ];
  const wire = dnsPacket.encode({
    type: 'query',
    id: rng.int(0x10000),
    flags: rng.int(4) === 0 ? rng.int(0x8000) & ~0x7800 : dnsPacket.RECURSION_DESIRED,
    questions: [{ name, type: rng.pick(TYPES) as dnsPacket.RecordType, class: 'IN' }],
    additionals,
  });
  return wire;
}

/** One mutated packet: a few random edits of a well-formed query, or bytes with no shape at all. */
export function mutatedPacket(rng: Rng): Buffer {
  if (rng.int(20) === 0) return Buffer.from(Array.from({ length: rng.int(600) }, () => rng.int(256)));
  let b: Buffer = Buffer.from(seedQuery(rng));
  const edits = 1 + rng.int(4);
  for (let e = 0; e < edits && b.length > 0; e++) {
    const at = rng.int(b.length);
    switch (rng.int(8)) {
      case 0:
        b[at] = b[at]! ^ (1 << rng.int(8));
        break;
      case 1:
        b[at] = rng.int(256);
        break;
      case 2:
        b = b.subarray(0, at);
        break;
      case 3: {
        const ins = Buffer.from(Array.from({ length: 1 + rng.int(16) }, () => rng.int(256)));
        b = Buffer.concat([b.subarray(0, at), ins, b.subarray(at)]);
        break;
      }
      case 4:
        // A section count: 0, 1, 2 or 0xffff.
        if (b.length >= 12) b.writeUInt16BE(rng.pick([0, 1, 2, 3, 0xffff]), 4 + 2 * rng.int(4));
        break;
      case 5:
        // A compression pointer somewhere in the name (into the header, itself, or past the end).
        if (b.length > 14) {
          const p = 12 + rng.int(Math.min(20, b.length - 13));
          b[p] = 0xc0 | rng.int(4);
          b[p + 1] = rng.int(256);
        }
        break;
      case 6:
        // A label length that runs past the end, or a reserved label type (0x40, 0x80).
        if (b.length > 12) b[12 + rng.int(Math.min(8, b.length - 12))] = rng.pick([0x3f, 0x40, 0x80, 0xff, 0x20]);
        break;
      default:
        // QR set (a response: must be ignored) or another opcode.
        if (b.length > 2) b[2] = (b[2]! & 0x07) | rng.pick([0x80, 0x08, 0x10, 0x20, 0x28]);
        break;
    }
  }
  return b;
}

/** The valid queries interleaved with the mutated ones: names of the fixture zone and their A records. */
export const FUZZ_VALID: readonly { name: string; address: string }[] = [
  { name: 'example.com', address: '192.0.2.1' },
  { name: 'www.example.com', address: '192.0.2.3' },
  { name: 'goproxy.cn', address: '192.0.2.53' },
];

export interface FuzzOptions {
  host: string;
  port: number;
  seed: number;
  /** Targets: stop when both are reached, or at the time budget. */
  udpPackets: number;
  tcpFrames: number;
  /** Stop here even if the targets are not reached (ms). */
  budgetMs: number;
  /** Mutated packets between two valid queries. */
  batch?: number;
  /** The valid queries: a name and the answer it must get (A record). */
  valid: readonly { name: string; address: string }[];
  /** Called every ~second with progress. */
  progress?: (s: FuzzStats) => void;
}

export interface FuzzStats {
  seed: number;
  udpSent: number;
  udpReplies: number;
  tcpSent: number;
  tcpReplies: number;
  tcpConnections: number;
  /** Replies that do not decode, or are not responses. */
  badReplies: number;
  validAsked: number;
  validRight: number;
  /** Valid queries with a wrong answer, or none in time: each a failure. */
  validWrong: string[];
  ms: number;
}

/** A run's size and seed: FUZZ_UDP, FUZZ_TCP, FUZZ_BUDGET_MS and FUZZ_SEED (a replay), else the caller's targets and a seed from the clock. */
export type FuzzRun = Pick<FuzzOptions, 'seed' | 'udpPackets' | 'tcpFrames' | 'budgetMs'>;

export function fuzzRunFromEnv(targets: Omit<FuzzRun, 'seed'>, env: NodeJS.ProcessEnv = process.env): FuzzRun {
  return {
    seed: Number(env.FUZZ_SEED ?? Date.now() % 2 ** 31),
    udpPackets: Number(env.FUZZ_UDP ?? targets.udpPackets),
    tcpFrames: Number(env.FUZZ_TCP ?? targets.tcpFrames),
    budgetMs: Number(env.FUZZ_BUDGET_MS ?? targets.budgetMs),
  };
}

/** The options of a run at a dohd on 127.0.0.1:PORT, with FUZZ_VALID as the valid queries. */
export function fuzzOptions(run: FuzzRun, port: number, progress?: (s: FuzzStats) => void): FuzzOptions {
  return { host: '127.0.0.1', port, ...run, valid: FUZZ_VALID, progress };
}

/**
 * The config dohd runs under the fuzzer (npm run fuzz and the fuzz test): one DoH upstream, no
 * admin listener, no loop probe (no request of its own), no rate limit (it would drop the noise
 * unread), and a bounded cache.
 */
export function fuzzConfig(upstream: { url: string; ca: string }): string {
  return [
    'listen: ["127.0.0.1:0"]',
    'admin: false',
    'loopProbe: false',
    'rateLimit: { qps: 0 }',
    'cache: { maxEntries: 20000 }',
    'upstreams:',
    `  - url: ${upstream.url}`,
    `    ca: ${upstream.ca}`,
    '    name: up',
    '',
  ].join('\n');
}

/** Sends one valid query on `socket` and waits for its answer; returns null when right, else what was wrong. */
function askValid(socket: dgram.Socket, pending: Map<number, (b: Buffer) => void>, v: { name: string; address: string }, id: number): Promise<string | null> {
  const q = dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name: v.name, type: 'A', class: 'IN' }] });
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      pending.delete(id);
      resolve(`${v.name}: no answer in 5 s`);
    }, 5000);
    pending.set(id, (b) => {
      clearTimeout(timer);
      pending.delete(id);
      try {
        const p = dnsPacket.decode(b) as dnsPacket.DecodedPacket & { rcode?: string };
        const got = (p.answers ?? []).filter((a) => a.type === 'A').map((a) => (a as { data: string }).data);
        if (p.rcode !== 'NOERROR' || got.join() !== v.address || p.questions?.[0]?.name.toLowerCase() !== v.name) resolve(`${v.name}: ${p.rcode} ${got.join()}`);
        else resolve(null);
      } catch (err) {
        resolve(`${v.name}: answer does not decode (${(err as Error).message})`);
      }
    });
    socket.send(q);
  });
}

/** Runs the fuzzer; valid queries go from a socket of their own, so their answers are told apart from the noise's replies. */
export async function fuzz(opts: FuzzOptions): Promise<FuzzStats> {
  const rng = new Rng(opts.seed);
  const batch = opts.batch ?? 100;
  const t0 = performance.now();
  const stats: FuzzStats = { seed: opts.seed, udpSent: 0, udpReplies: 0, tcpSent: 0, tcpReplies: 0, tcpConnections: 0, badReplies: 0, validAsked: 0, validRight: 0, validWrong: [], ms: 0 };
  const type = opts.host.includes(':') ? 'udp6' : 'udp4';
  const noise = dgram.createSocket(type);
  const checker = dgram.createSocket(type);
  const pending = new Map<number, (b: Buffer) => void>();
  const checkReply = (msg: Buffer) => {
    if (msg.length < 12 || (msg[2]! & 0x80) === 0) stats.badReplies++;
    else {
      try {
        dnsPacket.decode(msg);
      } catch {
        stats.badReplies++;
      }
    }
  };
  noise.on('message', (msg) => {
    stats.udpReplies++;
    checkReply(msg);
  });
  checker.on('message', (msg) => pending.get(msg.readUInt16BE(0))?.(msg));
  for (const s of [noise, checker]) {
    s.on('error', () => {});
    await new Promise<void>((r) => s.connect(opts.port, opts.host, () => r()));
  }
  let validId = 0;
  const valid = async () => {
    const v = opts.valid[stats.validAsked % opts.valid.length]!;
    stats.validAsked++;
    const wrong = await askValid(checker, pending, v, validId++ & 0xffff);
    if (wrong) stats.validWrong.push(wrong);
    else stats.validRight++;
  };
  let lastProgress = performance.now();
  const overBudget = () => performance.now() - t0 > opts.budgetMs;

  // TCP: frames over a connection, a fresh one when dohd closes it (a frame it will not read).
  let tcp: net.Socket | null = null;
  let tcpOpen = false;
  const openTcp = () =>
    new Promise<void>((resolve) => {
      const s = net.connect({ host: opts.host, port: opts.port });
      stats.tcpConnections++;
      let buf: Buffer = Buffer.alloc(0);
      s.on('data', (d: Buffer) => {
        buf = buf.length ? Buffer.concat([buf, d]) : d;
        while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          stats.tcpReplies++;
          checkReply(buf.subarray(2, 2 + buf.readUInt16BE(0)));
          buf = buf.subarray(2 + buf.readUInt16BE(0));
        }
      });
      s.on('error', () => {});
      s.on('close', () => {
        if (tcp === s) tcpOpen = false;
      });
      s.on('connect', () => {
        tcp = s;
        tcpOpen = true;
        resolve();
      });
      setTimeout(resolve, 2000).unref();
    });

  try {
    while (!overBudget() && (stats.udpSent < opts.udpPackets || stats.tcpSent < opts.tcpFrames)) {
      if (stats.udpSent < opts.udpPackets) {
        for (let i = 0; i < batch; i++) {
          noise.send(mutatedPacket(rng));
          stats.udpSent++;
        }
      }
      if (stats.tcpSent < opts.tcpFrames) {
        if (!tcpOpen) await openTcp();
        const frames: Buffer[] = [];
        let lied = false;
        const n = Math.max(1, Math.round((batch * opts.tcpFrames) / Math.max(1, opts.udpPackets)));
        for (let i = 0; i < n; i++) {
          const p = mutatedPacket(rng);
          const len = Buffer.alloc(2);
          // Now and then a length prefix that lies (dohd waits for bytes that never come, or reads the next frame as part of this one).
          const lie = rng.int(200) === 0;
          lied ||= lie;
          len.writeUInt16BE(lie ? rng.int(0x10000) : p.length);
          frames.push(len, p);
          stats.tcpSent++;
        }
        if (tcpOpen && tcp) (tcp as net.Socket).write(Buffer.concat(frames));
        // After a lying frame the stream is out of step for good: the next batch starts on a new connection
        // (this one is left for dohd to time out), as does one batch in fifty.
        if ((lied || rng.int(50) === 0) && tcp) {
          const old = tcp as net.Socket;
          tcpOpen = false;
          tcp = null;
          if (!lied) old.destroy();
          else setTimeout(() => old.destroy(), 6000).unref();
        }
      }
      await valid();
      if (opts.progress && performance.now() - lastProgress > 1000) {
        lastProgress = performance.now();
        stats.ms = performance.now() - t0;
        opts.progress(stats);
      }
    }
    // Last, a valid query over TCP too.
    await valid();
  } finally {
    (tcp as net.Socket | null)?.destroy();
    noise.close();
    checker.close();
  }
  stats.ms = performance.now() - t0;
  return stats;
}
