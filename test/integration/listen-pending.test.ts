/**
 * A `listen` address that no interface has (yet): dohd serves on the others, says once that it
 * waits, keeps retrying every listenRetryMs, reports it in readiness, and stop() leaves no timer
 * behind. 192.0.2.77 (documentation) is on no interface here. The address appearing later is
 * tested in test/e2e/container-bridge.test.ts (it needs a network namespace).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startDohServer, type DohServer } from '../fixtures/doh-server.js';
import { memoryLog, startDaemon, type RunningDaemon } from '../fixtures/daemon.js';
import { validateConfig } from '../../src/config/load.js';
import { Daemon } from '../../src/daemon/daemon.js';
import { makePki, type Pki } from '../fixtures/pki.js';
import { countResources, leaksAfter, until } from '../fixtures/resources.js';

const MISSING = '192.0.2.77:5353';
let pki: Pki | undefined;
let doh: DohServer | undefined;
let d: RunningDaemon | undefined;

afterEach(async () => {
  await d?.stop();
  await doh?.close();
  await pki?.cleanup();
  d = doh = pki = undefined;
});

describe('listen: an address no interface has yet', () => {
  it('serves on the others, warns once while retrying, says so in readiness; stop() leaves no timer', async () => {
    pki = await makePki();
    doh = await startDohServer({ pki });
    const before = countResources();
    d = await startDaemon({ listen: ['127.0.0.1:0', MISSING], listenRetryMs: 50, upstreams: [{ url: doh.url, ca: pki.caFile }] });
    expect(d.daemon.addresses.map((a) => a.host)).toEqual(['127.0.0.1']);
    // Several retries (each one sets a new timer in the daemon's pending map).
    const pending = (d.daemon as unknown as { pending: Map<string, unknown> }).pending;
    const timers = new Set<unknown>();
    await until(() => timers.add(pending.get(MISSING)).size >= 4, 3000, 'several retries');
    const waits = d.logs.filter((l) => l.level === 'warn' && l.listen === MISSING);
    expect(waits).toHaveLength(1);
    expect(waits[0]!.msg).toContain(`cannot listen on ${MISSING}/udp: no network interface has this address yet`);
    const ready = await d.daemon.readiness();
    expect(ready.detail).toContain(`(waiting for ${MISSING} to appear)`);
    expect(ready.ready).toBe(true);
    await d.stop();
    d = undefined;
    await doh.close();
    doh = undefined;
    expect(await leaksAfter(before)).toEqual([]);
  });

  it('with only missing addresses, start-up fails with the one-line reason (dohd would answer nowhere)', async () => {
    await expect(Daemon.start(validateConfig({ listen: [MISSING], listenRetryMs: 50, loopProbe: false, admin: false }), memoryLog().log)).rejects.toThrow(
      `cannot listen on ${MISSING}/udp: no network interface has this address`,
    );
  });

  it('listenRetryMs: 0 makes it fatal, with the one-line reason', async () => {
    await expect(startDaemon({ listen: ['127.0.0.1:0', MISSING], listenRetryMs: 0 })).rejects.toThrow(
      `cannot listen on ${MISSING}/udp: no network interface has this address`,
    );
  });
});
