/**
 * The cost of a blocked path, per rung of the ladder, against the simulated censor
 * (test/fixtures/censor.ts) on loopback: never a real address. Run with `npm run bench:ladder`
 * (as root, it runs in a private network namespace with a black-holed 192.0.2.4).
 *
 * For each scenario: the first query after start (a cold ladder, no connection yet) and the
 * median and p90 of 50 cache misses once the ladder has learned, and the added latency over
 * the working path asked directly. Results: docs/ladder-benchmark.md.
 */
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { blackHole, canMakeLinks, startSniFilter } from '../test/fixtures/censor.js';
import { startDohServer } from '../test/fixtures/doh-server.js';
import { startDotServer } from '../test/fixtures/dot-server.js';
import { makePki } from '../test/fixtures/pki.js';
import { buildClientQuery } from '../src/dns/client.js';
import { decodeQuery } from '../src/dns/message.js';
import { buildUpstreamQuery } from '../src/dns/upstream-query.js';
import { buildSecureUpstream } from '../src/upstream/strategies/groups.js';
import type { UpstreamInput } from '../src/config/schema.js';
import type { Upstream } from '../src/upstream/types.js';

const ROOT = resolve(import.meta.dirname, '../..');
const N = 50;
const HOLE = '192.0.2.4';
const LADDER = { stepMs: 700, reprobeMs: 3_600_000, maxReprobeMs: 3_600_000 };

async function time(u: Upstream, name: string): Promise<number> {
  const d = decodeQuery(buildClientQuery(name, 'A').wire);
  if (!d.ok) throw new Error('query');
  const t0 = performance.now();
  await u.exchange(buildUpstreamQuery(d.query), d.query, AbortSignal.timeout(5000));
  return performance.now() - t0;
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil(xs.length * p) - 1)]!;
const r1 = (x: number) => Math.round(x * 10) / 10;

async function main(): Promise<void> {
  const pki = await makePki({ dnsNames: ['cloudflare-dns.com', 'doh.test'], ips: ['127.0.0.1', '127.0.0.2'] });
  const rogue = await makePki({ dnsNames: ['cloudflare-dns.com'], ips: [] });
  const doh = await startDohServer({ pki });
  const rogueDoh = await startDohServer({ pki: rogue });
  const dot = await startDotServer({ pki });
  const front = await startSniFilter({ host: '127.0.0.2', port: doh.port, target: { host: '127.0.0.1', port: doh.port } });
  const links = canMakeLinks();
  const hole = links ? blackHole([HOLE], 'i16bench') : undefined;
  const dotPath = { url: `tls://127.0.0.1:${dot.port}` };
  const name = 'cloudflare-dns.com';
  const scenarios: { what: string; working: string; cfg: UpstreamInput; direct: UpstreamInput }[] = [
    {
      what: 'nothing blocked (rung 1: DoH by name)',
      working: 'DoH by name',
      cfg: { url: `https://${name}:${doh.port}/dns-query`, bootstrap: ['127.0.0.1'], ca: pki.caFile, alternates: [{ url: `https://127.0.0.1:${doh.port}/dns-query` }, dotPath] },
      direct: { url: `https://${name}:${doh.port}/dns-query`, bootstrap: ['127.0.0.1'], ca: pki.caFile },
    },
    {
      what: 'SNI filter on rung 1 (b)',
      working: 'IP-literal DoH',
      cfg: { url: `https://${name}:${doh.port}/dns-query`, bootstrap: ['127.0.0.2'], ca: pki.caFile, alternates: [{ url: `https://127.0.0.2:${doh.port}/dns-query` }, dotPath] },
      direct: { url: `https://127.0.0.2:${doh.port}/dns-query`, ca: pki.caFile },
    },
    {
      what: 'untrusted CA on rung 1 (c), no IP-literal path',
      working: 'DoT',
      cfg: { url: `https://${name}:${rogueDoh.port}/dns-query`, bootstrap: ['127.0.0.1'], ca: pki.caFile, alternates: [dotPath] },
      direct: { ...dotPath, ca: pki.caFile },
    },
    ...(links
      ? [
          {
            what: 'first bootstrap IP black-holed (a), happy eyeballs',
            working: 'DoH by name, second IP',
            cfg: { url: `https://${name}:${doh.port}/dns-query`, bootstrap: [HOLE, '127.0.0.1'], ca: pki.caFile, alternates: [dotPath] },
            direct: { url: `https://${name}:${doh.port}/dns-query`, bootstrap: ['127.0.0.1'], ca: pki.caFile },
          },
          {
            what: 'rung 1 black-holed (a), no IP-literal path',
            working: 'DoT',
            cfg: { url: `https://${name}:${doh.port}/dns-query`, bootstrap: [HOLE], ca: pki.caFile, alternates: [dotPath] },
            direct: { ...dotPath, ca: pki.caFile },
          },
        ]
      : []),
  ];
  const rows: string[] = [];
  try {
    for (const s of scenarios) {
      const ladder = buildSecureUpstream(s.cfg, { ladder: LADDER });
      const direct = buildSecureUpstream(s.direct);
      try {
        const first = await time(ladder, 'first.example.com');
        await time(direct, 'warm.example.com');
        const viaLadder: number[] = [];
        const viaDirect: number[] = [];
        for (let i = 0; i < N; i++) {
          viaLadder.push(await time(ladder, `l${i}.example.com`));
          viaDirect.push(await time(direct, `d${i}.example.com`));
        }
        const added = pct(viaLadder, 0.5) - pct(viaDirect, 0.5);
        rows.push(`| ${s.what} | ${s.working} | ${r1(first)} | ${r1(pct(viaLadder, 0.5))} / ${r1(pct(viaLadder, 0.9))} | ${r1(pct(viaDirect, 0.5))} | ${r1(added)} |`);
        console.log(rows.at(-1));
      } finally {
        await Promise.all([ladder.close(), direct.close()]);
      }
    }
  } finally {
    hole?.close();
    await Promise.all([doh.close(), rogueDoh.close(), dot.close(), front.close()]);
    await Promise.all([pki.cleanup(), rogue.cleanup()]);
  }
  const md = [
    '# The cost of a blocked path (ladder benchmark)',
    '',
    `\`npm run bench:ladder\`, ${new Date().toISOString().slice(0, 10)}, loopback servers behind the simulated censor (test/fixtures/censor.ts); ladder.stepMs ${LADDER.stepMs}, happy-eyeballs stagger 250 ms. ${N} cache misses per row, each a new name.`,
    links ? '' : '\n(Not root in a private network namespace: the black-hole rows were skipped.)\n',
    '| scenario | working path | first query after start, ms | learned miss, median / p90 ms | working path asked directly, median ms | added by the ladder, ms |',
    '| --- | --- | --- | --- | --- | --- |',
    ...rows,
    '',
    'The first query pays for finding the path: a reset or a refused certificate moves on at once (one extra handshake); a black hole costs the 250 ms stagger (another IP) or `ladder.stepMs` (another path). Once learned, a miss goes straight to the working path.',
    '',
  ].join('\n');
  writeFileSync(resolve(ROOT, 'docs/ladder-benchmark.md'), md);
  console.log(`\nwrote docs/ladder-benchmark.md`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
