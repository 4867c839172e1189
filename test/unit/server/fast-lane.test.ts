/**
 * The fast lane, without sockets: stages that decide synchronously answer without a promise,
 * each stage runs once whichever way the query goes, the deadline exists only once a stage
 * waits, and overload refuses only what would wait.
 */
import { describe, expect, it } from 'vitest';
import dnsPacket from 'dns-packet';
import { AnswerCache } from '../../../src/stages/cache/answer-cache.js';
import { Rcode } from '../../../src/dns/wire.js';
import { decodeQuery } from '../../../src/dns/message.js';
import { CacheStage, keyFor } from '../../../src/stages/cache/stage.js';
import { Pipeline } from '../../../src/pipeline/pipeline.js';
import { PinsStage, buildPins } from '../../../src/stages/pins/stage.js';
import { PolicyStage } from '../../../src/stages/admission/stage.js';
import { PASS, WAIT, type Context, type Decision, type Next, type Result, type Stage } from '../../../src/pipeline/types.js';
import { QueryHandler } from '../../../src/server/handler.js';
import { answerCacheOptions, cacheStageOptions, defaultConfig, policyOptions } from '../../fixtures/config-defaults.js';

const client = { address: '127.0.0.1', port: 5353 };

interface Reply {
  id: number;
  rcode: string;
  questions: { name: string }[];
  answers: { data: unknown }[];
}
const decode = (b: unknown) => dnsPacket.decode(b as Buffer) as unknown as Reply;

function query(name: string, id = 7): Buffer {
  return dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type: 'A', class: 'IN' }] });
}

/** An upstream stand-in at the end of the pipeline: answers when told to, counts calls. */
class Upstream implements Stage {
  readonly name = 'upstream';
  calls = 0;
  signals: AbortSignal[] = [];
  private waiting: (() => void)[] = [];
  constructor(private readonly hold = false) {}
  decide(): Decision {
    return WAIT;
  }
  wait(ctx: Context): Promise<Result> {
    this.calls++;
    this.signals.push(ctx.signal);
    const wire = dnsPacket.encode({
      type: 'response',
      id: 0,
      flags: 0x8180,
      questions: [{ name: ctx.query.name, type: 'A', class: 'IN' }],
      answers: [{ name: ctx.query.name, type: 'A', ttl: 300, data: '192.0.2.9' }],
    });
    const result: Result = { wire, source: 'upstream', rcode: 0, packet: dnsPacket.decode(wire) };
    if (!this.hold) return Promise.resolve(result);
    return new Promise((resolve) => this.waiting.push(() => resolve(result)));
  }
  release(): void {
    for (const w of this.waiting.splice(0)) w();
  }
}

function daemonLike(opts: { hold?: boolean; maxInflight?: number } = {}) {
  const policy = new PolicyStage(policyOptions({ acl: ['127.0.0.0/8'], rateLimit: { qps: 0, maxClients: 10 } }));
  const pins = new PinsStage(buildPins({ pins: { 'pinned.example.net': ['192.0.2.53'] }, pinTtl: 60 }));
  const cache = new CacheStage(new AnswerCache(answerCacheOptions({ maxEntries: 100, staleWindow: 0 })), cacheStageOptions({ prefetchHits: 0 }));
  const upstream = new Upstream(opts.hold);
  const pipeline = new Pipeline([policy, pins, cache, upstream]);
  const handler = new QueryHandler({ pipeline, timeoutMs: 2000, maxInflight: opts.maxInflight ?? defaultConfig().maxInflight });
  return { policy, pins, cache, upstream, handler };
}

describe('the handler fast lane', () => {
  it('answers a cache hit, a pin and a refusal without a promise; a miss through one', async () => {
    const d = daemonLike();
    const miss = d.handler.answer(query('example.com'), 'udp', client);
    expect(miss).toBeInstanceOf(Promise);
    const first = decode(await miss);
    expect(first.answers[0]!.data).toBe('192.0.2.9');
    const hit = d.handler.answer(query('EXAMPLE.com', 8), 'udp', client);
    expect(Buffer.isBuffer(hit)).toBe(true);
    const decoded = decode(hit);
    expect(decoded.id).toBe(8);
    expect(decoded.questions[0]!.name).toBe('EXAMPLE.com');
    expect(decoded.answers[0]!.data).toBe('192.0.2.9');
    const pin = d.handler.answer(query('pinned.example.net'), 'tcp', client);
    expect(decode(pin).answers[0]!.data).toBe('192.0.2.53');
    const refused = d.handler.answer(query('example.com'), 'udp', { address: '192.0.2.1', port: 53 });
    expect(decode(refused).rcode).toBe('REFUSED');
    expect(d.upstream.calls).toBe(1);
    expect(d.cache.hits).toBe(1);
    expect(d.cache.misses).toBe(1);
    expect(d.policy.counters.refused).toBe(1);
    expect(d.handler.inflight).toBe(0);
  });

  it('hits are patched in place, each in its own copy: IDs, letter case and EDNS never leak between answers or into the cache', async () => {
    const d = daemonLike();
    await d.handler.answer(query('shared.example.net'), 'udp', client);
    const asked = [
      { name: 'SHARED.example.net', id: 1 },
      { name: 'shared.example.net', id: 2 },
      { name: 'shared.example.net', id: 3 },
    ];
    const replies = asked.map(({ name, id }) => d.handler.answer(query(name, id), 'udp', client) as Buffer);
    const withEdns = d.handler.answer(
      dnsPacket.encode({ type: 'query', id: 4, questions: [{ name: 'Shared.example.net', type: 'A', class: 'IN' }], additionals: [{ name: '.', type: 'OPT', udpPayloadSize: 1232 } as dnsPacket.Answer] }),
      'udp',
      client,
    ) as Buffer;
    // Read only after all were answered: a buffer shared with a later answer would show its ID or case.
    replies.forEach((r, i) => {
      const got = decode(r);
      expect(got.id).toBe(asked[i]!.id);
      expect(got.questions[0]!.name).toBe(asked[i]!.name);
      expect(got.answers[0]!.data).toBe('192.0.2.9');
    });
    const e = dnsPacket.decode(withEdns);
    expect(e.id).toBe(4);
    expect(e.questions![0]!.name).toBe('Shared.example.net');
    expect(e.additionals!.map((a) => a.type)).toEqual(['OPT']);
    // The cached entry itself still reads as the upstream wrote it.
    const decoded = decodeQuery(query('shared.example.net'));
    if (!decoded.ok) throw new Error(decoded.reason);
    const entry = d.cache.cache.peek(keyFor({ query: decoded.query } as Context));
    expect(entry).toBeDefined();
    expect(decode(Buffer.from(entry!.wire, 'latin1')).questions[0]!.name).toBe('shared.example.net');
    expect(d.upstream.calls).toBe(1);
  });

  it('a miss looks the cache up once, a hit once', async () => {
    const d = daemonLike();
    const cache = d.cache.cache;
    const lookup = cache.lookup.bind(cache);
    let lookups = 0;
    cache.lookup = (key: string) => (lookups++, lookup(key));
    await d.handler.answer(query('once.example.net'), 'udp', client);
    expect(lookups).toBe(1);
    expect(d.cache.misses).toBe(1);
    d.handler.answer(query('once.example.net'), 'udp', client);
    expect(lookups).toBe(2);
    expect(d.cache.hits).toBe(1);
  });

  it('a query that waits gets a deadline signal, aborted once it is answered; one that does not never gets one', async () => {
    const d = daemonLike();
    await d.handler.answer(query('a.example.net'), 'udp', client);
    expect(d.upstream.signals).toHaveLength(1);
    expect(d.upstream.signals[0]!.aborted).toBe(true);
    d.handler.answer(query('a.example.net'), 'udp', client);
    expect(d.upstream.signals).toHaveLength(1);
  });

  it('past maxInflight, what would wait gets SERVFAIL at once while hits and pins are still answered', async () => {
    const d = daemonLike({ hold: true, maxInflight: 1 });
    const stuck = d.handler.answer(query('slow.example.net'), 'udp', client) as Promise<Buffer | null>;
    expect(d.handler.inflight).toBe(1);
    const refused = d.handler.answer(query('other.example.net'), 'udp', client);
    expect(Buffer.isBuffer(refused)).toBe(true);
    expect(decode(refused).rcode).toBe('SERVFAIL');
    expect(d.upstream.calls).toBe(1);
    expect(decode(d.handler.answer(query('pinned.example.net'), 'udp', client)).rcode).toBe('NOERROR');
    d.upstream.release();
    expect(decode(await stuck).answers[0]!.data).toBe('192.0.2.9');
    expect(d.handler.inflight).toBe(0);
    // The held answer is cached now: a hit, even at the limit.
    const blocker = d.handler.answer(query('slow2.example.net'), 'udp', client) as Promise<Buffer | null>;
    const hit = d.handler.answer(query('slow.example.net'), 'udp', client);
    expect(decode(hit).rcode).toBe('NOERROR');
    d.upstream.release();
    await blocker;
  });
});

describe('Pipeline.start', () => {
  function stage(name: string, decide: (ctx: Context) => Decision, log: string[]): Stage {
    return {
      name,
      decide(ctx: Context) {
        log.push(`${name}:decide`);
        return decide(ctx);
      },
      async wait(ctx: Context, next: Next) {
        log.push(`${name}:wait`);
        return next(ctx);
      },
    };
  }
  const ctx = { query: {} as Context['query'], transport: 'udp', client, signal: new AbortController().signal, received: 0 } satisfies Context;
  const answer: Result = { wire: Buffer.alloc(12), source: 'policy', rcode: Rcode.REFUSED };

  it('runs each stage once: decides synchronously, waits from the first stage that has to', async () => {
    const log: string[] = [];
    let waited = 0;
    const p = new Pipeline([
      stage('a', () => PASS, log),
      stage('b', () => WAIT, log),
      stage('c', () => PASS, log),
      { name: 'end', decide: () => WAIT, wait: async () => (log.push('end'), answer) },
    ]);
    const r = p.start(ctx, () => (waited++, undefined));
    expect(r).toBeInstanceOf(Promise);
    expect(await r).toBe(answer);
    expect(log).toEqual(['a:decide', 'b:decide', 'b:wait', 'c:decide', 'end']);
    expect(waited).toBe(1);
  });

  it('a synchronous answer ends it without waiting; a refusal from beforeWait is the answer', async () => {
    const log: string[] = [];
    const p = new Pipeline([stage('a', () => PASS, log), stage('b', () => answer, log), stage('c', () => WAIT, log)]);
    let waited = 0;
    expect(p.start(ctx, () => (waited++, undefined))).toBe(answer);
    expect(waited).toBe(0);
    const p2 = new Pipeline([stage('a', () => PASS, log), stage('c', () => WAIT, log)]);
    log.length = 0;
    expect(p2.start(ctx, () => answer)).toBe(answer);
    expect(log).toEqual(['a:decide', 'c:decide']);
  });
});
