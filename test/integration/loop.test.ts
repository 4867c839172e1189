/**
 * The loop guard: an upstream that is dohd's own listener is refused at start-up, and an
 * upstream that forwards back to dohd (here: a DoH server that re-asks dohd over UDP, as
 * a resolver configured to use dohd would) is found by the start-up probe, logged, kept
 * out of the race and reported to readiness.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import dgram from 'node:dgram';
import type dnsPacket from 'dns-packet';
import { queryUdp, type DnsResult } from '../fixtures/dns-client.js';
import { startDaemon, type RunningDaemon } from '../fixtures/daemon.js';
import { startDohServer, type DohServer } from '../fixtures/doh-server.js';
import { makePki, type Pki } from '../fixtures/pki.js';
import { listeningPort, spawnCli, type Spawned } from '../fixtures/spawn.js';
import { ConfigError, validateConfig } from '../../src/config/load.js';
import { reaches } from '../../src/stages/loop/self-address.js';
import { PROBE_SUFFIX } from '../../src/stages/loop/probe.js';

let pki: Pki;
let good: DohServer;
let loopy: DohServer;
let d: RunningDaemon | undefined;
let child: Spawned | undefined;

/** Where the looping server sends every query it gets (dohd's UDP port, once known). */
let loopTarget: number | undefined;
const backlog: dnsPacket.Packet[] = [];
const requeries: Promise<DnsResult | null>[] = [];

function requery(q: dnsPacket.Packet): void {
  const question = q.questions?.[0];
  if (!question) return;
  if (loopTarget === undefined) {
    backlog.push(q);
    return;
  }
  requeries.push(queryUdp({ port: loopTarget, name: question.name, type: question.type, timeoutMs: 3000 }).catch(() => null));
}

function loopTo(port: number): void {
  loopTarget = port;
  for (const q of backlog.splice(0)) requery(q);
}

const probesSeenBy = (s: DohServer) => s.queries.filter((q) => q.questions?.[0]?.name.endsWith(`.${PROBE_SUFFIX}`));

async function until<T>(what: string, f: () => T | undefined | false, timeoutMs = 8000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function freePort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

beforeAll(async () => {
  pki = await makePki();
  good = await startDohServer({ pki, name: 'good' });
  loopy = await startDohServer({ pki, name: 'loopy' });
});
afterAll(async () => {
  await Promise.all([good.close(), loopy.close()]);
  await pki.cleanup();
});
afterEach(async () => {
  await d?.stop();
  d = undefined;
  await child?.kill();
  child = undefined;
  await Promise.all(requeries.splice(0));
  loopTarget = undefined;
  backlog.length = 0;
  loopy.onQuery = undefined;
  good.reset();
  loopy.reset();
});

describe('an upstream that is dohd itself is refused', () => {
  it('an upstream URL or bootstrap address equal to a listen address, naming the key', async () => {
    const port = await freePort();
    const err = (input: unknown) => {
      try {
        validateConfig(input);
      } catch (e) {
        return e as ConfigError;
      }
      return null;
    };
    const direct = err({ listen: [`127.0.0.1:${port}`], upstreams: [{ url: `https://127.0.0.1:${port}/dns-query` }] });
    expect(direct).toBeInstanceOf(ConfigError);
    expect(direct!.message).toContain(`upstreams[0].url: https://127.0.0.1:${port}/dns-query is dohd's own listening address 127.0.0.1:${port}`);
    const boot = err({ listen: [`[::1]:${port}`], upstreams: [{ url: good.url }, { url: `https://doh.test:${port}/dns-query`, bootstrap: ['192.0.2.1', '::1'] }] });
    expect(boot!.problems).toEqual([`upstreams[1].bootstrap[1]: ::1 (port ${port}) is dohd's own listening address [::1]:${port}: queries would come straight back (a forwarding loop)`]);
    // A wildcard listener covers the whole loopback range and IPv4-mapped forms.
    expect(err({ listen: [`0.0.0.0:${port}`], upstreams: [{ url: `https://127.0.0.9:${port}/dns-query` }] })!.message).toContain('upstreams[0].url');
    expect(err({ listen: [`127.0.0.1:${port}`], upstreams: [{ url: `https://[::ffff:127.0.0.1]:${port}/dns-query` }] })!.message).toContain('upstreams[0].url');
    // Same address, other port (DoH on 443 vs DNS on 53): no loop.
    expect(err({ listen: [`127.0.0.1:${port}`], upstreams: [{ url: 'https://127.0.0.1/dns-query' }] })).toBeNull();
  });

  it('address matching: wildcards, families, ports', () => {
    const local = new Set(['192.0.2.7', '2001:db8::7']);
    expect(reaches({ host: '0.0.0.0', port: 53, family: 4 }, { host: '192.0.2.7', port: 53 }, local)).toBe(true);
    expect(reaches({ host: '0.0.0.0', port: 53, family: 4 }, { host: '192.0.2.8', port: 53 }, local)).toBe(false);
    expect(reaches({ host: '::', port: 53, family: 6 }, { host: '2001:db8::7', port: 53 }, local)).toBe(true);
    expect(reaches({ host: '::', port: 53, family: 6 }, { host: '127.0.0.1', port: 53 }, local)).toBe(false); // dohd binds IPv6 only
    expect(reaches({ host: '127.0.0.1', port: 53, family: 4 }, { host: '0.0.0.0', port: 53 }, local)).toBe(true);
    expect(reaches({ host: '127.0.0.1', port: 53, family: 4 }, { host: '127.0.0.2', port: 53 }, local)).toBe(false);
    expect(reaches({ host: '127.0.0.1', port: 0, family: 4 }, { host: '127.0.0.1', port: 0 }, local)).toBe(false);
  });

  it('check-config says so in one line, exit 2', async () => {
    const port = await freePort();
    const c = spawnCli(['check-config', '--listen', `127.0.0.1:${port}`, '--upstream', `https://127.0.0.1:${port}/dns-query`]);
    const exit = await c.exited;
    expect(exit.code).toBe(2);
    expect(c.stderr.trim().split('\n')).toHaveLength(1);
    expect(c.stderr).toContain(`upstreams[0].url: https://127.0.0.1:${port}/dns-query is dohd's own listening address`);
  });
});

describe('a forwarding loop through another server is detected at start-up', () => {
  it('dohd (a separate process) finds the loop, answers the returning probe SERVFAIL, and stops using that upstream', async () => {
    loopy.onQuery = requery;
    child = spawnCli(['run', '--listen', '127.0.0.1:0', '--upstream', loopy.url, '--upstream', good.url, '--ca', pki.caFile]);
    const port = await listeningPort(child);
    loopTo(port);
    const line = await child.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('forwarding loop'));
    expect(line.level).toBe('error');
    expect(line.upstream).toBe(`127.0.0.1:${loopy.port}`);
    const probe = String(line.probe);
    expect(probe.endsWith(`.${PROBE_SUFFIX}`)).toBe(true);
    // The probe went out once to each upstream, came back once, and was answered SERVFAIL, not forwarded again.
    expect(probesSeenBy(loopy).length).toBe(1);
    await until("the good upstream's probe", () => probesSeenBy(good).length > 0); // sent at the same time, may land later
    expect(probesSeenBy(good).length).toBe(1);
    const back = (await Promise.all(requeries)).filter((r) => r?.response.questions?.[0]?.name.toLowerCase() === probe);
    expect(back.map((r) => r!.response.rcode)).toEqual(['SERVFAIL']);
    // Queries now go to the good upstream only: the looping one is no longer asked.
    const before = loopy.requests;
    const r = await queryUdp({ port, name: 'example.com' });
    expect(r.response.rcode).toBe('NOERROR');
    expect(loopy.requests).toBe(before);
  });

  it('in-process: readiness reports the loop; a looping-only setup answers SERVFAIL at once instead of amplifying', async () => {
    loopy.onQuery = requery;
    d = await startDaemon({ upstreams: [{ url: loopy.url, ca: pki.caFile }], loopProbe: true, timeoutMs: 2000 });
    loopTo(d.port);
    const status = await until('a loop', () => (d!.daemon.loopGuard.status().state === 'loop' ? d!.daemon.loopGuard.status() : undefined));
    expect(d.daemon.loopGuard.ok).toBe(false);
    expect(status.loops).toHaveLength(1);
    expect(status.loops[0]!.upstream).toBe(`127.0.0.1:${loopy.port}`);
    expect(status.loops[0]!.transport).toBe('udp');
    // /readyz says so.
    const ready = await d.daemon.readiness();
    expect(ready.ready).toBe(false);
    expect(ready.detail).toContain(`forwarding loop through 127.0.0.1:${loopy.port}`);
    const before = loopy.requests;
    const r = await queryUdp({ port: d.port, name: 'www.example.com' });
    expect(r.response.rcode).toBe('SERVFAIL');
    expect(r.ms).toBeLessThan(1000); // at once, not at the deadline
    expect(loopy.requests).toBe(before);
    expect(d.logs.some((l) => l.msg === 'upstream failed' && l.reason === 'loop')).toBe(true);
  });

  it('no loop: the probe is answered, readiness is clear, and nothing is excluded', async () => {
    d = await startDaemon({ upstreams: [{ url: good.url, ca: pki.caFile }], loopProbe: true });
    await until('probe done', () => d!.daemon.loopGuard.status().state === 'clear');
    expect(d.daemon.loopGuard.ok).toBe(true);
    expect(probesSeenBy(good).length).toBe(1);
    expect(probesSeenBy(good)[0]!.questions![0]!.type).toBe('HINFO');
    const r = await queryUdp({ port: d.port, name: 'example.com' });
    expect(r.response.rcode).toBe('NOERROR');
    // Only a probe's own question is one: its name asked for an A record is forwarded like any name...
    const probe = probesSeenBy(good)[0]!.questions![0]!.name;
    const asA = await queryUdp({ port: d.port, name: probe, type: 'A' });
    expect(asA.response.rcode).toBe('NXDOMAIN'); // the upstream's answer
    expect(good.queries.filter((q) => q.questions?.[0]?.name === probe && q.questions[0].type === 'A')).toHaveLength(1);
    expect(d.daemon.loopGuard.ok).toBe(true);
    // ...while the probe itself coming in (in any letter case) is the loop: SERVFAIL, not forwarded.
    const asked = good.requests;
    const back = await queryUdp({ port: d.port, name: probe.toUpperCase(), type: 'HINFO' });
    expect(back.response.rcode).toBe('SERVFAIL');
    expect(good.requests).toBe(asked);
    expect(d.daemon.loopGuard.ok).toBe(false);
  });

  it('loopProbe: false sends no probe', async () => {
    d = await startDaemon({ upstreams: [{ url: good.url, ca: pki.caFile }], loopProbe: false });
    await new Promise((r) => setTimeout(r, 300));
    expect(good.requests).toBe(0);
    expect(d.daemon.loopGuard.status().state).toBe('idle');
  });
});
