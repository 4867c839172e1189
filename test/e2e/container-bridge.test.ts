/**
 * dohd as the resolver of the machine's containers, wired the way Docker wires them (the
 * `lookup goproxy.cn on 8.8.8.8:53` case, moby#6388): a network namespace for the container,
 * a veth pair whose host end carries the bridge address (docker0's gateway; here a
 * documentation address), and the container's own /etc/resolv.conf (a private bind mount, as
 * Docker writes it from daemon.json's "dns"). dohd runs on the host end, from the config file
 * docs/operations.md shows, answering from a DoH fixture upstream on loopback.
 *
 * The bridge address is added only after dohd started, as when Docker comes up after dohd:
 * dohd says it waits, then binds it. From inside the container, real clients get answers:
 * glibc (getent), dig, and a Go program with the pure-Go and the cgo resolver.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';
import { startDohServer, type DohServer } from '../fixtures/doh-server.js';
import { netnsSkipReason, q, sh, shOk, TAG } from '../fixtures/netns.js';
import { makePki, type Pki } from '../fixtures/pki.js';
import { spawnCli, type Spawned } from '../fixtures/spawn.js';
import { has } from '../fixtures/tools.js';
import { Zone } from '../fixtures/zone.js';
import type { Obj } from '../fixtures/pod.js';

const SKIP = netnsSkipReason() ?? (has('getent') && has('dig') ? null : 'needs getent and dig');
if (SKIP) console.warn(`container-bridge tests skipped: ${SKIP}`);
const HAVE_GO = has('go');
if (!SKIP && !HAVE_GO) console.warn('container-bridge: the Go client test is skipped: no "go" (Debian: golang-go)');
// Go's cgo resolver needs a C compiler at build time (Debian: gcc).
const HAVE_CGO = has('gcc');
if (!SKIP && HAVE_GO && !HAVE_CGO) console.warn('container-bridge: the Go cgo-resolver half is skipped: no gcc');

// The bridge: docker0 is 172.17.0.1/16 by default; documentation addresses here.
const BRIDGE = '198.51.100.1';
const CONTAINER = '198.51.100.2';
// A second source outside the ACL, to show that the ACL is what admits the bridge.
const OUTSIDE_HOST = '203.0.113.1';
const OUTSIDE = '203.0.113.2';
const HOST_IF = `${TAG}br`;
const CTR_IF = `${TAG}ct`;
const NETNS = `dohd-ctr-${TAG}`;

/**
 * The documented steps for containers (docs/operations.md): the dohd configuration block and the
 * daemon.json "dns" line, read from that page itself so that the two cannot drift apart.
 */
function documentedSteps(): { config: Obj; dns: string[] } {
  const page = readFileSync(fileURLToPath(new URL('../../docs/operations.md', import.meta.url)), 'utf8');
  const start = page.indexOf('\n## Containers on this machine');
  if (start < 0) throw new Error('docs/operations.md: no "Containers on this machine" section');
  const section = page.slice(start, page.indexOf('\n## ', start + 1));
  const block = (lang: string) => {
    const m = new RegExp(`^( *)\`\`\`${lang}\n([\\s\\S]*?)^\\1\`\`\``, 'm').exec(section);
    if (!m) throw new Error(`docs/operations.md: no \`\`\`${lang} block in the containers section`);
    return m[2]!.split('\n').map((l) => l.slice(m[1]!.length)).join('\n');
  };
  return { config: parse(block('yaml')) as Obj, dns: (JSON.parse(block('json')) as { dns: string[] }).dns };
}

/** docker0's address and subnet become this test's bridge; loopback port 53 becomes a free port (other tests share this namespace). */
function mapAddress(a: string): string {
  const map: Record<string, string> = { '172.17.0.1': BRIDGE, '172.17.0.1:53': `${BRIDGE}:53`, '172.17.0.0/16': '198.51.100.0/24', '127.0.0.1:53': '127.0.0.1:0', '[::1]:53': '[::1]:0' };
  return map[a] ?? a;
}

let pki: Pki;
let doh: DohServer;
let dohd: Spawned;
let dir: string;
let goBin: string | null = null;

/** Runs a command inside the container: its network namespace, and a mount namespace whose /etc/resolv.conf is the container's. */
function inContainer(cmd: string, env = ''): Promise<{ code: number; stdout: string; stderr: string }> {
  return sh(
    `ip netns exec ${NETNS} unshare -m --propagation private sh -c ${q(`mount --bind ${join(dir, 'resolv.conf')} /etc/resolv.conf && ${env} ${cmd}`)}`,
    { timeoutMs: 30_000 },
  );
}

describe.skipIf(SKIP)('containers on a bridge resolve through dohd', () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'dohd-bridge-'));
    pki = await makePki();
    doh = await startDohServer({
      pki,
      zone: new Zone([
        { name: 'goproxy.cn', type: 'A', ttl: 300, data: '192.0.2.53' },
        { name: 'goproxy.cn', type: 'AAAA', ttl: 300, data: '2001:db8::53' },
        { name: 'proxy.golang.org', type: 'A', ttl: 300, data: '192.0.2.54' },
      ]),
    });
    // The veth pair and the container's namespace; the bridge address comes later.
    await shOk(
      [
        `ip link add ${HOST_IF} type veth peer name ${CTR_IF}`,
        `ip netns add ${NETNS}`,
        `ip link set ${CTR_IF} netns ${NETNS}`,
        `ip link set ${HOST_IF} up`,
        `ip netns exec ${NETNS} ip link set lo up`,
        `ip netns exec ${NETNS} ip addr add ${CONTAINER}/24 dev ${CTR_IF}`,
        `ip netns exec ${NETNS} ip addr add ${OUTSIDE}/24 dev ${CTR_IF}`,
        `ip netns exec ${NETNS} ip link set ${CTR_IF} up`,
        `ip netns exec ${NETNS} ip route add default via ${BRIDGE} dev ${CTR_IF} onlink`,
      ].join(' && '),
    );
    const steps = documentedSteps();
    // What Docker writes into the container from the documented daemon.json line.
    writeFileSync(join(dir, 'resolv.conf'), steps.dns.map((a) => `nameserver ${mapAddress(a)}\n`).join(''));
    // The documented dohd configuration, on this test's bridge; plus what only a test needs: the
    // DoH upstream is the loopback fixture (its CA trusted), no admin listener, a quick retry.
    const config = steps.config;
    config.listen = (config.listen as string[]).map(mapAddress);
    config.acl.allow = (config.acl.allow as string[]).map(mapAddress);
    Object.assign(config, { upstreams: [{ url: doh.url, ca: pki.caFile }], admin: false, listenRetryMs: 200 });
    writeFileSync(join(dir, 'dohd.yaml'), stringify(config));
    if (HAVE_GO) {
      const src = fileURLToPath(new URL('../fixtures/go-lookup/', import.meta.url));
      const env = { PATH: process.env.PATH, HOME: dir, GOCACHE: join(dir, 'gocache'), GOPATH: join(dir, 'gopath'), GO111MODULE: 'off', GOFLAGS: '', GOPROXY: 'off', CGO_ENABLED: HAVE_CGO ? '1' : '0' };
      await shOk(`cd ${q(src)} && go build -o ${q(join(dir, 'go-lookup'))} .`, { env, timeoutMs: 240_000 });
      goBin = join(dir, 'go-lookup');
    }
  }, 300_000);

  afterAll(async () => {
    await dohd?.kill();
    await sh(`ip netns del ${NETNS}; ip link del ${HOST_IF}`);
    await doh?.close();
    await pki?.cleanup();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('dohd started before the bridge: it says it waits for the address, then binds it when it appears', async () => {
    dohd = spawnCli(['run', '--config', join(dir, 'dohd.yaml')]);
    const waiting = await dohd.waitForLog((l) => l.level === 'warn' || l.level === 40);
    expect(waiting.listen).toBe(`${BRIDGE}:53`);
    expect(String(waiting.msg)).toContain(`cannot listen on ${BRIDGE}:53/udp: no network interface has this address yet`);
    expect(String(waiting.msg)).toContain('listenRetryMs: 0');
    // Still serving on loopback meanwhile.
    const up = await dohd.waitForLog((l) => l.msg === 'dohd listening');
    expect(up.listen).toEqual([expect.stringMatching(/^127\.0\.0\.1:\d+$/), expect.stringMatching(/^\[::1\]:\d+$/)]);
    // Docker starts: docker0 gets its address.
    await shOk(`ip addr add ${BRIDGE}/24 dev ${HOST_IF} && ip addr add ${OUTSIDE_HOST}/24 dev ${HOST_IF}`);
    const bound = await dohd.waitForLog((l) => l.msg === 'listen address appeared: now listening on it');
    expect(bound.listen).toBe(`${BRIDGE}:53`);
  });

  it('with listenRetryMs: 0, an address no interface has stops start-up with a message that says so', async () => {
    writeFileSync(join(dir, 'strict.yaml'), `listen: ["127.0.0.1:0", "198.51.100.99:53"]\nupstreams: [{ url: "${doh.url}", ca: "${pki.caFile}" }]\nadmin: false\nlistenRetryMs: 0\n`);
    const strict = spawnCli(['run', '--config', join(dir, 'strict.yaml')]);
    const { code } = await strict.exited;
    expect(code).not.toBe(0);
    expect(`${strict.stdout.join('\n')}${strict.stderr}`).toContain('cannot listen on 198.51.100.99:53/udp: no network interface has this address');
  });

  it('glibc in the container (getent hosts) resolves through dohd on the bridge', async () => {
    const r = await inContainer('getent hosts goproxy.cn; getent hosts proxy.golang.org');
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^2001:db8::53\s+goproxy\.cn$/m);
    expect(r.stdout).toMatch(/^192\.0\.2\.54\s+proxy\.golang\.org$/m);
  });

  it('dig in the container asks the resolv.conf nameserver (the bridge), over UDP and TCP', async () => {
    const udp = await inContainer('dig +time=3 +tries=1 goproxy.cn A');
    expect(udp.stdout).toMatch(/status: NOERROR/);
    expect(udp.stdout).toMatch(/^goproxy\.cn\.\s+\d+\s+IN\s+A\s+192\.0\.2\.53$/m);
    expect(udp.stdout).toContain(`SERVER: ${BRIDGE}#53(${BRIDGE}) (UDP)`);
    const tcp = await inContainer('dig +tcp +time=3 +tries=1 goproxy.cn AAAA');
    expect(tcp.stdout).toMatch(/^goproxy\.cn\.\s+\d+\s+IN\s+AAAA\s+2001:db8::53$/m);
    expect(tcp.stdout).toContain(`SERVER: ${BRIDGE}#53(${BRIDGE}) (TCP)`);
  });

  it('a source outside acl.allow gets REFUSED: the ACL is what admits the bridge subnet', async () => {
    const r = await inContainer(`dig -b ${OUTSIDE} +time=3 +tries=1 @${BRIDGE} goproxy.cn A`);
    expect(r.stdout).toMatch(/status: REFUSED/);
  });

  it.skipIf(!HAVE_GO)('a Go program in the container resolves with the pure-Go resolver and with cgo', async () => {
    const go = await inContainer(`${goBin} goproxy.cn`, 'GODEBUG=netdns=go+1');
    expect(go.stderr).toContain("forcing use of Go's resolver");
    expect(go.stdout.split('\n').filter(Boolean).sort()).toEqual(['192.0.2.53', '2001:db8::53']);
    if (!HAVE_CGO) return;
    const cgo = await inContainer(`${goBin} proxy.golang.org`, 'GODEBUG=netdns=cgo+1');
    expect(cgo.stderr).toContain('using cgo DNS resolver');
    expect(cgo.stdout.trim()).toBe('192.0.2.54');
    // Both went through dohd to the DoH upstream, not anywhere else.
    expect(doh.queries.some((p) => p.questions?.[0]?.name === 'proxy.golang.org')).toBe(true);
  });
});
