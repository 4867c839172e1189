/**
 * The loop guard: an upstream that is dohd's own listener is refused at start-up, and an
 * upstream that forwards back to dohd (here: a DoH server that re-asks dohd over UDP, as
 * a resolver configured to use dohd would) is found by the start-up probe, logged, kept
 * out of the race and reported to readiness.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { queryUdp } from '../fixtures/dns-client.js';
import type { RunningDaemon } from '../fixtures/daemon.js';
import { useDohPair } from '../fixtures/doh-pair.js';
import type { DohServer } from '../fixtures/doh-server.js';
import { until } from '../fixtures/resources.js';
import { loopBack } from '../fixtures/loop-back.js';
import { ConfigError, validateConfig } from '../../src/config/load.js';
import { reaches } from '../../src/config/self-address.js';
import { PROBE_SUFFIX } from '../../src/stages/loop/probe.js';

const pair = useDohPair(['good', 'loopy']);
let good: DohServer;
let loopy: DohServer;
let d: RunningDaemon | undefined;

const { requery, loopTo, reset: resetLoop } = loopBack();

const probesSeenBy = (s: DohServer) => s.queries.filter((q) => q.questions?.[0]?.name.endsWith(`.${PROBE_SUFFIX}`));

/** A port number for configurations that are only validated (nothing binds it). */
const SOME_PORT = 5353;

beforeAll(() => {
  [good, loopy] = pair.servers;
});
afterEach(async () => {
  await d?.stop(); // before the requeries are awaited; useDohPair resets the servers
  d = undefined;
  await resetLoop();
  loopy.onQuery = undefined;
});

describe('an upstream that is dohd itself is refused', () => {
  it('an upstream URL or bootstrap address equal to a listen address, naming the key', async () => {
    const port = SOME_PORT;
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
});

describe('a forwarding loop through another server is detected at start-up', () => {
  // dohd as a separate process: test/e2e/loop-cli.test.ts.

  it('in-process: readiness reports the loop; a looping-only setup answers SERVFAIL at once instead of amplifying', async () => {
    loopy.onQuery = requery;
    d = await pair.start({ upstreams: [{ url: loopy.url, ca: pair.pki.caFile }], loopProbe: true, timeoutMs: 2000 });
    loopTo(d.port);
    const status = await until(() => (d!.daemon.loopGuard.status().state === 'loop' ? d!.daemon.loopGuard.status() : undefined), 8000, 'a loop');
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
    d = await pair.start({ upstreams: [{ url: good.url, ca: pair.pki.caFile }], loopProbe: true });
    await until(() => d!.daemon.loopGuard.status().state === 'clear', 8000, 'probe done');
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
    d = await pair.start({ upstreams: [{ url: good.url, ca: pair.pki.caFile }], loopProbe: false });
    // A probe goes out at start-up: by the time a query has been answered after it, it would be counted.
    await queryUdp({ port: d.port, name: 'example.com' });
    expect(good.requests).toBe(1);
    expect(probesSeenBy(good)).toEqual([]);
    expect(d.daemon.loopGuard.status().state).toBe('idle');
  });
});
