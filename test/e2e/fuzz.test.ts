/**
 * The seeded network fuzzer (bench/fuzz.ts) against the real CLI, inside `npm test`: mutated
 * packets over UDP and mutated frames over TCP (issue 18 item 7), with a valid query after
 * every batch. It asserts:
 * - the process lives through it and stops cleanly (exit 0);
 * - nothing is logged at error level (no transport restart, no internal error);
 * - every interleaved valid query gets the right answer;
 * - every reply decodes and is a response;
 * - RSS stays within bounds.
 *
 * Targets: 100,000 UDP packets and 20,000 TCP frames (FUZZ_UDP, FUZZ_TCP), under a time
 * budget (FUZZ_BUDGET_MS, default 90 s) so a slow machine still finishes: the counts reached are
 * printed, and FUZZ_STRICT=1 (CI) fails the test when the targets were not reached. The seed
 * is printed; FUZZ_SEED replays a run. `npm run fuzz` is the long run (docs/fuzz.md).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fuzz, fuzzConfig, fuzzOptions, fuzzRunFromEnv } from '../../bench/fuzz.js';
import { rssOf } from '../../bench/proc.js';
import { startDohUpstream, stopDohUpstream, type DohServer } from '../fixtures/doh-server.js';
import type { Pki } from '../fixtures/pki.js';
import { listeningPort, spawnCli, type Spawned } from '../fixtures/spawn.js';

const RUN = fuzzRunFromEnv({ udpPackets: 100_000, tcpFrames: 20_000, budgetMs: 90_000 });
const STRICT = process.env.FUZZ_STRICT === '1';
/** Resident memory bound, MB: a settled dohd uses ~60-130 MB; the cache is bounded by its config. */
const RSS_LIMIT_MB = 400;

let up: { pki: Pki; doh: DohServer };
let dohd: Spawned;
let port: number;

beforeAll(async () => {
  up = await startDohUpstream({ name: 'up' });
  const file = join(up.pki.dir, 'fuzz.yaml');
  writeFileSync(file, fuzzConfig({ url: up.doh.url, ca: up.pki.caFile }));
  dohd = spawnCli(['run', '--config', file]);
  port = await listeningPort(dohd);
});
afterAll(async () => {
  if (dohd && dohd.child.exitCode === null) await dohd.kill('SIGKILL');
  await stopDohUpstream(up);
});

describe('fuzz', () => {
  it(`seeded mutated packets over UDP and TCP: no crash, no error logged, valid queries answered right, RSS bounded`, async () => {
    console.log(`fuzz: seed ${RUN.seed} (replay with FUZZ_SEED=${RUN.seed})`);
    const pid = dohd.child.pid!;
    const rss: number[] = [rssOf(pid)];
    const stats = await fuzz(fuzzOptions(RUN, port, () => rss.push(rssOf(pid))));
    rss.push(rssOf(pid));
    console.log(
      `fuzz: seed ${stats.seed}: ${stats.udpSent} UDP packets (${stats.udpReplies} replies), ${stats.tcpSent} TCP frames (${stats.tcpReplies} replies, ${stats.tcpConnections} connections), ` +
        `${stats.validRight}/${stats.validAsked} valid queries right, ${Math.round(stats.ms)} ms, RSS max ${Math.round(Math.max(...rss))} MB`,
    );
    expect(dohd.child.exitCode, `dohd exited: ${dohd.stderr}`).toBeNull();
    expect(stats.validWrong).toEqual([]);
    expect(stats.validRight).toBe(stats.validAsked);
    expect(stats.badReplies).toBe(0);
    // Something was sent and answered; a fraction of it at least.
    expect(stats.udpSent).toBeGreaterThan(1000);
    expect(stats.udpReplies).toBeGreaterThan(stats.udpSent / 10);
    expect(stats.tcpReplies).toBeGreaterThan(0);
    if (STRICT) {
      expect(stats.udpSent).toBeGreaterThanOrEqual(RUN.udpPackets);
      expect(stats.tcpSent).toBeGreaterThanOrEqual(RUN.tcpFrames);
    }
    expect(Math.max(...rss)).toBeLessThan(RSS_LIMIT_MB);

    const exit = await dohd.kill('SIGTERM');
    expect(exit.code).toBe(0);
    expect(dohd.stderr).not.toMatch(/AssertionError|RangeError|TypeError|uncaught/i);
    const errors = dohd.stdout.filter((l) => /"level":(50|60|"error"|"fatal")/.test(l));
    expect(errors).toEqual([]);
  }, RUN.budgetMs + 60_000);
});
