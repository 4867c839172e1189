/**
 * Every TLS failure mode of test/fixtures/tls-faults.ts against the real CLI (a child
 * process, as under systemd): the same upstream fails the same way three times in a row, mode
 * after mode, alone and raced beside a healthy upstream. The process must answer every query
 * and still be running after each; it stops cleanly at the end with nothing on stderr that
 * looks like a crash. (test/integration/tls-faults.test.ts checks the answers in detail.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { queryTcp, queryUdp } from '../fixtures/dns-client.js';
import { startDohUpstream, stopDohUpstream, type DohServer } from '../fixtures/doh-server.js';
import type { Pki } from '../fixtures/pki.js';
import { listeningPort, spawnCli, type Spawned } from '../fixtures/spawn.js';
import { startTlsFaultUpstream, TLS_FAULTS, TLS_REFUSED, type TlsFaultUpstream } from '../fixtures/tls-faults.js';

const ATTEMPTS = 3;

let faulty: TlsFaultUpstream;
let healthy: { pki: Pki; doh: DohServer };

beforeAll(async () => {
  [faulty, healthy] = await Promise.all([startTlsFaultUpstream(), startDohUpstream({ name: 'healthy' })]);
}, 60_000);
afterAll(async () => {
  await Promise.all([faulty?.close(), healthy && stopDohUpstream(healthy)]);
});

async function start(raced: boolean): Promise<{ dohd: Spawned; port: number }> {
  const file = join(faulty.pki.dir, `tls-${raced ? 'raced' : 'alone'}.yaml`);
  const up = (url: string, ca: string, name: string, bootstrap = true) =>
    `  - url: ${url}\n${bootstrap ? '    bootstrap: [127.0.0.1]\n' : ''}    ca: ${ca}\n    name: ${name}\n`;
  writeFileSync(
    file,
    `listen: ["127.0.0.1:0"]\nadmin: false\nloopProbe: false\ntimeoutMs: 1500\nupstreams:\n${up(faulty.url, faulty.pki.caFile, 'faulty')}${
      raced ? up(healthy.doh.url, healthy.pki.caFile, 'healthy', false) : ''
    }`,
  );
  const dohd = spawnCli(['run', '--config', file]);
  return { dohd, port: await listeningPort(dohd) };
}

describe('every TLS failure mode, three times in a row, against the real CLI', () => {
  for (const raced of [false, true]) {
    it(`${raced ? 'raced beside a healthy upstream' : 'alone'}: every query answered, the process lives on`, async () => {
      const d = await start(raced);
      let q = 0;
      try {
        for (const mode of ['ok' as const, ...TLS_FAULTS, 'ok' as const]) {
          faulty.setMode(mode, true);
          for (let i = 0; i < ATTEMPTS; i++) {
            // Names that do not exist: NXDOMAIN is the upstream's (right) answer.
            const r = await (i % 2 ? queryTcp : queryUdp)({ port: d.port, name: `cli-${raced ? 'r' : 'a'}-${++q}.example.com`, timeoutMs: 5000 });
            const want = raced || !TLS_REFUSED.has(mode) ? 'NXDOMAIN' : 'SERVFAIL';
            // A mode's first query alone may still find the last mode's connection gone: SERVFAIL is then allowed once.
            if (!raced && mode === 'ok' && i === 0) expect(r.response.rcode).toMatch(/NXDOMAIN|SERVFAIL/);
            else expect(r.response.rcode, `${mode} attempt ${i + 1}`).toBe(want);
            expect(d.dohd.child.exitCode, `dohd exited during ${mode} attempt ${i + 1}: ${d.dohd.stderr}`).toBeNull();
          }
        }
      } finally {
        faulty.setMode('ok', true);
        const exit = await d.dohd.kill('SIGTERM');
        expect(d.dohd.stderr).not.toMatch(/AssertionError|RangeError|TypeError|uncaught|unexpected error/i);
        expect(exit.code).toBe(0);
      }
      // Nothing at error level: no transport had to be rebuilt, no query met a bug.
      expect(d.dohd.stdout.filter((l) => /"level":(50|60|"error"|"fatal")/.test(l))).toEqual([]);
    }, 120_000);
  }
});
