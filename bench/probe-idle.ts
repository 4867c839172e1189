import { fork, spawn } from 'node:child_process';
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { makePki } from '../test/fixtures/pki.js';
const ROOT = resolve(import.meta.dirname, '../..');
const pki = await makePki();
const up = fork(join(import.meta.dirname, 'upstream-server.js'), [pki.certFile, pki.keyFile]);
const upPort = await new Promise<number>((res) => up.once('message', (m: { port: number }) => res(m.port)));
const cfg = join(mkdtempSync(join(tmpdir(), 'p-')), 'p.yaml');
writeFileSync(cfg, `listen: ["127.0.0.1:0"]\nupstreams:\n  - url: https://127.0.0.1:${upPort}/dns-query\n    ca: ${pki.caFile}\n`);
const d = spawn(process.execPath, [...(process.env.PROBE_NODE_FLAGS ?? '').split(' ').filter(Boolean), join(ROOT, 'dist/cli.js'), 'run', '--config', cfg], { stdio: ['ignore', 'pipe', 'inherit'] });
await new Promise<void>((res) => d.stdout!.on('data', (c: Buffer) => { if (String(c).includes('listening')) res(); }));
await new Promise((r) => setTimeout(r, 2000));
const smaps = readFileSync(`/proc/${d.pid}/smaps`, 'utf8');
const agg = new Map<string, number>();
let cur = '';
for (const line of smaps.split('\n')) {
  const m = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
  if (m) cur = m[1] || '[anon]';
  const r = /^Rss:\s+(\d+) kB/.exec(line);
  if (r) agg.set(cur, (agg.get(cur) ?? 0) + Number(r[1]));
}
for (const [k, v] of [...agg].sort((a, b) => b[1] - a[1]).slice(0, 12)) console.log(String(v).padStart(8), 'kB', k);
console.log(readFileSync(`/proc/${d.pid}/smaps_rollup`, 'utf8').split('\n').filter((l) => /Rss|Anon|Shared|Private/.test(l)).join('\n'));
d.kill(); up.kill(); await pki.cleanup();
