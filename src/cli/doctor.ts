/**
 * `dohd doctor`: the checklist for "dial tcp: lookup goproxy.cn: no such host", automated.
 * Every target can be overridden, so it can examine a staged machine (and its tests never
 * leave loopback): --resolv-conf, --hosts, --names, --port, --dns-port, --go, --upstream, --ca.
 * Exit 0 when nothing is broken (warnings allowed), 1 when something is, 2 on bad arguments.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { CommandModule } from 'yargs';
import { loadConfig, type ConfigOverrides } from '../config/load.js';
import { renderReport, runDoctor } from '../doctor/run.js';
import { fail, orExit } from './common.js';

export interface DoctorArgs {
  'resolv-conf': string;
  hosts: string;
  names?: string;
  port: number;
  'dns-port': number;
  timeout: number;
  go: string;
  config?: string;
  upstream?: string[];
  preset?: string;
  ca?: string;
  json?: boolean;
  'docker-config': string;
  'podman-config': string;
  'runtime-path'?: string;
  'resolved-conf': string;
}

export const doctorCommand: CommandModule<object, DoctorArgs> = {
  command: 'doctor',
  describe: 'find out why names (the Go module proxies first) do not resolve or connect, and print the fix',
  builder: (y) =>
    y
      .option('resolv-conf', { type: 'string', default: '/etc/resolv.conf', describe: 'resolver configuration to examine' })
      .option('hosts', { type: 'string', default: '/etc/hosts', describe: 'hosts file to examine' })
      .option('names', { type: 'string', describe: 'comma-separated names to check (default: the Go proxy names, GOPROXY and GOSUMDB hosts)' })
      .option('port', { type: 'number', default: 443, describe: 'TCP port of the TLS reachability probe' })
      .option('dns-port', { type: 'number', default: 53, describe: 'port the resolv.conf nameservers are asked on' })
      .option('timeout', { type: 'number', default: 3000, describe: 'milliseconds per lookup and per connection' })
      .option('go', { type: 'string', default: 'go', describe: 'the go command to ask for "go env", or "none"' })
      .option('config', { alias: 'c', type: 'string', describe: "dohd's configuration (its upstreams are used)" })
      .option('upstream', { alias: 'u', type: 'string', array: true, describe: 'DoH or DoT URL to compare with (repeatable; replaces the configured upstreams)' })
      .option('preset', { type: 'string', describe: 'named upstream set to check instead of the configured upstreams (default, cn)' })
      .option('ca', { type: 'string', describe: 'extra trusted CA file (PEM) for the upstreams and the TLS probes' })
      .option('json', { type: 'boolean', describe: 'print the report as JSON' })
      .option('docker-config', { type: 'string', default: '/etc/docker/daemon.json', describe: "Docker's daemon configuration (its \"dns\")" })
      .option('podman-config', { type: 'string', default: '/etc/containers/containers.conf', describe: "Podman's configuration (its dns_servers)" })
      .option('resolved-conf', { type: 'string', default: '/run/systemd/resolve/resolv.conf', describe: "systemd-resolved's upstream list (what container runtimes copy behind its stub)" })
      .option('runtime-path', { type: 'string', describe: 'directories (like PATH) searched for dockerd, docker, podman, nerdctl (default: $PATH)' }) as never,
  handler: async (args) => {
    process.exitCode = await doctor(args);
  },
};

export async function doctor(args: DoctorArgs): Promise<number> {
  for (const [flag, v, max] of [['--port', args.port, 65535], ['--dns-port', args['dns-port'], 65535], ['--timeout', args.timeout, 600_000]] as const) {
    if (!Number.isInteger(v) || v < 1 || v > max) fail(`${flag} must be a whole number from 1 to ${max}`, 2);
  }
  const ca = args.ca ? resolve(args.ca) : undefined;
  if (ca && !existsSync(ca)) fail(`--ca: cannot read ${ca}`, 2);
  const overrides: ConfigOverrides = {};
  if (args.upstream?.length) {
    overrides.upstream = args.upstream;
    if (ca) overrides.ca = ca;
  }
  if (args.preset) overrides.preset = args.preset;
  const config = orExit(() => loadConfig(args.config, overrides));
  const pins = Object.fromEntries(Object.entries(config.pins).map(([n, p]) => [n.toLowerCase().replace(/\.$/, ''), Array.isArray(p) ? p : p.addresses]));
  const names = args.names
    ?.split(',')
    .map((n) => n.trim().toLowerCase().replace(/\.$/, ''))
    .filter(Boolean);
  if (args.names !== undefined && !names?.length) fail('--names: give at least one name', 2);
  const report = await runDoctor({
    resolvConf: args['resolv-conf'],
    hostsFile: args.hosts,
    names: names ?? null,
    tlsPort: args.port,
    dnsPort: args['dns-port'],
    timeoutMs: args.timeout,
    upstreams: config.upstreams,
    goBin: args.go === 'none' ? null : args.go,
    env: process.env,
    ...(ca ? { ca } : {}),
    containers: {
      dockerConfig: args['docker-config'],
      podmanConfig: args['podman-config'],
      runtimePath: args['runtime-path'] ?? process.env.PATH ?? '',
      resolvedConf: args['resolved-conf'],
      ...(args.config ? { configFile: args.config } : {}),
      listen: config.listen,
      aclAllow: config.acl.allow,
    },
    pins,
  });
  process.stdout.write(args.json ? `${JSON.stringify(report, null, 2)}\n` : renderReport(report));
  return report.faults > 0 ? 1 : 0;
}
