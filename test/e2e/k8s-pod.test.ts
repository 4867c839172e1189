/**
 * The pods of deploy/k8s, as the manifests declare them, without Kubernetes. For every workload
 * with a dohd container (the sidecar Deployment, the node-local DaemonSet), read from the YAML
 * (nothing retyped), this file does what the kubelet and the container runtime would:
 *
 * - a network namespace for the pod, linked to this test's namespace (the node) by a veth pair,
 *   with the pod's sysctls (net.ipv4.ip_unprivileged_port_start);
 * - the dohd container: a mount namespace whose root is the machine's root read-only (an
 *   overlay, so that mount points can be made without touching the machine), the image laid
 *   out as the Dockerfile's final stage (ENTRYPOINT, WORKDIR, ENV), the ConfigMap mounted where
 *   the manifest mounts it, each emptyDir a tmpfs of its sizeLimit; the container's env
 *   (NODE_OPTIONS); a memory cgroup at the memory limit (where one can be made); then
 *   runAsUser/runAsGroup, capabilities and allowPrivilegeEscalation through setpriv;
 * - the upstreams: a DoH fixture (for the public providers) and a plain DNS fixture (for the
 *   cluster DNS, "kube-dns"), both on the pod's loopback;
 * - the application container: resolv.conf rendered from the pod's dnsConfig (the DaemonSet's
 *   opt-in block for its client pods), and getent and dig resolving a cluster name through the
 *   forward rule and an external name through DoH;
 * - the readinessProbe and livenessProbe, sent from the node to the pod IP as declared.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, realpathSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseAllDocuments, parseDocument } from 'yaml';
import { memoryCgroup, type MemoryCgroup } from '../../bench/cgroup.js';
import { netnsSkipReason, q, sh, shOk, TAG } from '../fixtures/netns.js';
import { CLUSTER_RECORDS, EXTERNAL_RECORDS } from '../fixtures/pod-upstreams.js';
import { boundingMask, bytes, imageConfig, optInDnsConfig, REPO, renderResolvConf, setprivArgs, workloads, type Obj, type Workload } from '../fixtures/pod.js';
import { spawnCli, type Spawned } from '../fixtures/spawn.js';
import { has } from '../fixtures/tools.js';

const SKIP =
  netnsSkipReason() ?? (['setpriv', 'nsenter', 'getent', 'dig', 'mount', 'chroot'].every(has) ? null : 'needs setpriv, nsenter, chroot, mount (util-linux, coreutils), getent and dig');
if (SKIP) console.warn(`k8s pod tests skipped: ${SKIP}`);

const WORKLOADS = workloads();
const IMAGE = imageConfig();
const LOADER = join(REPO, 'test/fixtures/ts-loader.mjs');
const UPSTREAMS = join(REPO, 'test/fixtures/pod-upstreams.ts');
const PATH_ENV = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

it('deploy/k8s has the two workloads staged here: the sidecar Deployment and the node-local DaemonSet', () => {
  expect(WORKLOADS.map((w) => `${w.file}:${w.kind}`).sort()).toEqual(['daemonset.yaml:DaemonSet', 'sidecar-deployment.yaml:Deployment']);
});

/** A process holding a network namespace (the pod's "pause" container). */
function holdNetns(): Promise<ChildProcess> {
  const p = spawn('unshare', ['-n', 'sleep', 'infinity'], { stdio: 'ignore' });
  return new Promise((resolve, reject) => {
    p.once('error', reject);
    p.once('spawn', () => resolve(p));
  });
}

/** Waits until `pid` is in another network namespace than this process (unshare has run). */
async function netnsReady(pid: number): Promise<void> {
  const self = readlinkSync('/proc/self/ns/net');
  for (let i = 0; i < 200; i++) {
    try {
      if (readlinkSync(`/proc/${pid}/ns/net`) !== self) return;
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`process ${pid} never entered its own network namespace`);
}

const inNet = (pid: number, cmd: string) => `nsenter -t ${pid} -n -- ${cmd}`;

/** The DoH upstreams' host names in a ConfigMap's dohd.yaml (the fixture's certificate is made for them). */
function upstreamHosts(text: string): string[] {
  return ((parseDocument(text).toJS() as Obj).upstreams as Obj[]).map((u) => new URL(u.url as string).hostname);
}

/**
 * The config as mounted from the ConfigMap, with only the upstream addresses rewritten: each DoH
 * provider keeps its URL and name but is reached at the DoH fixture (bootstrap 127.0.0.1, the
 * fixture's port, its CA trusted: the certificate is made for those names), and the cluster DNS
 * Service becomes the plain DNS fixture; both on the pod's loopback. Nothing here may reach a
 * public address, and 10.96.0.10 does not exist here. Every other key (listen, admin, forward,
 * cache, log) is the manifest's.
 */
function rewriteConfig(text: string, fx: { doh: string; ca: string; kubeDns: string }): string {
  const doc = parseDocument(text);
  const js = doc.toJS() as Obj;
  const port = new URL(fx.doh).port;
  (js.upstreams as Obj[]).forEach((u, i) => {
    const url = new URL(u.url as string);
    url.port = port;
    doc.setIn(['upstreams', i, 'url'], url.href);
    doc.setIn(['upstreams', i, 'bootstrap'], ['127.0.0.1']);
    doc.setIn(['upstreams', i, 'ca'], fx.ca);
  });
  for (const [name, g] of Object.entries((js.groups ?? {}) as Obj)) {
    (g.upstreams as Obj[]).forEach((_u, i) => doc.setIn(['groups', name, 'upstreams', i, 'address'], fx.kubeDns));
  }
  return doc.toString();
}

/** The shell script that turns a mount namespace into the dohd container, then execs the entrypoint. */
function containerScript(o: { w: Workload; base: string; cmDirs: string[]; pkiDir: string; cgroup: MemoryCgroup | null; env: Record<string, string> }): string {
  const R = `${o.base}/root`;
  const sc = o.w.c.securityContext as Obj;
  const node = IMAGE.entrypoint[0]!;
  const lines = [
    'set -e',
    // The image: the machine's root seen through an overlay whose writes go to a tmpfs.
    `mount -t tmpfs -o mode=755 tmpfs ${o.base}`,
    `mkdir ${o.base}/upper ${o.base}/work ${R}`,
    `mount -t overlay overlay -o lowerdir=/,upperdir=${o.base}/upper,workdir=${o.base}/work ${R}`,
    `for p in /dev /proc /sys; do mount --rbind $p ${R}$p; done`,
    // The Dockerfile's layout: the app at its WORKDIR (this checkout, read-only), node at the ENTRYPOINT's path.
    `mkdir -p ${R}${IMAGE.workdir} && mount --bind ${q(REPO)} ${R}${IMAGE.workdir} && mount -o remount,bind,ro ${R}${IMAGE.workdir}`,
    `mkdir -p ${R}${dirname(node)} && touch ${R}${node} && mount --bind ${q(realpathSync(process.execPath))} ${R}${node}`,
    // The fixtures' CA (named by the rewritten config), where it is outside the container.
    `mkdir -p ${R}${o.pkiDir} && mount --bind ${o.pkiDir} ${R}${o.pkiDir} && mount -o remount,bind,ro ${R}${o.pkiDir}`,
  ];
  o.w.configMaps.forEach((cm, i) => {
    lines.push(`mkdir -p ${R}${cm.mountPath} && mount --bind ${o.cmDirs[i]} ${R}${cm.mountPath}`);
    if (cm.readOnly) lines.push(`mount -o remount,bind,ro ${R}${cm.mountPath}`);
  });
  for (const d of o.w.emptyDirs) {
    lines.push(`mkdir -p ${R}${d.mountPath} && mount -t tmpfs -o mode=1777${d.sizeLimit ? `,size=${bytes(d.sizeLimit)}` : ''} tmpfs ${R}${d.mountPath}`);
  }
  if (sc.readOnlyRootFilesystem) lines.push(`mount -o remount,ro ${R}`);
  if (o.cgroup) lines.push(`echo $$ > ${o.cgroup.dir}/cgroup.procs`);
  const env = Object.entries({ PATH: PATH_ENV, ...IMAGE.env, ...o.env }).map(([k, v]) => q(`${k}=${v}`));
  // spawnCli appends the host's dist/cli.js before the args: the container runs the image's entrypoint instead.
  lines.push('shift');
  lines.push(
    `exec env -i ${env.join(' ')} chroot ${R} /bin/sh -c ${q(`cd ${IMAGE.workdir} && exec setpriv ${setprivArgs(sc).join(' ')} -- "$@"`)} sh ${IMAGE.entrypoint.map(q).join(' ')} "$@"`,
  );
  return lines.join('\n');
}

/** /proc/PID/status as key → value. */
function procStatus(pid: number): Record<string, string> {
  return Object.fromEntries(
    readFileSync(`/proc/${pid}/status`, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1).trim()]),
  );
}

/** One kubelet httpGet probe: GET http://HOST:PORT/PATH within timeoutSeconds; 200-399 passes. */
async function probe(p: Obj, c: Obj, host: string): Promise<{ ok: boolean; detail: string }> {
  const port = typeof p.httpGet.port === 'number' ? p.httpGet.port : (c.ports as Obj[]).find((x) => x.name === p.httpGet.port)?.containerPort;
  if (!port) throw new Error(`probe port ${p.httpGet.port} is not a declared container port`);
  try {
    const res = await fetch(`http://${host}:${port}${p.httpGet.path}`, { signal: AbortSignal.timeout((p.timeoutSeconds ?? 1) * 1000) });
    const body = await res.text();
    return { ok: res.status >= 200 && res.status < 400, detail: `${res.status} ${body.trim()}` };
  } catch (err) {
    return { ok: false, detail: (err as Error).message };
  }
}

/** Probes as the kubelet does until one passes or failureThreshold attempts failed (periodSeconds apart). */
async function probeUntil(p: Obj, c: Obj, host: string): Promise<{ ok: boolean; detail: string; attempts: number }> {
  const threshold = p.failureThreshold ?? 3;
  let last = { ok: false, detail: '' };
  for (let attempt = 1; attempt <= threshold; attempt++) {
    last = await probe(p, c, host);
    if (last.ok) return { ...last, attempts: attempt };
    await new Promise((r) => setTimeout(r, (p.periodSeconds ?? 10) * 1000));
  }
  return { ...last, attempts: threshold };
}

WORKLOADS.forEach((w, i) => {
  describe.skipIf(SKIP)(`${w.file}: the ${w.kind} ${w.name} pod as declared`, () => {
    const nodeIf = `${TAG}n${i}`;
    const podIf = `${TAG}p${i}`;
    const NODE_IP = `10.244.${10 + i}.1`;
    const POD_IP = `10.244.${10 + i}.10`;
    const sc = w.c.securityContext as Obj;
    const env = Object.fromEntries(((w.c.env ?? []) as Obj[]).map((e) => [e.name as string, e.value as string]));
    const memLimit = w.c.resources?.limits?.memory as string | undefined;
    // The application: in the sidecar's pod itself; for the DaemonSet, a client pod of its own.
    const sharesPod = w.kind === 'Deployment';
    const app: Obj = sharesPod ? { pod: w.pod } : optInDnsConfig(w.text);
    const appIf = `${TAG}a${i}`;
    const appPeer = `${TAG}b${i}`;
    const APP_NODE_IP = `10.244.${20 + i}.1`;
    const APP_IP = `10.244.${20 + i}.10`;

    let dir: string;
    let pod: ChildProcess;
    let appPod: ChildProcess | undefined;
    let upstreams: ChildProcess;
    let fx: { doh: string; ca: string; kubeDns: string };
    let cgroup: MemoryCgroup | null = null;
    let dohd: Spawned;
    let appPid: number;
    const cleanup: string[] = [];

    /** Runs a command in the application container: its pod's network, its own mount namespace with the rendered resolv.conf. */
    const inApp = (cmd: string) =>
      sh(
        inNet(
          appPid,
          `unshare -m --propagation private sh -c ${q(`mount --bind ${dir}/resolv.conf /etc/resolv.conf && mount --bind ${dir}/nsswitch.conf /etc/nsswitch.conf && ${cmd}`)}`,
        ),
      );

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), `dohd-pod-${i}-`));
      chmodSync(dir, 0o755);
      // The pod: its network namespace, linked to the node; the pod's sysctls.
      pod = await holdNetns();
      await netnsReady(pod.pid!);
      cleanup.push(`ip link del ${nodeIf}`);
      await shOk(
        [
          `ip link add ${nodeIf} type veth peer name ${podIf}`,
          `ip link set ${podIf} netns ${pod.pid}`,
          `ip addr add ${NODE_IP}/24 dev ${nodeIf} && ip link set ${nodeIf} up`,
          inNet(pod.pid!, 'ip link set lo up'),
          inNet(pod.pid!, `ip addr add ${POD_IP}/24 dev ${podIf}`),
          inNet(pod.pid!, `ip link set ${podIf} up`),
          inNet(pod.pid!, `ip route add default via ${NODE_IP}`),
          ...((w.pod.securityContext?.sysctls ?? []) as Obj[]).map((s) => inNet(pod.pid!, `sysctl -q -w ${s.name}=${s.value}`)),
        ].join(' && '),
      );
      // The upstreams, on the pod's loopback.
      const names = w.configMaps.flatMap((cm) => (cm.data['dohd.yaml'] ? upstreamHosts(cm.data['dohd.yaml']) : []));
      upstreams = spawn('nsenter', ['-t', String(pod.pid), '-n', '--', process.execPath, '--import', LOADER, UPSTREAMS, ...names], { stdio: ['pipe', 'pipe', 'inherit'] });
      const first = await new Promise<string>((resolve, reject) => {
        createInterface({ input: upstreams.stdout! }).once('line', resolve);
        upstreams.once('exit', (code) => reject(new Error(`pod upstreams exited (${code})`)));
      });
      fx = JSON.parse(first) as typeof fx;
      // The ConfigMaps, as files in a directory each.
      const cmDirs = w.configMaps.map((cm, n) => {
        const d = join(dir, `configmap-${n}`);
        mkdirSync(d, { mode: 0o755 });
        for (const [key, value] of Object.entries(cm.data)) writeFileSync(join(d, key), key === 'dohd.yaml' ? rewriteConfig(value, fx) : value, { mode: 0o644 });
        return d;
      });
      if (memLimit) {
        const cg = memoryCgroup(`dohd-pod-${TAG}-${i}`, bytes(memLimit) / 2 ** 20);
        if ('skipped' in cg) console.warn(`${w.file}: the memory limit is not applied: ${cg.skipped}`);
        else cgroup = cg;
      }
      mkdirSync(join(dir, 'container'));
      const script = containerScript({ w, base: join(dir, 'container'), cmDirs, pkiDir: dirname(fx.ca), cgroup, env });
      dohd = spawnCli(w.c.args as string[], { cmd: ['nsenter', '-t', String(pod.pid), '-n', '--', 'unshare', '-m', '--propagation', 'private', 'sh', '-c', script, 'sh'], env: {} });
      await dohd.waitForLog((l) => l.msg === 'dohd listening', 30_000);

      // The application container's files: resolv.conf from dnsConfig; a Debian image's nsswitch.
      writeFileSync(join(dir, 'resolv.conf'), renderResolvConf(app.pod?.dnsConfig ?? app.dnsConfig));
      writeFileSync(join(dir, 'nsswitch.conf'), 'hosts: files dns\n');
      if (sharesPod) appPid = pod.pid!;
      else {
        // A client pod on the node. The Service's ClusterIP (the first opt-in nameserver) reaches
        // the node-local dohd: kube-proxy would DNAT it to the pod IP and undo that on the replies.
        // There is no iptables here, so the node routes the ClusterIP to the pod, which holds it on
        // its loopback and answers the client pods' subnet from it (what conntrack does to replies).
        appPod = await holdNetns();
        await netnsReady(appPod.pid!);
        appPid = appPod.pid!;
        const clusterIp = app.dnsConfig.nameservers[0] as string;
        cleanup.push(`ip link del ${appIf}`, `ip route del ${clusterIp}/32`);
        await shOk(
          [
            'sysctl -q -w net.ipv4.ip_forward=1',
            `ip link add ${appIf} type veth peer name ${appPeer}`,
            `ip link set ${appPeer} netns ${appPid}`,
            `ip addr add ${APP_NODE_IP}/24 dev ${appIf} && ip link set ${appIf} up`,
            inNet(appPid, 'ip link set lo up'),
            inNet(appPid, `ip addr add ${APP_IP}/24 dev ${appPeer}`),
            inNet(appPid, `ip link set ${appPeer} up`),
            inNet(appPid, `ip route add default via ${APP_NODE_IP}`),
            `ip route add ${clusterIp}/32 via ${POD_IP}`,
            inNet(pod.pid!, `ip addr add ${clusterIp}/32 dev lo`),
            inNet(pod.pid!, `ip route add ${APP_IP.replace(/\.\d+$/, '.0')}/24 via ${NODE_IP} src ${clusterIp}`),
          ].join(' && '),
        );
      }
    }, 120_000);

    afterAll(async () => {
      await dohd?.kill();
      upstreams?.kill();
      pod?.kill();
      appPod?.kill();
      for (const c of cleanup) await sh(c);
      cgroup?.remove();
      if (dir) await sh(`umount -R ${q(join(dir, 'container'))} 2>/dev/null; rm -rf ${q(dir)}`);
    });

    it('dohd runs as runAsUser/runAsGroup, with only the added capabilities in its bounding set, none effective, and no_new_privs', () => {
      const st = procStatus(dohd.child.pid!);
      expect(st.Name).toBe('node');
      expect(st.Uid!.split(/\s+/)).toEqual(Array(4).fill(String(sc.runAsUser)));
      expect(st.Gid!.split(/\s+/)).toEqual(Array(4).fill(String(sc.runAsGroup)));
      expect(st.Groups).toBe('');
      expect(BigInt(`0x${st.CapEff}`)).toBe(0n);
      expect(BigInt(`0x${st.CapPrm}`)).toBe(0n);
      expect(BigInt(`0x${st.CapInh}`)).toBe(0n);
      expect(BigInt(`0x${st.CapBnd}`)).toBe(boundingMask(sc.capabilities.add));
      expect(st.NoNewPrivs).toBe(sc.allowPrivilegeEscalation === false ? '1' : '0');
    });

    it('the args, NODE_OPTIONS and the image entrypoint are what the manifest and Dockerfile say; the memory limit is the cgroup\'s', () => {
      const pid = dohd.child.pid!;
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
      expect(cmdline).toEqual([...IMAGE.entrypoint, ...(w.c.args as string[])]);
      const environ = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
      for (const [k, v] of Object.entries(env)) expect(environ).toContain(`${k}=${v}`);
      if (cgroup && memLimit) {
        const memLine = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').find((l) => /(^|:)memory(,|:)/.test(l) || l.startsWith('0::'))!;
        const path = memLine.slice(memLine.lastIndexOf(':') + 1);
        expect(cgroup.dir.endsWith(path)).toBe(true);
        const limitFile = cgroup.dir.includes('/memory/') ? 'memory.limit_in_bytes' : 'memory.max';
        expect(Number(readFileSync(join(cgroup.dir, limitFile), 'utf8'))).toBe(bytes(memLimit));
      }
    });

    it('the root filesystem is read-only; the emptyDir volumes are writable, the ConfigMap is not', async () => {
      const pid = dohd.child.pid!;
      const tryWrite = (p: string) => sh(`nsenter -t ${pid} -m -r -w -- sh -c ${q(`echo x > ${p}/.w 2>&1 && rm ${p}/.w`)}`);
      const root = await tryWrite('');
      expect(root.code).not.toBe(0);
      expect(`${root.stdout}${root.stderr}`).toMatch(/Read-only file system/);
      for (const d of w.emptyDirs) expect((await tryWrite(d.mountPath)).code).toBe(0);
      for (const cm of w.configMaps.filter((x) => x.readOnly)) {
        const r = await tryWrite(cm.mountPath);
        expect(`${r.stdout}${r.stderr}`).toMatch(/Read-only file system/);
      }
      expect(w.emptyDirs.length + w.configMaps.length).toBeGreaterThan(0);
    });

    it('the application\'s resolv.conf is rendered from dnsConfig: nameservers, searches, ndots:5', () => {
      const text = readFileSync(join(dir, 'resolv.conf'), 'utf8');
      const dns = (app.pod?.dnsConfig ?? app.dnsConfig) as Obj;
      for (const n of dns.nameservers) expect(text).toContain(`nameserver ${n}\n`);
      expect(text).toContain(`search ${(dns.searches as string[]).join(' ')}\n`);
      expect(text).toMatch(/^options .*\bndots:5\b/m);
      expect(dns.searches).toContain('cluster.local');
    });

    it('getent and dig resolve a cluster name through the forward rule to kube-dns, and an external name through DoH', async () => {
      const svc = CLUSTER_RECORDS[0]!; // my-svc.default.svc.cluster.local
      const short = svc.name.split('.')[0]!; // "my-svc": found through the search list
      const ext = EXTERNAL_RECORDS[0]!;
      const g = await inApp(`getent hosts ${short}; getent hosts ${ext.name}`);
      expect(g.stdout).toMatch(new RegExp(`^${svc.data.replace(/\./g, '\\.')}\\s+${svc.name.replace(/\./g, '\\.')}$`, 'm'));
      expect(g.stdout).toMatch(new RegExp(`^${ext.data.replace(/\./g, '\\.')}\\s+${ext.name.replace(/\./g, '\\.')}$`, 'm'));
      const d = await inApp(`dig +search +time=3 +tries=1 ${short} A; dig +time=3 +tries=1 ${ext.name} A`);
      expect(d.stdout).toMatch(new RegExp(`^${svc.name.replace(/\./g, '\\.')}\\.\\s+\\d+\\s+IN\\s+A\\s+${svc.data.replace(/\./g, '\\.')}$`, 'm'));
      expect(d.stdout).toMatch(new RegExp(`^${ext.name.replace(/\./g, '\\.')}\\.\\s+\\d+\\s+IN\\s+A\\s+${ext.data.replace(/\./g, '\\.')}$`, 'm'));
      // The answers can only have come the declared ways: the DoH fixture knows no cluster name, kube-dns no external one.
      expect(d.stdout).toContain(`SERVER: ${(app.pod?.dnsConfig ?? app.dnsConfig).nameservers[0]}#53`);
    });

    it('the readinessProbe and livenessProbe, as declared (path, port, timeout), pass from the node', async () => {
      for (const p of [w.c.readinessProbe, w.c.livenessProbe] as Obj[]) {
        expect(p.httpGet).toBeDefined();
        const r = await probeUntil(p, w.c, POD_IP);
        expect(r, `${p.httpGet.path}: ${r.detail}`).toMatchObject({ ok: true });
        // Ready because the manifest's DoH providers (at the fixture) answer.
        if (p === w.c.readinessProbe) expect(r.detail).toMatch(new RegExp(`^200 ready: .*upstream .*${upstreamHosts(w.configMaps[0]!.data['dohd.yaml']!)[0]!.replace(/\./g, '\\.')}`));
      }
    }, 120_000);

    if (i === 0) {
      it('without the pod sysctl, the same container cannot open port 53 and says why', async () => {
        // A pod namespace of its own, with the kernel's default unprivileged port start (1024).
        const script = containerScript({ w, base: join(dir, 'container-nosysctl'), cmDirs: w.configMaps.map((_c, n) => join(dir, `configmap-${n}`)), pkiDir: dirname(fx.ca), cgroup: null, env });
        mkdirSync(join(dir, 'container-nosysctl'));
        const bare = spawnCli(w.c.args as string[], { cmd: ['unshare', '-n', 'sh', '-c', `ip link set lo up && exec unshare -m --propagation private sh -c "$0" "$@"`, script, 'sh'], env: {} });
        const { code } = await bare.exited;
        expect(code).not.toBe(0);
        expect(`${bare.stdout.join('\n')}${bare.stderr}`).toMatch(/cannot listen on [^ ]+:53\/udp: permission denied for a port below 1024/);
      }, 60_000);
    }
  });
});

// Keep the Service import honest: the DaemonSet's opt-in nameserver is its Service's ClusterIP.
it('the DaemonSet opt-in block names the node-local Service ClusterIP first, then the cluster DNS', () => {
  const ds = WORKLOADS.find((w) => w.kind === 'DaemonSet')!;
  const svc = parseAllDocuments(ds.text).map((d) => d.toJS() as Obj).find((d) => d.kind === 'Service')!;
  expect(optInDnsConfig(ds.text).dnsConfig.nameservers[0]).toBe(svc.spec.clusterIP);
});
