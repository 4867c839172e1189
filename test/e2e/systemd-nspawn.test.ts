/**
 * The units in systemd/, installed the way the README says (systemd/install.sh) and run by a
 * real systemd as PID 1: a throwaway container (test/fixtures/nspawn.ts) over this machine's
 * root, with a tmpfs overlay and loopback only. The DoH upstream runs inside it too, with a
 * test CA; nothing reaches a public address.
 *
 * One container for the whole file; the tests run in order and build on each other
 * (dohd.service, then dohd.socket with its drop-in, then dohd-proxy-dns.service).
 */
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makePki, type Pki } from '../fixtures/pki.js';
import { bootMachine, compileFixture, nspawnUnavailable, type Machine } from '../fixtures/nspawn.js';
import { until as pollUntil } from '../fixtures/resources.js';

const REPO = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');
const UPSTREAM_SRC = fileURLToPath(new URL('../fixtures/nspawn-upstream.ts', import.meta.url));
const PKI_DIR = '/etc/dohd-test';
const UPSTREAM = 'https://127.0.0.1:8443/dns-query';
/** The dynamic users systemd makes up (DynamicUser=yes): UIDs 61184-65519. */
const DYNAMIC_UIDS = [61184, 65519] as const;
const CAP_NET_BIND_SERVICE = 1n << 10n;

const unavailable = nspawnUnavailable();
if (unavailable) console.warn(`SKIPPED test/e2e/systemd-nspawn.test.ts: cannot boot a real systemd: ${unavailable}`);

const config = (pin: string, extra = '') => `# written by test/e2e/systemd-nspawn.test.ts
listen: ["127.0.0.1:53", "[::1]:53"]
upstreams:
  - url: ${UPSTREAM}
    ca: ${PKI_DIR}/ca.pem
pins:
  pinned.example.net: ["${pin}"]
cache:
  file: /var/lib/dohd/cache.bin
${extra}`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(unavailable !== null)('systemd units under a real systemd (systemd-nspawn)', { timeout: 60_000 }, () => {
  let m: Machine;
  let pki: Pki;
  let upstreamJs: ReturnType<typeof compileFixture>;

  /** `dig +short` inside the container: one try, no retry, so a lost query shows. */
  const dig = (server: string, name: string, ...flags: string[]) =>
    m.exec(['dig', '+short', '+tries=1', '+time=5', ...flags, `@${server}`, name]).stdout.trim();
  const show = (unit: string, prop: string) => m.exec(['systemctl', 'show', '-p', prop, '--value', unit]).stdout.trim();
  const journal = (unit: string, ...args: string[]) => m.exec(['journalctl', '--no-pager', '-o', 'cat', '-u', unit, ...args]).stdout;
  const status = (pid: string) => Object.fromEntries(m.sh(`cat /proc/${pid}/status`).split('\n').map((l) => l.split(':\t')).filter((f) => f.length === 2)) as Record<string, string>;

  /** resources.ts's until, every 100 ms (each poll runs a command in the machine), the journal's tail in the error. */
  const until = <T>(what: string, fn: () => T | null | undefined | false, timeoutMs = 30_000) =>
    pollUntil(fn, timeoutMs, { what, detail: () => journal('dohd.service', '-n', '30'), intervalMs: 100 }) as Promise<T>;

  /** Waits until the unit's journal (journalctl ARGS) matches: journald reads a service's output on its own time. */
  const journalMatches = (unit: string, re: RegExp, ...args: string[]) => until(`${re} in the journal of ${unit}`, () => re.test(journal(unit, ...args)), 15_000);

  function startUpstream(delayMs = 0): void {
    m.sh(`systemd-run --quiet --unit=test-upstream --collect ${process.execPath} ${upstreamJs.file} ${PKI_DIR} 8443 ${delayMs}`);
  }
  async function upstreamUp(): Promise<void> {
    await until('the test upstream', () => m.exec(['ss', '-Htln', 'sport = :8443']).stdout.includes('127.0.0.1:8443'));
  }

  beforeAll(async () => {
    pki = await makePki();
    upstreamJs = compileFixture(UPSTREAM_SRC);
    m = await bootMachine({ name: `dohd-e2e-${process.pid}`, bind: [REPO] });
    m.writeFile(`${PKI_DIR}/ca.pem`, pki.caPem);
    m.writeFile(`${PKI_DIR}/cert.pem`, pki.certPem);
    m.writeFile(`${PKI_DIR}/key.pem`, pki.keyPem, 0o600);
    startUpstream();
    await upstreamUp();
  }, 120_000);

  afterAll(async () => {
    await m?.stop();
    upstreamJs?.cleanup();
    await pki?.cleanup();
  }, 60_000);

  describe('dohd.service', () => {
    it('install.sh (the README steps) starts it: active, answering UDP and TCP on 127.0.0.1 and ::1', async () => {
      m.writeFile('/etc/dohd/dohd.yaml', config('192.0.2.10'));
      const out = m.exec([`${REPO}/systemd/install.sh`], { timeoutMs: 120_000 });
      expect(out.code, out.stdout + out.stderr).toBe(0);
      expect(out.stdout).toContain('configuration OK');
      expect(show('dohd.service', 'ActiveState')).toBe('active');
      expect(show('dohd.service', 'UnitFileState')).toBe('enabled');
      for (const server of ['127.0.0.1', '::1']) {
        expect(dig(server, 'example.com'), `UDP ${server}`).toBe('192.0.2.1');
        expect(dig(server, 'www.example.com', '+tcp'), `TCP ${server}`).toBe('192.0.2.3');
      }
      // The README's two checks after installing.
      expect(m.sh('systemctl status --no-pager dohd')).toMatch(/Active: active \(running\)[^]*Status: "answering DNS on 127\.0\.0\.1:53, \[::1\]:53"/);
      const q = m.sh('dohd query goproxy.cn');
      expect(q).toMatch(/^goproxy\.cn\.\s+\d+\s+IN\s+A\s+192\.0\.2\.53$/m);
      expect(q).toMatch(/^;; ANSWERED BY: .*127\.0\.0\.1:8443/m);
      // The program and the command, where the README says.
      expect(m.sh('readlink /usr/local/bin/dohd').trim()).toBe('/opt/dohd/dist/cli.js');
      expect(m.exec(['test', '-d', '/opt/dohd/node_modules/vitest']).code).not.toBe(0); // development packages pruned
    });

    it('runs as a dynamic non-root user whose only capability is CAP_NET_BIND_SERVICE', () => {
      const pid = show('dohd.service', 'MainPID');
      const s = status(pid);
      const uid = Number(s.Uid!.split(/\s+/)[0]);
      expect(uid).toBeGreaterThanOrEqual(DYNAMIC_UIDS[0]);
      expect(uid).toBeLessThanOrEqual(DYNAMIC_UIDS[1]);
      expect(m.sh(`ps -o user= -p ${pid}`).trim()).toBe('dohd');
      expect(BigInt(`0x${s.CapEff}`)).toBe(CAP_NET_BIND_SERVICE);
      expect(BigInt(`0x${s.CapBnd}`)).toBe(CAP_NET_BIND_SERVICE);
      expect(s.NoNewPrivs).toBe('1');
    });

    it('Type=notify: systemctl restart returns once the listeners are up (READY=1 after listening)', () => {
      // No waiting between the two: with Type=simple the query would come before node listens.
      const out = m.sh('systemctl restart dohd.service && dig +short +tries=1 +time=5 @127.0.0.1 example.com && ss -Hlun "sport = :53"');
      expect(out).toContain('192.0.2.1');
      expect(out).toContain('127.0.0.1:53');
      expect(show('dohd.service', 'StatusText')).toBe('answering DNS on 127.0.0.1:53, [::1]:53');
    });

    it('systemctl reload applies a changed pin', async () => {
      expect(dig('127.0.0.1', 'pinned.example.net')).toBe('192.0.2.10');
      const pid = show('dohd.service', 'MainPID');
      m.writeFile('/etc/dohd/dohd.yaml', config('192.0.2.11'));
      m.sh('systemctl reload dohd.service');
      await until('the new pin', () => dig('127.0.0.1', 'pinned.example.net') === '192.0.2.11');
      expect(show('dohd.service', 'MainPID')).toBe(pid); // reloaded, not restarted
      await journalMatches('dohd.service', /configuration reloaded file=\/etc\/dohd\/dohd.yaml applied=\["pins"\]/, '-n', '10');
    });

    it('logs one line per event with its priority: journalctl -p warning shows warnings only', async () => {
      // A listen change needs a restart: a warning. "dohd listening" is info.
      m.writeFile('/etc/dohd/dohd.yaml', config('192.0.2.11', 'listen: ["127.0.0.1:53"]\n').replace('listen: ["127.0.0.1:53", "[::1]:53"]\n', ''));
      m.sh('systemctl reload dohd.service');
      await until('the restart warning', () => journal('dohd.service', '-p', 'warning').includes('configuration change needs a restart'));
      const warnings = journal('dohd.service', '-p', 'warning');
      expect(warnings).toMatch(/^configuration change needs a restart to take effect: listen .*keys=\["listen"\]$/m);
      expect(warnings).not.toContain('dohd listening');
      expect(journal('dohd.service', '-p', 'info')).toContain('dohd listening');
      // The priority is the journal's own field, the prefix is gone from the message.
      const entries = m
        .exec(['journalctl', '--no-pager', '-o', 'json', '-u', 'dohd.service', '--output-fields=PRIORITY,MESSAGE'])
        .stdout.split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { PRIORITY: string; MESSAGE: string });
      expect(entries.find((e) => e.MESSAGE.startsWith('configuration change needs a restart'))?.PRIORITY).toBe('4');
      expect(entries.find((e) => e.MESSAGE.startsWith('dohd listening'))?.PRIORITY).toBe('6');
      expect(entries.some((e) => e.MESSAGE.startsWith('<') || e.MESSAGE.startsWith('{'))).toBe(false);
      m.writeFile('/etc/dohd/dohd.yaml', config('192.0.2.11'));
    });

    it('systemctl stop: Result=success and the cache saved in the StateDirectory; the next start answers from it', async () => {
      expect(dig('127.0.0.1', 'www.example.com')).toBe('192.0.2.3');
      m.sh('systemctl stop dohd.service');
      expect(show('dohd.service', 'Result')).toBe('success');
      expect(show('dohd.service', 'ExecMainStatus')).toBe('0');
      // DynamicUser: /var/lib/dohd is a link to /var/lib/private/dohd.
      expect(m.sh('readlink -f /var/lib/dohd/cache.bin').trim()).toBe('/var/lib/private/dohd/cache.bin');
      expect(Number(m.sh('stat -c %s /var/lib/dohd/cache.bin'))).toBeGreaterThan(12);
      await journalMatches('dohd.service', /cache saved file=\/var\/lib\/dohd\/cache.bin entries=[1-9]/, '-n', '10');
      // Without an upstream, only the saved cache can answer.
      m.sh('systemctl stop test-upstream');
      try {
        m.sh('systemctl start dohd.service');
        await journalMatches('dohd.service', /cache loaded file=\/var\/lib\/dohd\/cache.bin loaded=[1-9]/, '-n', '10');
        expect(dig('127.0.0.1', 'www.example.com')).toBe('192.0.2.3');
        expect(dig('127.0.0.1', 'cname.example.net')).not.toContain('192.0.2.1'); // never asked before: not in the cache
      } finally {
        startUpstream();
        await upstreamUp();
      }
    });

    it('kill -9 of the main process: systemd brings it back after RestartSec', async () => {
      const restartSec = Number(show('dohd.service', 'RestartUSec').replace(/s$/, ''));
      expect(restartSec).toBe(2);
      const pid = show('dohd.service', 'MainPID');
      const restarts = Number(show('dohd.service', 'NRestarts'));
      const t0 = Date.now();
      m.sh(`kill -9 ${pid}`);
      await until('dohd back', () => {
        const now = show('dohd.service', 'MainPID');
        return now !== '0' && now !== pid && show('dohd.service', 'ActiveState') === 'active';
      });
      const took = (Date.now() - t0) / 1000;
      console.log(`dohd back ${took.toFixed(1)} s after kill -9 (RestartSec=${restartSec}s)`);
      expect(took).toBeGreaterThanOrEqual(restartSec - 0.5);
      expect(took).toBeLessThan(restartSec + 15); // RestartSec plus a node start, with room for a loaded machine
      expect(Number(show('dohd.service', 'NRestarts'))).toBe(restarts + 1);
      expect(dig('127.0.0.1', 'example.com')).toBe('192.0.2.1');
    });

    it('the live systemd-analyze security exposure is at most 2.0', () => {
      const out = m.exec(['systemd-analyze', 'security', '--no-pager', 'dohd.service']).stdout;
      const level = Number(/Overall exposure level for dohd\.service: ([\d.]+)/.exec(out)?.[1]);
      console.log(`systemd-analyze security dohd.service: ${level}`);
      expect(level).toBeGreaterThan(0);
      expect(level).toBeLessThanOrEqual(2.0);
    });

    it("start-up's reads a hardened unit could refuse see what an unsandboxed process sees: the cgroup CPU quota (cpu-limit.ts)", async () => {
      const program = `import { cgroupCpuQuota, usableCpus } from '/opt/dohd/dist/daemon/cpu-limit.js'; import { readFileSync } from 'node:fs'; console.log('probe quota=' + cgroupCpuQuota(readFileSync('/proc/self/cgroup', 'utf8')) + ' usable=' + usableCpus())`;
      // Outside any sandbox, in a unit with CPUQuota=50%.
      const plain = m.sh(`systemd-run --quiet --wait --pipe -p CPUQuota=50% ${process.execPath} --input-type=module -e "${program}"`).trim();
      // dohd.service itself (every sandbox setting), with the same quota and the probe for a program.
      m.sh('systemctl stop dohd.service');
      m.writeFile(
        '/run/systemd/system/dohd.service.d/probe.conf',
        ['[Service]', 'Type=oneshot', 'CPUQuota=50%', 'ExecStart=', `ExecStart=${process.execPath} --input-type=module -e "${program}"`, 'ExecReload=', ''].join('\n'),
      );
      try {
        m.sh('systemctl daemon-reload && systemctl start dohd.service');
        const sandboxed = await until('the probe line', () => /^probe .*$/m.exec(journal('dohd.service', '-n', '5'))?.[0], 15_000);
        if (plain !== 'probe quota=0.5 usable=0.5') console.log(`note: this container cannot apply CPUQuota (cgroup v1, not delegated): ${plain}; the sandboxed read must still match it`);
        expect(sandboxed).toBe(plain);
      } finally {
        m.sh('rm /run/systemd/system/dohd.service.d/probe.conf && systemctl daemon-reload && systemctl start dohd.service');
      }
      expect(dig('127.0.0.1', 'example.com')).toBe('192.0.2.1');
    });

    describe('bad input gets a clear message', () => {
      afterEach(() => m.writeFile('/etc/dohd/dohd.yaml', config('192.0.2.11')));

      /** The journal of a start that fails: all of it, and its error-priority lines from dohd. */
      const failedStart = async (): Promise<{ log: string; errors: string }> => {
        const cursor = m.sh('journalctl --show-cursor -n 0 -o cat | sed -n "s/^-- cursor: //p"').trim();
        expect(m.exec(['systemctl', 'restart', 'dohd.service']).code).not.toBe(0);
        const since = (...args: string[]) => m.exec(['journalctl', '--no-pager', '-o', 'cat', '-u', 'dohd.service', `--after-cursor=${cursor}`, ...args]).stdout;
        // dohd's own lines at error priority or worse (systemd's "Failed to start" is one too).
        // journald reads the service's stream on its own time: wait for dohd's line.
        const dohdErrors = () => since('-p', 'err').split('\n').filter((l) => l.startsWith('dohd: ')).join('\n');
        const errors = await until("dohd's error line in the journal", dohdErrors, 10_000).catch(() => '');
        const log = since();
        m.sh('systemctl stop dohd.service; systemctl reset-failed dohd.service');
        expect(log).not.toMatch(/^\s+at /m); // no stack trace
        expect(log).not.toContain('status=70');
        return { log, errors };
      };

      it('a listen address that does not exist', async () => {
        m.writeFile('/etc/dohd/dohd.yaml', config('192.0.2.11').replace('["127.0.0.1:53", "[::1]:53"]', '["192.0.2.77:53"]'));
        const { log, errors } = await failedStart();
        // One line, at error priority (journalctl -p err shows it).
        expect(errors).toMatch(/^dohd: cannot listen on 192\.0\.2\.77:53\/(udp|tcp): no network interface has this address$/);
        expect(log).toContain('status=1/FAILURE');
      });

      it('a config file the service user cannot read', async () => {
        m.writeFile('/etc/dohd/dohd.yaml', config('192.0.2.11'), 0o600);
        const { log, errors } = await failedStart();
        expect(errors).toBe('dohd: cannot read config file /etc/dohd/dohd.yaml: EACCES');
        expect(log).toContain('status=2/INVALIDARGUMENT');
      });

      it('a StateDirectory that is not writable: warned, answering, the cache not saved, and stop still succeeds', async () => {
        // The state directory made read-only to the service user (systemd applies the mode at start).
        m.writeFile('/run/systemd/system/dohd.service.d/read-only-state.conf', '[Service]\nStateDirectoryMode=0500\n');
        try {
          m.sh('systemctl daemon-reload && systemctl start dohd.service');
          expect(show('dohd.service', 'ActiveState')).toBe('active');
          await journalMatches('dohd.service', /cache\.file: its directory is not writable; .* file=\/var\/lib\/dohd\/cache.bin err=EACCES/, '-p', 'warning', '-n', '5');
          expect(dig('127.0.0.1', 'example.com')).toBe('192.0.2.1');
          expect(dig('::1', 'example.com', '+tcp')).toBe('192.0.2.1');
          m.sh('systemctl stop dohd.service');
          expect(show('dohd.service', 'Result')).toBe('success');
          await journalMatches('dohd.service', /could not save the cache file=\/var\/lib\/dohd\/cache.bin err=EACCES/, '-p', 'warning', '-n', '5');
        } finally {
          m.sh('rm /run/systemd/system/dohd.service.d/read-only-state.conf && systemctl daemon-reload');
        }
      });
    });
  });

  describe('dohd.socket with the socket-activation drop-in', () => {
    it('install.sh --socket: the first query starts dohd.service, which runs with no capability at all', async () => {
      const out = m.exec([`${REPO}/systemd/install.sh`, '--socket'], { timeoutMs: 120_000 });
      expect(out.code, out.stdout + out.stderr).toBe(0);
      expect(show('dohd.socket', 'ActiveState')).toBe('active');
      expect(show('dohd.service', 'ActiveState')).toBe('inactive');
      expect(dig('127.0.0.1', 'example.com')).toBe('192.0.2.1');
      expect(show('dohd.service', 'ActiveState')).toBe('active');
      expect(dig('::1', 'www.example.com', '+tcp')).toBe('192.0.2.3');
      const s = status(show('dohd.service', 'MainPID'));
      expect(Number(s.Uid!.split(/\s+/)[0])).toBeGreaterThanOrEqual(DYNAMIC_UIDS[0]);
      for (const set of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb']) expect(BigInt(`0x${s[set]}`), set).toBe(0n);
      await journalMatches('dohd.service', /^socket activation: serving on the sockets systemd passed/m);
    });

    it('systemctl restart dohd.service under a steady stream of queries loses none', async () => {
      // Three clients at once, UDP and TCP in turn, each query sent once (no retry): whatever
      // arrives while dohd stops and starts must wait in the kernel's queues on systemd's sockets.
      const clients = 3;
      const each = 50;
      let out = '';
      const done = Array.from({ length: clients }, (_, c) => {
        const stream = m.spawn([
          'sh',
          '-c',
          `for i in $(seq ${each}); do if [ $((i % 2)) = ${c % 2} ]; then t=+tcp; else t=+notcp; fi; echo "${c}.$i $t $(dig +short +tries=1 +time=10 $t @127.0.0.1 example.com)"; done`,
        ]);
        stream.stdout!.on('data', (d: Buffer) => (out += d.toString()));
        return new Promise<void>((r) => stream.once('exit', () => r()));
      });
      const lines = () => out.split('\n').filter(Boolean).length;
      const restarts = 3;
      for (let r = 1; r <= restarts; r++) {
        await until(`${(r * clients * each) / (restarts + 1)} answers`, () => lines() >= (r * clients * each) / (restarts + 1), 60_000);
        m.sh('systemctl restart dohd.service');
      }
      await Promise.all(done);
      const answers = out.split('\n').filter(Boolean);
      expect(answers).toHaveLength(clients * each);
      expect(answers.filter((l) => !l.endsWith(' 192.0.2.1'))).toEqual([]);
      await until('a start logged per restart', () => journal('dohd.service').match(/^socket activation: serving/gm)?.length === restarts + 1, 15_000);
      expect(Number(show('dohd.service', 'NRestarts'))).toBe(0); // restarted by us, not crashed
    });

    it('a query that arrives while dohd drains waits in the kernel for the next dohd (not read and dropped)', async () => {
      // A slow upstream keeps one query in flight, so the old dohd drains for a while.
      m.sh('systemctl stop test-upstream');
      startUpstream(1500);
      await upstreamUp();
      try {
        const tag = Date.now();
        const first = m.spawn(['dig', '+tries=1', '+time=10', '@127.0.0.1', `first-${tag}.nx.example.com`]);
        let firstOut = '';
        first.stdout!.on('data', (d: Buffer) => (firstOut += d.toString()));
        const firstDone = new Promise<void>((r) => first.once('exit', () => r()));
        await sleep(300);
        const restart = m.spawn(['systemctl', 'restart', 'dohd.service']);
        const restarted = new Promise<void>((r) => restart.once('exit', () => r()));
        await until('dohd draining', () => /dohd stopping: .*inflight=1/.test(journal('dohd.service', '-n', '5')));
        // Sent once, during the drain: only the kernel can keep it.
        const second = m.exec(['dig', '+tries=1', '+time=10', '@127.0.0.1', `second-${tag}.nx.example.com`], { timeoutMs: 30_000 }).stdout;
        await Promise.all([firstDone, restarted]);
        expect(firstOut).toContain('status: NXDOMAIN');
        expect(second).toContain('status: NXDOMAIN');
      } finally {
        m.sh('systemctl stop test-upstream');
        startUpstream();
        await upstreamUp();
      }
    });
  });

  describe('dohd-proxy-dns.service', () => {
    it('with /etc/default/cloudflared as a cloudflared (Pi-hole) user had it, it answers on the configured port', async () => {
      // The Pi-hole guide's file, pointed at the test upstream; the test CA the way the README says.
      m.writeFile('/etc/default/cloudflared', `# Commandline args for cloudflared\nCLOUDFLARED_OPTS=--port 5053 --upstream ${UPSTREAM}\nNODE_EXTRA_CA_CERTS=${PKI_DIR}/ca.pem\n`);
      const out = m.exec([`${REPO}/systemd/install.sh`, '--proxy-dns'], { timeoutMs: 120_000 });
      expect(out.code, out.stdout + out.stderr).toBe(0);
      await until('port 5053', () => m.exec(['ss', '-Hlun', 'sport = :5053']).stdout.includes('127.0.0.1:5053'));
      expect(dig('127.0.0.1', 'example.com', '-p', '5053')).toBe('192.0.2.1');
      expect(dig('127.0.0.1', 'www.example.com', '-p', '5053', '+tcp')).toBe('192.0.2.3');
      expect(show('dohd-proxy-dns.service', 'NRestarts')).toBe('0');
    });

    it('--address 0.0.0.0 (every address) starts too, where interfaces cannot be listed (no AF_NETLINK): a warning, not a crash', async () => {
      m.writeFile('/etc/default/cloudflared', `CLOUDFLARED_OPTS=--address 0.0.0.0 --port 5053 --upstream ${UPSTREAM}\nNODE_EXTRA_CA_CERTS=${PKI_DIR}/ca.pem\n`);
      m.sh('systemctl restart dohd-proxy-dns.service');
      await until('port 5053 on every address', () => m.exec(['ss', '-Hlun', 'sport = :5053']).stdout.includes('0.0.0.0:5053'));
      expect(dig('127.0.0.1', 'example.com', '-p', '5053')).toBe('192.0.2.1');
      expect(dig('::1', 'example.com', '-p', '5053', '+tcp')).toBe('192.0.2.1');
      await journalMatches('dohd-proxy-dns.service', /^cannot list the machine's network interfaces: .* error=EAFNOSUPPORT$/m, '-p', 'warning');
      expect(journal('dohd-proxy-dns.service')).not.toContain('status=70');
      expect(show('dohd-proxy-dns.service', 'NRestarts')).toBe('0');
    });
  });
});
