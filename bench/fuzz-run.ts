/**
 * `npm run fuzz`: the long fuzz run (issue 18 item 7). A loopback DoH upstream, the real CLI
 * (dist/cli.js) in a child process, and bench/fuzz.ts sending 1,000,000 mutated UDP packets and
 * 200,000 TCP frames (FUZZ_UDP, FUZZ_TCP; FUZZ_SEED replays a run; FUZZ_BUDGET_MS caps it,
 * default one hour). Prints the seed first, progress every 10 s, then a summary line for
 * docs/fuzz.md. Exits 1 if dohd died, logged at error level, answered a valid query wrong or
 * sent a reply that does not decode.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { startDohUpstream, stopDohUpstream } from '../test/fixtures/doh-server.js';
import { fuzz, fuzzConfig, fuzzOptions, fuzzRunFromEnv } from './fuzz.js';
import { rssOf } from './proc.js';

const RUN = fuzzRunFromEnv({ udpPackets: 1_000_000, tcpFrames: 200_000, budgetMs: 3_600_000 });

async function main(): Promise<void> {
  console.log(`fuzz: seed ${RUN.seed} (replay: FUZZ_SEED=${RUN.seed} npm run fuzz)`);
  const up = await startDohUpstream({ name: 'up' });
  const file = join(up.pki.dir, 'fuzz.yaml');
  writeFileSync(file, fuzzConfig({ url: up.doh.url, ca: up.pki.caFile }));
  const child = spawn(process.execPath, [resolve('dist/cli.js'), 'run', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let stderr = '';
  let partial = '';
  child.stdout.on('data', (d: Buffer) => {
    const parts = (partial + d.toString()).split('\n');
    partial = parts.pop()!;
    lines.push(...parts);
  });
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const port = await new Promise<number>((res, rej) => {
    const t = setInterval(() => {
      for (const l of lines) {
        if (l.includes('"dohd listening"')) {
          clearInterval(t);
          const first = (JSON.parse(l).listen as string[])[0]!;
          res(Number(first.slice(first.lastIndexOf(':') + 1)));
        }
      }
      if (child.exitCode !== null) rej(new Error(`dohd exited: ${stderr}`));
    }, 50);
  });
  const rss: number[] = [];
  let last = 0;
  const stats = await fuzz(
    fuzzOptions(RUN, port, (s) => {
      rss.push(rssOf(child.pid!));
      if (s.ms - last >= 10_000) {
        last = s.ms;
        console.log(`fuzz: ${Math.round(s.ms / 1000)} s: ${s.udpSent} UDP, ${s.tcpSent} TCP, ${s.validRight}/${s.validAsked} valid right, RSS ${Math.round(rss[rss.length - 1]!)} MB`);
      }
    }),
  );
  const alive = child.exitCode === null;
  child.kill('SIGTERM');
  const code = await new Promise<number | null>((r) => (child.exitCode !== null ? r(child.exitCode) : child.once('exit', (c) => r(c))));
  await stopDohUpstream(up);
  const errors = lines.filter((l) => /"level":(50|60)/.test(l));
  const summary = {
    date: new Date().toISOString(),
    seed: stats.seed,
    udpSent: stats.udpSent,
    udpReplies: stats.udpReplies,
    tcpSent: stats.tcpSent,
    tcpReplies: stats.tcpReplies,
    tcpConnections: stats.tcpConnections,
    valid: `${stats.validRight}/${stats.validAsked}`,
    badReplies: stats.badReplies,
    errorLines: errors.length,
    aliveAtEnd: alive,
    exitCode: code,
    seconds: Math.round(stats.ms / 1000),
    rssMb: { first: Math.round(rss[0] ?? 0), max: Math.round(Math.max(0, ...rss)), last: Math.round(rss[rss.length - 1] ?? 0) },
  };
  console.log(JSON.stringify(summary));
  for (const e of errors.slice(0, 5)) console.log(`error line: ${e}`);
  for (const w of stats.validWrong.slice(0, 5)) console.log(`wrong: ${w}`);
  const ok = alive && code === 0 && errors.length === 0 && stats.validWrong.length === 0 && stats.badReplies === 0;
  process.exit(ok ? 0 : 1);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
