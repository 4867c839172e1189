/**
 * What `cloudflared proxy-dns` (removed in cloudflared 2026.2.0) accepted, mapped onto
 * dohd's configuration. Same names, same defaults, same precedence as cloudflared's
 * urfave/cli flags: command line, then environment variable, then the YAML config file,
 * then the default. Anything dohd cannot honour is refused by name, never ignored.
 *
 *   flag                  variable                       YAML key(s)                                   default
 *   --address             TUNNEL_DNS_ADDRESS             proxy-dns-address, address                    localhost
 *   --port                TUNNEL_DNS_PORT                proxy-dns-port, port                          53
 *   --upstream (repeat)   TUNNEL_DNS_UPSTREAM (a,b)      proxy-dns-upstream, upstream                  https://1.1.1.1/dns-query, https://1.0.0.1/dns-query
 *   --bootstrap (repeat)  TUNNEL_DNS_BOOTSTRAP (a,b)     proxy-dns-bootstrap, bootstrap                https://162.159.36.1/dns-query, https://162.159.46.1/dns-query, https://[2606:4700:4700::1111]/dns-query, https://[2606:4700:4700::1001]/dns-query
 *   --max-upstream-conns  TUNNEL_DNS_MAX_UPSTREAM_CONNS  proxy-dns-max-upstream-conns, max-upstream-conns   5
 *   --loglevel            TUNNEL_LOGLEVEL                loglevel                                      info
 *   --metrics             TUNNEL_METRICS                 metrics                                       off (cloudflared: localhost:, a random port)
 *
 * `--metrics ADDR:PORT` is dohd's admin listener (/metrics, /healthz, /readyz, /status); "localhost:"
 * (cloudflared's own default) is 127.0.0.1 on a port the kernel picks. Without it dohd proxy-dns
 * opens no admin listener. `--ca FILE` (dohd's own) trusts a private CA for the upstream and
 * bootstrap URLs.
 */
import { existsSync, readFileSync } from 'node:fs';
import { homedir, networkInterfaces, type NetworkInterfaceInfo } from 'node:os';
import { join } from 'node:path';
import { isIP } from 'node:net';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { resolve } from 'node:path';
import { checkPemFile } from './check.js';
import { ConfigError } from './load.js';
import { parseHostPort, type HostPort } from './address.js';
import { selfTargetProblems, type QueryTarget } from './self-address.js';

export const CLOUDFLARED_DEFAULTS = {
  address: 'localhost',
  port: 53,
  upstream: ['https://1.1.1.1/dns-query', 'https://1.0.0.1/dns-query'],
  bootstrap: [
    'https://162.159.36.1/dns-query',
    'https://162.159.46.1/dns-query',
    'https://[2606:4700:4700::1111]/dns-query',
    'https://[2606:4700:4700::1001]/dns-query',
  ],
  maxUpstreamConns: 5,
  loglevel: 'info',
} as const;

/** Where cloudflared looked for config.yml / config.yaml when --config was not given, in order. */
export const CLOUDFLARED_CONFIG_DIRS = ['~/.cloudflared', '~/.cloudflare-warp', '~/cloudflare-warp', '/etc/cloudflared', '/usr/local/etc/cloudflared'];

type Name = 'address' | 'port' | 'upstream' | 'bootstrap' | 'maxUpstreamConns' | 'loglevel' | 'metrics';

const ENV: Record<Name, string> = {
  address: 'TUNNEL_DNS_ADDRESS',
  port: 'TUNNEL_DNS_PORT',
  upstream: 'TUNNEL_DNS_UPSTREAM',
  bootstrap: 'TUNNEL_DNS_BOOTSTRAP',
  maxUpstreamConns: 'TUNNEL_DNS_MAX_UPSTREAM_CONNS',
  loglevel: 'TUNNEL_LOGLEVEL',
  metrics: 'TUNNEL_METRICS',
};

const FLAG: Record<Name, string> = {
  address: '--address',
  port: '--port',
  upstream: '--upstream',
  bootstrap: '--bootstrap',
  maxUpstreamConns: '--max-upstream-conns',
  loglevel: '--loglevel',
  metrics: '--metrics',
};

/** YAML keys: the `proxy-dns` command's own flag names, and the tunnel command's `proxy-dns-*` ones. */
const YAML_KEYS: Record<string, Name> = {
  address: 'address',
  'proxy-dns-address': 'address',
  port: 'port',
  'proxy-dns-port': 'port',
  upstream: 'upstream',
  'proxy-dns-upstream': 'upstream',
  bootstrap: 'bootstrap',
  'proxy-dns-bootstrap': 'bootstrap',
  'max-upstream-conns': 'maxUpstreamConns',
  'proxy-dns-max-upstream-conns': 'maxUpstreamConns',
  loglevel: 'loglevel',
  metrics: 'metrics',
};

/** cloudflared's log levels and dohd's (pino) names for them. */
const LOG_LEVELS: Record<string, string> = { trace: 'trace', debug: 'debug', info: 'info', warn: 'warn', error: 'error', fatal: 'fatal' };

/** The command line as parsed (only what was given). */
export interface ProxyDnsFlags {
  address?: string;
  port?: string | number;
  upstream?: string[];
  bootstrap?: string[];
  maxUpstreamConns?: string | number;
  loglevel?: string;
  config?: string;
  metrics?: string;
  /** dohd's own: an extra trusted CA file (PEM) for the upstream and bootstrap URLs. */
  ca?: string;
  /** `--proxy-dns` (the tunnel command's switch). */
  proxyDns?: boolean;
  /** `--no-autoupdate` arrives as autoupdate: false. */
  autoupdate?: boolean;
}

export interface Setting<T> {
  value: T;
  /** Where the value came from, for messages: `--port`, `TUNNEL_DNS_PORT`, `config.yml: proxy-dns-port`, `default`. */
  from: string;
}

export interface ProxyDnsSettings {
  address: Setting<string>;
  port: Setting<number>;
  upstream: Setting<string[]>;
  bootstrap: Setting<string[]>;
  maxUpstreamConns: Setting<number>;
  loglevel: Setting<string>;
  /** The admin listener's ADDR:PORT (`--metrics`), or null: none. */
  metrics: Setting<string | null>;
  /** Extra trusted CA file (absolute path), from --ca. */
  ca?: string;
  /** The cloudflared YAML file read, if any, and whether it was found in a default place. */
  configFile: { path: string; searched: boolean } | null;
}

/** cloudflared's default config file: the first of config.yml / config.yaml in its search directories. */
export function findCloudflaredConfig(home = homedir()): string | null {
  for (const dir of CLOUDFLARED_CONFIG_DIRS) {
    for (const file of ['config.yml', 'config.yaml']) {
      const path = join(dir.replace(/^~(?=\/)/, home), file);
      if (existsSync(path)) return path;
    }
  }
  return null;
}

/** Resolves every setting from flags, environment, YAML and defaults; throws ConfigError naming what it cannot honour. */
export function proxyDnsSettings(flags: ProxyDnsFlags, env: NodeJS.ProcessEnv = process.env, home = homedir()): ProxyDnsSettings {
  const problems: string[] = [];
  if (flags.ca !== undefined) {
    const p = flags.ca.trim() === '' ? 'no file named' : checkPemFile(resolve(flags.ca));
    if (p) problems.push(`--ca: ${p}`);
  }
  if (flags.proxyDns === false) problems.push('--proxy-dns=false turns the DNS proxy off: nothing for dohd proxy-dns to do');
  if (flags.autoupdate === true) problems.push('--autoupdate: dohd never updates itself; drop the flag (--no-autoupdate is fine)');

  let configFile: ProxyDnsSettings['configFile'] = null;
  if (flags.config !== undefined) configFile = { path: flags.config, searched: false };
  else {
    const found = findCloudflaredConfig(home);
    if (found) configFile = { path: found, searched: true };
  }
  const yaml = configFile ? readCloudflaredYaml(configFile.path, configFile.searched, problems) : {};

  const pick = <T>(name: Name, parse: (raw: unknown, from: string) => T, fallback: T): Setting<T> => {
    const fromFlag = (flags as Record<string, unknown>)[name];
    const candidates: [unknown, string][] = [];
    if (fromFlag !== undefined && !(Array.isArray(fromFlag) && fromFlag.length === 0)) candidates.push([fromFlag, FLAG[name]]);
    const e = env[ENV[name]];
    if (e !== undefined && e !== '') candidates.push([name === 'upstream' || name === 'bootstrap' ? splitList(e) : e, ENV[name]]);
    if (yaml[name]) candidates.push([yaml[name]!.value, yaml[name]!.from]);
    const first = candidates[0];
    if (!first) return { value: fallback, from: 'default' };
    try {
      return { value: parse(first[0], first[1]), from: first[1] };
    } catch (err) {
      if (!(err instanceof Problem)) throw err;
      problems.push(err.message);
      return { value: fallback, from: first[1] };
    }
  };

  const settings: ProxyDnsSettings = {
    address: pick('address', parseAddress, CLOUDFLARED_DEFAULTS.address),
    port: pick('port', (v, from) => parseInteger(v, from, 0, 65535), CLOUDFLARED_DEFAULTS.port),
    upstream: pick('upstream', (v, from) => parseUrls(v, from, false), [...CLOUDFLARED_DEFAULTS.upstream]),
    bootstrap: pick('bootstrap', (v, from) => parseUrls(v, from, true), [...CLOUDFLARED_DEFAULTS.bootstrap]),
    maxUpstreamConns: pick('maxUpstreamConns', (v, from) => parseInteger(v, from, 0, 1_000_000), CLOUDFLARED_DEFAULTS.maxUpstreamConns),
    loglevel: pick('loglevel', parseLogLevel, CLOUDFLARED_DEFAULTS.loglevel),
    metrics: pick<string | null>('metrics', parseMetrics, null),
    ...(flags.ca ? { ca: resolve(flags.ca) } : {}),
    configFile,
  };
  if (problems.length === 0) {
    // The loop guard, worded with cloudflared's names: no upstream or bootstrap URL may be dohd's own listener.
    const listen = listenAddresses(settings).map((l) => parseHostPort(l)).filter((l): l is HostPort => typeof l !== 'string');
    problems.push(...selfTargetProblems(listen, [...urlTargets(settings.upstream), ...urlTargets(settings.bootstrap)]));
  }
  if (problems.length) throw new ConfigError(problems.join('; '), problems);
  return settings;
}

/**
 * Does this machine have IPv6 at all (any interface address)? Where interfaces cannot be
 * listed (a sandbox without netlink), the kernel's list of IPv6 addresses says it.
 */
export function machineHasIpv6(list: () => NodeJS.Dict<NetworkInterfaceInfo[]> = networkInterfaces, ifInet6 = '/proc/net/if_inet6'): boolean {
  try {
    return Object.values(list()).some((l) => l?.some((a) => a.family === 'IPv6'));
  } catch {
    try {
      return readFileSync(ifInet6, 'utf8').trim() !== '';
    } catch {
      return false;
    }
  }
}

/**
 * dohd `listen` entries for cloudflared's --address/--port. cloudflared (Go) resolved
 * "localhost" to its first IPv4 address, and listened on a wildcard ("", 0.0.0.0 or ::)
 * with one dual-stack socket: IPv4 and IPv6. dohd binds the two families separately.
 */
export function listenAddresses(s: Pick<ProxyDnsSettings, 'address' | 'port'>, hasIpv6: boolean = machineHasIpv6()): string[] {
  const a = s.address.value.replace(/^\[|\]$/g, '');
  const port = s.port.value;
  if (a === '' || a === '0.0.0.0' || a === '::') return hasIpv6 ? [`0.0.0.0:${port}`, `[::]:${port}`] : [`0.0.0.0:${port}`];
  if (a.toLowerCase() === 'localhost') return [`127.0.0.1:${port}`];
  return [isIP(a) === 6 ? `[${a}]:${port}` : `${a}:${port}`];
}

function urlTargets(setting: Setting<string[]>): QueryTarget[] {
  return setting.value.map((url) => {
    const u = new URL(url);
    return { key: setting.from, text: url, host: u.hostname, port: u.port ? Number(u.port) : 443 };
  });
}

function readCloudflaredYaml(path: string, searched: boolean, problems: string[]): Partial<Record<Name, Setting<unknown>>> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    problems.push(`cannot read cloudflared config file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    return {};
  }
  let doc: unknown;
  try {
    doc = parseYaml(text, { uniqueKeys: true });
  } catch (err) {
    const msg = err instanceof YAMLParseError ? err.message.split('\n')[0] : (err as Error).message;
    problems.push(`${path}: not valid YAML: ${msg}`);
    return {};
  }
  if (doc == null) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    problems.push(`${path}: the top level must be a mapping of cloudflared settings`);
    return {};
  }
  const out: Partial<Record<Name, Setting<unknown>>> = {};
  const foreign: string[] = [];
  for (const [key, value] of Object.entries(doc as Record<string, unknown>)) {
    const name = YAML_KEYS[key];
    if (name) {
      if (out[name]) {
        problems.push(`${path}: "${out[name]!.from.split(': ')[1]}" and "${key}" set the same thing; keep one`);
        continue;
      }
      out[name] = { value, from: `${path}: ${key}` };
    } else if (key === 'proxy-dns') {
      if (value !== true) problems.push(`${path}: proxy-dns: ${JSON.stringify(value)} turns the DNS proxy off: nothing for dohd proxy-dns to do`);
    } else if (key === 'no-autoupdate') {
      if (value !== true) problems.push(`${path}: no-autoupdate: ${JSON.stringify(value)} asks for automatic updates, which dohd never does; remove the key or set it to true`);
    } else foreign.push(key);
  }
  if (foreign.length) {
    problems.push(
      `${path}${searched ? " (found in cloudflared's default place)" : ''}: ${foreign.map((k) => `"${k}"`).join(', ')} ${foreign.length > 1 ? 'are' : 'is'} not part of cloudflared's DNS proxy, which is all dohd proxy-dns replaces; ` +
        'give dohd a file with only the proxy-dns keys (--config FILE)',
    );
  }
  return out;
}

/** A value that cannot be used, worded for the operator. */
class Problem extends Error {}

function splitList(text: string): string[] {
  // urfave/cli splits a list variable on commas and trims each item.
  return text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

function parseAddress(v: unknown, from: string): string {
  if (typeof v !== 'string') throw new Problem(`${from}: expected an address, got ${JSON.stringify(v)}`);
  const host = v.trim().replace(/^\[|\]$/g, '');
  if (host === '' || host.toLowerCase() === 'localhost' || isIP(host)) return host;
  throw new Problem(`${from}: "${v}" is not an IP address (dohd listens on IP addresses: 127.0.0.1, ::1, 0.0.0.0, ...)`);
}

function parseInteger(v: unknown, from: string, min: number, max: number): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\s*-?\d+\s*$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < min || n > max) throw new Problem(`${from}: expected a whole number from ${min} to ${max}, got ${JSON.stringify(v)}`);
  return n;
}

function parseUrls(v: unknown, from: string, ipHostOnly: boolean): string[] {
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || list.length === 0) throw new Problem(`${from}: expected one or more URLs, got ${JSON.stringify(v)}`);
  for (const item of list) {
    if (typeof item !== 'string') throw new Problem(`${from}: expected URLs, got ${JSON.stringify(item)}`);
    let u: URL;
    try {
      u = new URL(item);
    } catch {
      throw new Problem(`${from}: "${item}" is not a URL`);
    }
    if (u.protocol !== 'https:') throw new Problem(`${from}: "${item}" must be an https:// URL (dohd speaks DNS-over-HTTPS only)`);
    // cloudflared's own rule for bootstrap URLs: they are how a host name is found, so they cannot need one.
    if (ipHostOnly && !isIP(u.hostname.replace(/^\[|\]$/g, ''))) throw new Problem(`${from}: "${item}": a bootstrap URL's host must be an IP address`);
  }
  return list as string[];
}

/** cloudflared's metrics address: HOST:PORT, "localhost:" (a random port), ":PORT" (every address). */
function parseMetrics(v: unknown, from: string): string {
  if (typeof v !== 'string' || !v.includes(':')) throw new Problem(`${from}: expected ADDR:PORT (like localhost:9153), got ${JSON.stringify(v)}`);
  const i = v.lastIndexOf(':');
  let host = v.slice(0, i).trim().replace(/^\[|\]$/g, '');
  const port = v.slice(i + 1).trim() || '0';
  if (host === '' ) host = '0.0.0.0';
  if (host.toLowerCase() === 'localhost') host = '127.0.0.1';
  const text = isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
  const hp = parseHostPort(text);
  if (typeof hp === 'string') throw new Problem(`${from}: ${JSON.stringify(v)}: ${hp}`);
  return text;
}

function parseLogLevel(v: unknown, from: string): string {
  const level = typeof v === 'string' ? LOG_LEVELS[v.trim().toLowerCase()] : undefined;
  if (!level) throw new Problem(`${from}: unknown log level ${JSON.stringify(v)} (debug, info, warn, error, fatal)`);
  return level;
}
