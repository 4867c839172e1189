/**
 * Forwarding-loop detection by the built CLI, run as its own process: one of its upstreams
 * sends every query back to it (test/fixtures/loop-back.ts). The in-process cases are in
 * test/integration/loop.test.ts.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { queryUdp } from '../fixtures/dns-client.js';
import { useDohPair } from '../fixtures/doh-pair.js';
import type { DohServer } from '../fixtures/doh-server.js';
import { loopBack } from '../fixtures/loop-back.js';
import { until } from '../fixtures/resources.js';
import { listeningPort, spawnCli, type Spawned } from '../fixtures/spawn.js';
import { PROBE_SUFFIX } from '../../src/stages/loop/probe.js';

const pair = useDohPair(['good', 'loopy']);
let good: DohServer;
let loopy: DohServer;
let child: Spawned | undefined;
const { requery, loopTo, requeries, reset: resetLoop } = loopBack();

beforeAll(() => {
  [good, loopy] = pair.servers;
});
afterEach(async () => {
  await child?.kill();
  child = undefined;
  await resetLoop();
  loopy.onQuery = undefined;
});

const probesSeenBy = (s: DohServer) => s.queries.filter((q) => q.questions?.[0]?.name.endsWith(`.${PROBE_SUFFIX}`));

describe('a forwarding loop through another server is detected at start-up', () => {
  it('dohd (a separate process) finds the loop, answers the returning probe SERVFAIL, and stops using that upstream', async () => {
    loopy.onQuery = requery;
    child = spawnCli(['run', '--listen', '127.0.0.1:0', '--upstream', loopy.url, '--upstream', good.url, '--ca', pair.pki.caFile]);
    const port = await listeningPort(child);
    loopTo(port);
    const line = await child.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('forwarding loop'));
    expect(line.level).toBe('error');
    expect(line.upstream).toBe(`127.0.0.1:${loopy.port}`);
    const probe = String(line.probe);
    expect(probe.endsWith(`.${PROBE_SUFFIX}`)).toBe(true);
    // The probe went out once to each upstream, came back once, and was answered SERVFAIL, not forwarded again.
    expect(probesSeenBy(loopy).length).toBe(1);
    await until(() => probesSeenBy(good).length > 0, 8000, "the good upstream's probe"); // sent at the same time, may land later
    expect(probesSeenBy(good).length).toBe(1);
    const back = (await Promise.all(requeries)).filter((r) => r?.response.questions?.[0]?.name.toLowerCase() === probe);
    expect(back.map((r) => r!.response.rcode)).toEqual(['SERVFAIL']);
    // Queries now go to the good upstream only: the looping one is no longer asked.
    const before = loopy.requests;
    const r = await queryUdp({ port, name: 'example.com' });
    expect(r.response.rcode).toBe('NOERROR');
    expect(loopy.requests).toBe(before);
  });
});
