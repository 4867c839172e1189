/**
 * Real DNS clients against a running `dohd run`: dig (bind9-dnsutils) over UDP and TCP,
 * and glibc's getent with /etc/resolv.conf saying `nameserver 127.0.0.1` (in a private
 * mount and network namespace, so the machine's own resolv.conf is untouched).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { useDohServers } from '../fixtures/doh-pair.js';
import { CLI, listeningPort, spawnCli, type Spawned } from '../fixtures/spawn.js';
import { has } from '../fixtures/tools.js';

const exec = promisify(execFile);
const HAVE_DIG = has('dig');

const ups = useDohServers([{}]);
let dohd: Spawned;
let port: number;

beforeAll(async () => {
  dohd = spawnCli(['run', '--listen', '127.0.0.1:0', '--upstream', ups.servers[0].url, '--ca', ups.pki.caFile, '--log-level', 'info']);
  port = await listeningPort(dohd);
});
afterAll(async () => {
  await dohd?.kill();
});

async function dig(...args: string[]): Promise<string> {
  const { stdout } = await exec('dig', ['@127.0.0.1', '-p', String(port), '+time=3', '+tries=1', ...args]);
  return stdout;
}

describe.skipIf(!HAVE_DIG)('dig against dohd', () => {
  it('UDP: A record, status NOERROR, recursion available', async () => {
    const out = await dig('example.com', 'A');
    expect(out).toMatch(/status: NOERROR/);
    expect(out).toMatch(/flags: qr rd ra/);
    expect(out).toMatch(/^example\.com\.\s+\d+\s+IN\s+A\s+192\.0\.2\.1$/m);
    expect(out).toMatch(/EDNS: version: 0, flags:; udp: 1232/);
  });

  it('TCP: AAAA record', async () => {
    const out = await dig('+tcp', 'example.com', 'AAAA');
    expect(out).toMatch(/^example\.com\.\s+\d+\s+IN\s+AAAA\s+2001:db8::1$/m);
  });

  it('NXDOMAIN comes back as NXDOMAIN', async () => {
    const out = await dig('does-not-exist.example.net', 'A');
    expect(out).toMatch(/status: NXDOMAIN/);
  });

  it('a large answer over UDP without EDNS is truncated, and dig retries over TCP to get it whole', async () => {
    const out = await dig('+noedns', 'big.example.net', 'TXT');
    expect(out).toMatch(/Truncated, retrying in TCP mode/);
    expect(out.match(/^big\.example\.net\.\s+\d+\s+IN\s+TXT/gm)?.length).toBe(40);
  });
});

const CAN_NS = process.getuid?.() === 0 && has('unshare') && has('getent');
describe.skipIf(!CAN_NS)('glibc resolver with nameserver 127.0.0.1', () => {
  it('getent hosts resolves through dohd on 127.0.0.1:53', async () => {
    const resolv = `${ups.pki.dir}/resolv.conf`;
    writeFileSync(resolv, 'nameserver 127.0.0.1\noptions timeout:2 attempts:1\n');
    const nsswitch = `${ups.pki.dir}/nsswitch.conf`;
    writeFileSync(nsswitch, 'hosts: dns\n');
    // The namespace has its own loopback (so dohd can own 127.0.0.1:53) and reaches nothing
    // else, so the name is pinned: this proves the glibc -> dohd path; dig above proves DoH.
    const script = [
      'set -e',
      'ip link set lo up',
      `mount --bind ${resolv} /etc/resolv.conf`,
      `mount --bind ${nsswitch} /etc/nsswitch.conf`,
      `cat > ${ups.pki.dir}/pins.yaml <<EOF\nlisten: ["127.0.0.1:53"]\nupstreams: [{ url: "https://127.0.0.1:9/dns-query" }]\npins: { goproxy.cn: [192.0.2.53, "2001:db8::53"], sum.golang.org: [192.0.2.54] }\nlog: { level: warn }\nEOF`,
      `${process.execPath} ${CLI} run --config ${ups.pki.dir}/pins.yaml & pid=$!`,
      // However the script ends (set -e), dohd does not outlive it.
      "trap 'kill $pid 2>/dev/null || true' EXIT",
      'for i in $(seq 1 50); do getent hosts goproxy.cn >/dev/null 2>&1 && break; sleep 0.1; done',
      'getent hosts goproxy.cn',
      'getent hosts sum.golang.org',
      'kill $pid; wait $pid || true',
    ].join('\n');
    const { stdout } = await exec('unshare', ['-m', '-n', 'sh', '-c', script], { timeout: 15_000 });
    expect(stdout).toMatch(/^2001:db8::53\s+goproxy\.cn$/m);
    expect(stdout).toMatch(/^192\.0\.2\.54\s+sum\.golang\.org$/m);
  });
});
