/** What the doctor's checks share: options, findings, and the results earlier checks leave for later ones. */
import type { UpstreamConfig } from '../config/schema.js';
import type { ContainerTargets } from './containers.js';
import type { HostsLine } from '../stages/hosts/hosts-file.js';

export type Level = 'ok' | 'info' | 'warn' | 'fault';

/** One thing a check found; `fix` holds the exact commands that repair it. */
export interface Finding {
  check: string;
  level: Level;
  message: string;
  fix?: string[];
}

/** A check's part of the report: a few lines of facts, then its findings. */
export interface Section {
  check: string;
  title: string;
  lines: string[];
  findings: Finding[];
}

/** Every target is overridable, so the doctor can be pointed at a staged machine. */
export interface DoctorOptions {
  resolvConf: string;
  hostsFile: string;
  /** Names to check; null: the Go proxy names, plus the hosts of GOPROXY and GOSUMDB. */
  names: string[] | null;
  /** Port of the TLS reachability probe (443: the Go proxies speak HTTPS). */
  tlsPort: number;
  /** Port the resolv.conf nameservers are asked on (53). */
  dnsPort: number;
  timeoutMs: number;
  /** dohd's DoH upstreams, from its configuration or --upstream. */
  upstreams: UpstreamConfig[];
  /** The go command to ask for `go env`; null: do not run it. */
  goBin: string | null;
  env: NodeJS.ProcessEnv;
  /** Extra CA (PEM file) trusted by the TLS probes. */
  ca?: string;
  /** What containers are given as DNS (runtime configs, dohd's listen and ACL); left out: not checked. */
  containers?: ContainerTargets;
  /** dohd's pins (name → addresses), from its configuration: answers that are the user's own choice. */
  pins?: Record<string, string[]>;
}

export type LookupStatus = 'ok' | 'nodata' | 'nxdomain' | 'servfail' | 'refused' | 'timeout' | 'unreachable' | 'error';

/** A name looked up one way (one nameserver, or the DoH upstreams): A and AAAA together. */
export interface Lookup {
  status: LookupStatus;
  addresses: string[];
  detail?: string;
  ms: number;
}

export interface ResolvConf {
  nameservers: string[];
  search: string[];
  ndots: number;
  edns0: boolean;
  options: string[];
}

export interface GoEnv {
  /** Effective values (go env when Go is installed, else the environment). */
  values: Record<string, string>;
  /** Which of them the environment set. */
  fromEnv: Record<string, string>;
  goFound: boolean;
  goError?: string;
  /** Hosts of the proxies in GOPROXY, in order. */
  proxyHosts: string[];
  sumdbHost: string | null;
  proxyUnset: boolean;
}

export interface Probe {
  name: string;
  address: string;
  port: number;
  /** Where the address came from: the hosts file, the system resolver, the DoH upstreams. */
  sources: ('hosts' | 'system' | 'doh')[];
  ok: boolean;
  stage: 'tcp' | 'tls' | 'skipped' | 'done';
  detail: string;
  ms: number;
}

export interface DoctorContext {
  /** Each path of each upstream, asked directly (upstream-paths.ts). */
  paths?: import('./upstream-paths.js').PathResult[];
  opts: DoctorOptions;
  names: string[];
  resolv: ResolvConf | null;
  go: GoEnv | null;
  hosts: HostsLine[];
  /** name → nameserver → lookup */
  system: Map<string, Map<string, Lookup>>;
  /** name → lookup through the DoH upstreams */
  doh: Map<string, Lookup>;
  probes: Probe[];
}

/** The address-literal form used in "ADDR:PORT" messages. */
export function hostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}
