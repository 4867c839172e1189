/**
 * Checks that span several keys or touch the file system (run after the schema):
 * group references, bootstrap addresses of group DoH upstreams, files that must exist,
 * and bounds that only make sense together. Each problem names its key.
 */
import { accessSync, constants, readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { KNOWN_BOOTSTRAP } from './defaults.js';
import type { Config } from './schema.js';

export const DEFAULT_GROUP = 'default';

/** The serve-stale client budget: as configured, else 72% of the deadline (RFC 8767's 1.8 s of 2.5 s). */
export function staleClientTimeout(config: Pick<Config, 'cache' | 'timeoutMs'>): number {
  return config.cache.staleClientTimeoutMs ?? Math.round(config.timeoutMs * 0.72);
}

export function checkConfig(config: Config, baseDir: string): string[] {
  const problems: string[] = [];
  const groups = Object.keys(config.groups);
  const known = () => [DEFAULT_GROUP, ...groups].map((g) => `"${g}"`).join(', ');

  for (const [g, group] of Object.entries(config.groups)) {
    group.upstreams.forEach((u, i) => {
      const where = `groups.${g}.upstreams[${i}]`;
      // Whether it is one of dohd's own listeners is checked with every other target (self-address.ts).
      problems.push(...completeDohUpstream(u, where, baseDir));
    });
  }
  for (const [domain, target] of Object.entries(config.forward)) {
    if (target !== DEFAULT_GROUP && !config.groups[target]) problems.push(`forward.${domain}: no group "${target}" (groups: ${known()})`);
  }
  if (config.fallback !== undefined && !config.groups[config.fallback]) {
    problems.push(`fallback: no group "${config.fallback}" under groups (groups: ${groups.map((x) => `"${x}"`).join(', ') || 'none'})`);
  }
  const c = config.cache;
  if (c.minTtl > c.maxTtl) problems.push(`cache.minTtl: ${c.minTtl} is above cache.maxTtl (${c.maxTtl})`);
  if (c.staleClientTimeoutMs !== undefined && c.staleClientTimeoutMs >= config.timeoutMs)
    problems.push(`cache.staleClientTimeoutMs: ${c.staleClientTimeoutMs} must be below timeoutMs (${config.timeoutMs}), or stale answers come after the deadline`);
  if (c.file) {
    c.file = resolve(baseDir, c.file);
    const dir = dirname(c.file);
    try {
      if (!statSync(dir).isDirectory()) problems.push(`cache.file: ${dir} is not a directory`);
    } catch (err) {
      problems.push(`cache.file: directory ${dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  if (config.hedge.minDelayMs > config.hedge.maxDelayMs)
    problems.push(`hedge.minDelayMs: ${config.hedge.minDelayMs} is above hedge.maxDelayMs (${config.hedge.maxDelayMs})`);
  if (config.health.backoffMs > config.health.maxBackoffMs)
    problems.push(`health.backoffMs: ${config.health.backoffMs} is above health.maxBackoffMs (${config.health.maxBackoffMs})`);
  if (config.hosts) {
    config.hosts.file = resolve(baseDir, config.hosts.file);
    try {
      accessSync(config.hosts.file, constants.R_OK);
    } catch (err) {
      problems.push(`hosts.file: cannot read ${config.hosts.file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  if (config.pinVerify.ca) {
    config.pinVerify.ca = resolve(baseDir, config.pinVerify.ca);
    const p = checkPemFile(config.pinVerify.ca);
    if (p) problems.push(`pinVerify.ca: ${p}`);
  }
  return problems;
}

/**
 * Fills in and checks what a DoH upstream needs to be reached without the system resolver:
 * bootstrap IPs (built in for known providers; none needed for an IP host) and a readable CA
 * file (made absolute). Returns the problems, each naming its key (`where`).
 */
export function completeDohUpstream(u: { url?: string | undefined; bootstrap?: string[] | undefined; ca?: string | undefined }, where: string, baseDir: string): string[] {
  const problems: string[] = [];
  if (u.url?.startsWith('https:') || u.url?.startsWith('tls:')) {
    const host = new URL(u.url).hostname.replace(/^\[|\]$/g, '');
    const isIpHost = /^[\d.]+$/.test(host) || host.includes(':');
    if (!u.bootstrap && !isIpHost) {
      const known = KNOWN_BOOTSTRAP[host.toLowerCase()];
      if (known) u.bootstrap = [...known];
      else
        problems.push(
          `${where}.bootstrap: "${host}" needs bootstrap IP addresses (dohd never asks the system resolver for an upstream's address); add bootstrap: [IP, ...] or use an IP in the URL`,
        );
    }
  }
  if (u.ca) {
    u.ca = resolve(baseDir, u.ca);
    const p = checkPemFile(u.ca);
    if (p) problems.push(`${where}.ca: ${p}`);
  }
  return problems;
}

export function checkPemFile(file: string): string | null {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (err) {
    return `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) return `${file} holds no PEM certificate`;
  return null;
}
