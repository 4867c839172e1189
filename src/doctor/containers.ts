/**
 * Check: what DNS the machine's containers get. Docker (and nerdctl, and Podman on its default
 * network) copy the host's resolv.conf into a container without its loopback nameservers; when
 * nothing is left, which is exactly what a host resolving through dohd on 127.0.0.1 has, the
 * container gets 8.8.8.8 and 8.8.4.4 (moby#6388), and Go builds inside fail with
 * `lookup goproxy.cn on 8.8.8.8:53: i/o timeout`. The fix is to have dohd answer on the bridge
 * and the runtime hand that address to containers ("dns" in daemon.json).
 *
 * Only files are read (the runtime configs, PATH for the runtime's binaries); nothing is
 * contacted, and the runtimes are never run.
 */
import { accessSync, constants, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { delimiter, join } from 'node:path';
import ipaddr from 'ipaddr.js';
import { formatHostPort, parseHostPort } from '../config/address.js';
import { CidrList } from '../config/cidr.js';
import { parseResolvConf } from './resolv-conf.js';
import type { DoctorContext, Finding, Section } from './types.js';

/** The bridge gateways the runtimes create by default (what `dns` should name unless changed). */
export const DEFAULT_BRIDGE = { docker: '172.17.0.1', podman: '10.88.0.1', nerdctl: '10.4.0.1' } as const;

/** Where to look; every path is injectable so the check can examine a staged machine. */
export interface ContainerTargets {
  dockerConfig: string;
  podmanConfig: string;
  /** systemd-resolved's list of its upstreams: what Docker copies when resolv.conf is resolved's stub (127.0.0.53). */
  resolvedConf: string;
  /** Directories searched for the runtimes' binaries (PATH). */
  runtimePath: string;
  /** dohd's configuration file the listen addresses and ACL come from; absent: the defaults. */
  configFile?: string;
  /** dohd's listen addresses and ACL (from its configuration). */
  listen: string[];
  aclAllow: string[];
}

type Runtime = 'docker' | 'podman' | 'nerdctl';
const BINARIES: Record<Runtime, string[]> = { docker: ['dockerd', 'docker'], podman: ['podman'], nerdctl: ['nerdctl'] };

/** The first of `names` that is an executable file in one of PATH's directories. */
export function findInPath(names: string[], path: string | undefined): string | null {
  for (const dir of (path ?? '').split(delimiter).filter(Boolean)) {
    for (const n of names) {
      const p = join(dir, n);
      try {
        accessSync(p, constants.X_OK);
        return p;
      } catch {
        /* not here */
      }
    }
  }
  return null;
}

interface RuntimeDns {
  /** The file was read (absent: null). */
  file: string | null;
  /** The `dns` addresses it sets; empty: none. */
  dns: string[];
  /** The bridge gateway address it sets (daemon.json "bip"), if any. */
  bridge: string | null;
  error?: string;
}

/** A runtime's config file, or null when there is none to read (the runtime's defaults apply). */
function readText(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

/** /etc/docker/daemon.json: `dns` and `bip` (the docker0 address, "172.17.0.1/16" by default). */
export function readDockerConfig(file: string): RuntimeDns {
  const text = readText(file);
  if (text === null) return { file: null, dns: [], bridge: null };
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    return { file, dns: [], bridge: null, error: `not valid JSON (${(err as Error).message}): Docker will not start with it` };
  }
  const o = (doc && typeof doc === 'object' ? doc : {}) as Record<string, unknown>;
  const dns = Array.isArray(o.dns) ? o.dns.filter((x): x is string => typeof x === 'string') : [];
  const bip = typeof o.bip === 'string' ? o.bip.replace(/\/\d+$/, '') : null;
  return { file, dns, bridge: bip && isIP(bip) ? bip : null };
}

/**
 * containers.conf: `dns_servers = ["..."]` in the [containers] table. A small reader for this one
 * key (strings in a one- or multi-line array), not a TOML parser.
 */
export function readPodmanConfig(file: string): RuntimeDns {
  const text = readText(file);
  if (text === null) return { file: null, dns: [], bridge: null };
  let table = '';
  let collecting: string | null = null;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '').trim();
    if (collecting !== null) {
      collecting += ` ${line}`;
      if (line.includes(']')) break;
      continue;
    }
    const t = /^\[([^\]]+)\]$/.exec(line);
    if (t) table = t[1]!.trim();
    else if (table === 'containers' && /^dns_servers\s*=/.test(line)) {
      collecting = line.slice(line.indexOf('=') + 1);
      if (collecting.includes(']')) break;
    }
  }
  const dns = collecting ? [...collecting.matchAll(/"([^"]*)"|'([^']*)'/g)].map((m) => (m[1] ?? m[2])!).filter(Boolean) : [];
  return { file, dns, bridge: null };
}

const isLoopback = (a: string): boolean => {
  try {
    return ipaddr.process(a).range() === 'loopback';
  } catch {
    return false;
  }
};

/** Does dohd answer on ADDR:53 (its own address, or a wildcard of the family)? */
export function listensOn(listen: string[], address: string): boolean {
  const fam = isIP(address);
  return listen.some((text) => {
    const hp = parseHostPort(text);
    if (typeof hp === 'string' || hp.port !== 53) return false;
    if (hp.host === address) return true;
    return (hp.host === '0.0.0.0' && fam === 4) || (hp.host === '::' && fam === 6);
  });
}

/** The dohd side of every fix: listen on the address (a comment: the file is the user's), then restart. */
function listenFix(address: string): string[] {
  return [`# in dohd's configuration, add "${formatHostPort({ host: address, port: 53 })}" to "listen"`, 'sudo systemctl restart dohd'];
}

/** The daemon.json line (written when there is no file yet), the dohd listen entry, and the restarts, for a bridge address. */
function dockerFix(bridge: string, file: string, exists: boolean): string[] {
  return [
    ...listenFix(bridge),
    exists ? `# in ${file}, add:  "dns": ["${bridge}"]` : `echo '{ "dns": ["${bridge}"] }' | sudo tee ${file}`,
    'sudo systemctl restart docker   # containers created before keep their resolv.conf: recreate them',
  ];
}

export function checkContainers(ctx: DoctorContext): Section {
  const t = ctx.opts.containers;
  const s: Section = { check: 'containers', title: 'containers (Docker, Podman, nerdctl)', lines: [], findings: [] };
  const add = (level: Finding['level'], message: string, fix?: string[]) => s.findings.push({ check: s.check, level, message, ...(fix ? { fix } : {}) });
  if (!t) return s;
  const found = (Object.keys(BINARIES) as Runtime[]).map((r) => ({ r, at: findInPath(BINARIES[r], t.runtimePath) })).filter((x) => x.at);
  if (found.length === 0) {
    s.lines.push(`no container runtime found (dockerd, docker, podman, nerdctl in ${t.runtimePath || '(no directory)'})`);
    return s;
  }
  s.lines.push(`found: ${found.map((x) => `${x.r} (${x.at})`).join(', ')}`);
  let host = ctx.resolv?.nameservers ?? [];
  if (host.length === 1 && host[0] === '127.0.0.53') {
    // Docker (and Podman) see resolved's stub and copy resolved's own upstream list instead.
    try {
      host = parseResolvConf(readFileSync(t.resolvedConf, 'utf8')).nameservers;
      s.lines.push(`resolv.conf is systemd-resolved's stub: runtimes copy ${t.resolvedConf} (${host.join(', ') || 'no nameserver'})`);
    } catch {
      /* no resolved file: the runtimes fall back to the stub file itself */
    }
  }
  const loopbackOnly = host.length > 0 && host.every(isLoopback);
  const acl = new CidrList(t.aclAllow);
  s.lines.push(`dohd listens on: ${t.listen.join(', ')} (${t.configFile ? `from ${t.configFile}` : 'the defaults: give --config FILE to check your configuration'})`);

  const judge = (runtime: Runtime, conf: RuntimeDns, key: string, bridge: string, fix: string[]) => {
    if (conf.error) {
      add('fault', `${conf.file}: ${conf.error}`);
      return;
    }
    if (conf.dns.length === 0) {
      if (loopbackOnly) {
        add(
          'fault',
          `${runtime}: no ${key}, and the host's resolv.conf lists only loopback resolvers (${host.join(', ')}), which a container cannot reach: ` +
            `${runtime} gives containers 8.8.8.8 and 8.8.4.4 instead (moby#6388), and "go mod download" in a container fails with "lookup goproxy.cn on 8.8.8.8:53". ` +
            `Have dohd answer on the bridge (${bridge}) and hand that to containers:`,
          fix,
        );
      } else {
        s.lines.push(`${runtime}: no ${key}: containers get the host's non-loopback nameservers (${host.filter((n) => !isLoopback(n)).join(', ') || 'none'}), not dohd`);
      }
      return;
    }
    for (const a of conf.dns) {
      if (isIP(a) === 0) add('fault', `${runtime}: ${key} "${a}" is not an IP address`);
      else if (isLoopback(a)) add('fault', `${runtime}: ${key} ${a} is a loopback address: inside a container it is the container itself, not dohd. Use the bridge address (${bridge}):`, fix);
      else if (!listensOn(t.listen, a)) {
        add('fault', `${runtime}: ${key} is ${a}, but dohd does not listen on ${formatHostPort({ host: a, port: 53 })}: containers' queries go nowhere`, listenFix(a));
      } else {
        const parsed = ipaddr.process(a);
        if (!acl.has(parsed)) {
          add('fault', `${runtime}: dohd listens on ${a}, but acl.allow does not admit that network: containers get REFUSED`, [
            `# in dohd's configuration, add the bridge's subnet to acl.allow ("ip addr show" names it; docker0 is 172.17.0.0/16 by default)`,
            'sudo systemctl restart dohd',
          ]);
        } else add('ok', `${runtime}: containers are given ${a}, where dohd listens`);
      }
    }
  };

  const runtimes = new Set(found.map((x) => x.r));
  if (runtimes.has('docker')) {
    const conf = readDockerConfig(t.dockerConfig);
    const bridge = conf.bridge ?? DEFAULT_BRIDGE.docker;
    judge('docker', conf, `"dns" in ${t.dockerConfig}`, bridge, dockerFix(bridge, t.dockerConfig, conf.file !== null));
  }
  if (runtimes.has('podman')) {
    const conf = readPodmanConfig(t.podmanConfig);
    const bridge = DEFAULT_BRIDGE.podman;
    judge('podman', conf, `dns_servers in ${t.podmanConfig}`, bridge, [
      ...listenFix(bridge),
      `# in ${t.podmanConfig}, in the [containers] table:  dns_servers = ["${bridge}"]   (new containers get it)`,
    ]);
  }
  if (runtimes.has('nerdctl') && loopbackOnly) {
    // nerdctl.toml has no DNS setting: it is given per container.
    add('warn', `nerdctl: containers get 8.8.8.8 and 8.8.4.4 unless each is started with --dns (nerdctl.toml has no such setting)`, [
      ...listenFix(DEFAULT_BRIDGE.nerdctl),
      `nerdctl run --dns ${DEFAULT_BRIDGE.nerdctl} ...   # compose: dns: [${DEFAULT_BRIDGE.nerdctl}]`,
    ]);
  }
  return s;
}
