/**
 * What the built CLI prints about answers from a daemon running in this process: `dohd query`
 * (and dig) showing dohd's Extended DNS Errors and locally made answers, and `check-config`
 * refusing an upstream that is dohd itself. Moved from the integration tier: they spawn dist/.
 */
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { RunningDaemon } from '../fixtures/daemon.js';
import { useDohUpstream } from '../fixtures/doh-pair.js';
import { HAVE_DIG } from '../fixtures/dig.js';
import { CLI, spawnCli } from '../fixtures/spawn.js';

const up = useDohUpstream({ name: 'main' });
let d: RunningDaemon | undefined;

// Asynchronously: the daemon answers in this process.
const run = promisify(execFile);

describe('dohd query and dig on what dohd answers', () => {
  it.skipIf(!HAVE_DIG)("dohd's SERVFAIL when every upstream times out: EDE 22, shown by dig and dohd query", async () => {
    up.doh.mode = 'hang';
    d = await up.start({ upstreams: [{ url: up.doh.url, ca: up.pki.caFile }], timeoutMs: 300 });
    const dig = await run('dig', ['+time=3', '+tries=1', '-p', String(d.port), '@127.0.0.1', 'example.com', 'A'], { encoding: 'utf8' });
    expect(dig.stdout).toContain('status: SERVFAIL');
    expect(dig.stdout).toMatch(/; EDE: 22 \(No Reachable Authority\): \(all upstreams timed out\)/);
    const q = await run(process.execPath, [CLI, 'query', 'example.org', '--server', `127.0.0.1:${d.port}`], { encoding: 'utf8' });
    expect(q.stdout).toContain('status: SERVFAIL');
    expect(q.stdout).toMatch(/^; EDE: 22 \(No Reachable Authority\): \(all upstreams timed out\)$/m);
  });

  it('dohd query says the answer was made locally, and why', async () => {
    d = await up.start({ upstreams: [{ url: up.doh.url, ca: up.pki.caFile }] });
    const r = await run(process.execPath, [CLI, 'query', 'localhost', '--server', `127.0.0.1:${d.port}`], { encoding: 'utf8' });
    expect(r.stdout).toMatch(/^localhost\.\t\t10800\tIN\tA\t127\.0\.0\.1$/m);
    expect(r.stdout).toMatch(/^;; ANSWERED BY: answered locally \(RFC 6761 localhost\), \d+\.\d ms inside dohd$/m);
    const rev = await run(process.execPath, [CLI, 'query', '5.1.168.192.in-addr.arpa', 'PTR', '--server', `127.0.0.1:${d.port}`], { encoding: 'utf8' });
    expect(rev.stdout).toContain('status: NXDOMAIN');
    expect(rev.stdout).toMatch(/ANSWERED BY: answered locally \(RFC 6303 192\.168\.0\.0\/16\)/);
    expect(up.doh.requests).toBe(0);
  });
});

describe('check-config', () => {
  it('an upstream that is dohd itself: one line, exit 2', async () => {
    const port = 5353; // only validated, never bound
    const c = spawnCli(['check-config', '--listen', `127.0.0.1:${port}`, '--upstream', `https://127.0.0.1:${port}/dns-query`]);
    const exit = await c.exited;
    expect(exit.code).toBe(2);
    expect(c.stderr.trim().split('\n')).toHaveLength(1);
    expect(c.stderr).toContain(`upstreams[0].url: https://127.0.0.1:${port}/dns-query is dohd's own listening address`);
  });
});
