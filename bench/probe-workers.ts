/** Development probe: dohd --workers N with the bench upstream; dig over UDP and TCP; then SIGTERM. */
import { fork, spawn, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join, resolve } from 'node:path';
import { makePki } from '../test/fixtures/pki.js';
const ex = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '../..');
const pki = await makePki();
const up = fork(join(import.meta.dirname, 'upstream-server.js'), [pki.certFile, pki.keyFile]);
const upPort = await new Promise<number>((res) => up.once('message', (m: { port: number }) => res(m.port)));
const d = spawn(process.execPath, [join(ROOT, 'dist/cli.js'), 'run', '--listen', '127.0.0.1:0', '--upstream', `https://127.0.0.1:${upPort}/dns-query`, '--ca', pki.caFile, '--workers', process.env.W ?? '2'], { stdio: ['ignore', 'pipe', 'inherit'] });
let out = '';
const port = await new Promise<number>((res) => d.stdout!.on('data', (c: Buffer) => { out += c; process.stdout.write(c); const m = /"msg":"dohd workers ready"/.test(out) && /"listen":\["127\.0\.0\.1:(\d+)"/.exec(out); if (m) res(Number(m[1])); }));
for (const tcp of [false, true, false, true]) console.log((await ex('dig', ['+short', '+tries=1', ...(tcp ? ['+tcp'] : []), '-p', String(port), '@127.0.0.1', 'w.bench', 'A'])).stdout.trim());
up.send({ cmd: 'stats' });
console.log('upstream', await new Promise((r) => up.once('message', r)));
const code = await new Promise((r) => { d.once('exit', (c, s) => r([c, s])); d.kill('SIGTERM'); });
console.log('exit', code);
up.kill(); await pki.cleanup();
