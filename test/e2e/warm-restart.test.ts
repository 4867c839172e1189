/** Warm restart through the real CLI: SIGTERM saves the cache, the next start answers from it. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, writeFileSync } from 'node:fs';
import { queryUdp } from '../fixtures/dns-client.js';
import { startDohUpstream, stopDohUpstream, type DohServer } from '../fixtures/doh-server.js';
import type { Pki } from '../fixtures/pki.js';
import { listeningPort, spawnCli } from '../fixtures/spawn.js';

let pki: Pki;
let doh: DohServer;

beforeAll(async () => {
  ({ pki, doh } = await startDohUpstream());
});
afterAll(() => stopDohUpstream({ pki, doh }));

describe('dohd run with cache.file', () => {
  it('saves the cache on SIGTERM and answers from it after a restart with no upstream reachable', async () => {
    const cacheFile = `${pki.dir}/cache.bin`;
    const config = `${pki.dir}/warm.yaml`;
    writeFileSync(config, `cache:\n  file: ${cacheFile}\n`);
    const first = spawnCli(['run', '-c', config, '--listen', '127.0.0.1:0', '--upstream', doh.url, '--ca', pki.caFile]);
    try {
      const port = await listeningPort(first);
      const r = await queryUdp({ port, name: 'www.example.com' });
      expect(r.response.answers[0]!.data).toBe('192.0.2.3');
    } finally {
      expect(await first.kill('SIGTERM')).toEqual({ code: 0, signal: null });
    }
    expect(first.stdout.some((l) => l.includes('"cache saved"') && l.includes('"entries":1'))).toBe(true);
    expect(existsSync(cacheFile)).toBe(true);

    const second = spawnCli(['run', '-c', config, '--listen', '127.0.0.1:0', '--upstream', 'https://127.0.0.1:1/dns-query']);
    try {
      const port = await listeningPort(second);
      const r = await queryUdp({ port, name: 'www.example.com' });
      expect(r.response.answers.map((x) => x.data)).toEqual(['192.0.2.3']);
      expect(second.stdout.some((l) => l.includes('"cache loaded"') && l.includes('"loaded":1'))).toBe(true);
    } finally {
      await second.kill('SIGTERM');
    }
  });
});
