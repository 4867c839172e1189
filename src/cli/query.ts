/**
 * `dohd query NAME [TYPE]`: one query, printed the way dig prints it, plus who answered and
 * how fast. To a running dohd (`--server`, UDP with TCP on truncation; dohd on loopback says
 * which upstream won, through an EDNS option only `dohd query` asks for), or straight to a
 * DoH server (`--doh URL`, reached through `--bootstrap` IPs, never the system resolver).
 */
import { existsSync } from 'node:fs';
import { isIP } from 'node:net';
import { performance } from 'node:perf_hooks';
import { resolve } from 'node:path';
import dnsPacket from 'dns-packet';
import type { CommandModule } from 'yargs';
import { formatHostPort, parseHostPort } from '../config/address.js';
import { KNOWN_BOOTSTRAP } from '../config/defaults.js';
import { buildClientQuery, DnsClientError, exchange, queryType } from '../dns/client.js';
import { parseExplain } from '../dns/explain.js';
import { explainOption, formatMessage, formatShort } from '../dns/format.js';
import { decodeQuery } from '../dns/message.js';
import { buildUpstreamQuery } from '../dns/upstream-query.js';
import { DohUpstream } from '../upstream/doh/doh.js';
import { DotUpstream, parseDotUrl } from '../upstream/dot/dot.js';
import { UpstreamError } from '../upstream/errors.js';
import { verdictOf } from '../upstream/verdict.js';
import { fail } from './common.js';

export interface QueryArgs {
  name: string;
  type: string;
  server: string;
  tcp?: boolean;
  doh?: string;
  dot?: string;
  bootstrap?: string[];
  ca?: string;
  timeout: number;
  short?: boolean;
}

export const queryCommand: CommandModule<object, QueryArgs> = {
  command: 'query <name> [type]',
  describe: 'send one query to a running dohd (or a DoH server) and print the answer, dig style',
  builder: (y) =>
    y
      .positional('name', { type: 'string', describe: 'domain name to look up', demandOption: true })
      .positional('type', { type: 'string', default: 'A', describe: 'record type (A, AAAA, MX, TXT, HTTPS, TYPE65, ...)' })
      .option('server', { alias: 's', type: 'string', default: '127.0.0.1:53', describe: 'the dohd to ask, ADDR[:PORT]' })
      .option('tcp', { type: 'boolean', describe: 'ask over TCP (default: UDP, TCP when truncated)' })
      .option('doh', { type: 'string', describe: 'ask this DoH URL directly instead of a running dohd' })
      .option('dot', { type: 'string', describe: 'ask this DNS-over-TLS server directly (tls://HOST[:853] or HOST[:PORT])' })
      .conflicts('doh', 'dot')
      .option('bootstrap', { type: 'string', array: true, describe: 'IP address(es) to reach the --doh/--dot host at' })
      .option('ca', { type: 'string', describe: 'extra trusted CA file (PEM) for --doh/--dot' })
      .option('timeout', { type: 'number', default: 3000, describe: 'milliseconds to wait for the answer' })
      .option('short', { type: 'boolean', describe: 'print only the answer records\' data' }) as never,
  handler: async (args) => {
    process.exitCode = await runQuery(args);
  },
};

export async function runQuery(args: QueryArgs): Promise<number> {
  const type = queryType(args.type);
  if (!type) fail(`"${args.type}" is not a DNS record type this tool knows (try A, AAAA, MX, TXT, NS, SOA, HTTPS or TYPEnnn)`, 2);
  if (!Number.isFinite(args.timeout) || args.timeout < 1) fail('--timeout must be a positive number of milliseconds', 2);
  return args.doh || args.dot ? viaSecure(args, type) : viaServer(args, type);
}

async function viaServer(args: QueryArgs, type: string): Promise<number> {
  const server = parseHostPort(args.server);
  if (typeof server === 'string') fail(`--server: ${server}`, 2);
  const { wire } = buildClientQuery(args.name, type, { explain: true });
  let r;
  try {
    r = await exchange(wire, { host: server.host, port: server.port, timeoutMs: args.timeout, tcp: args.tcp });
  } catch (err) {
    if (err instanceof DnsClientError) {
      const hint = err.reason === 'timeout' || err.reason === 'refused' ? ' Is dohd running there? (systemctl status dohd; journalctl -u dohd)' : '';
      fail(`no answer: ${err.message}.${hint}`, 1);
    }
    throw err;
  }
  if (args.short) {
    process.stdout.write(formatShort(r.packet));
    return 0;
  }
  const ex = explainOption(r.packet);
  const footer = [
    `;; Query time: ${Math.round(r.ms)} msec`,
    `;; SERVER: ${formatHostPort(server)} (${r.transport.toUpperCase()}${r.retriedOverTcp ? ', after a truncated UDP answer' : ''})`,
    `;; ANSWERED BY: ${describeExplain(ex)}`,
  ];
  process.stdout.write(formatMessage(r.packet, r.wire, { footer }));
  return 0;
}

function describeExplain(data: Buffer | null): string {
  if (!data) return 'not reported (only dohd, asked from the same machine, says which upstream answered)';
  const e = parseExplain(data);
  const ms = e.ms ? `, ${e.ms} ms inside dohd` : '';
  switch (e.source) {
    case 'upstream':
      return `upstream ${e.upstream ?? '?'}${ms}`;
    case 'cache':
      return `dohd's cache${ms}`;
    case 'stale':
      return `dohd's cache, expired answer served while the upstreams fail${ms}`;
    case 'pin':
      return `a pin in dohd's configuration${ms}`;
    case 'hosts':
      return `dohd's hosts file${ms}`;
    case 'local':
      return `answered locally (${(e.local ?? 'local zone').replaceAll('_', ' ')})${ms}`;
    case 'error':
      return `nobody: dohd answered SERVFAIL itself (no upstream answered in time; see its log)${ms}`;
    default:
      return `${e.source ?? 'unknown'}${e.upstream ? ` (${e.upstream})` : ''}${ms}`;
  }
}

async function viaSecure(args: QueryArgs, type: string): Promise<number> {
  const flag = args.dot ? '--dot' : '--doh';
  const text = args.dot ? (/^[a-z]+:\/\//i.test(args.dot) ? args.dot : `tls://${args.dot}`) : args.doh!;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    fail(`${flag}: "${text}" is not a valid URL`, 2);
  }
  if (args.doh && url.protocol !== 'https:') fail(`--doh: "${args.doh}" must be an https:// URL`, 2);
  if (args.dot) {
    try {
      parseDotUrl(url.href);
    } catch (err) {
      fail(`--dot: ${(err as Error).message}`, 2);
    }
  }
  const host = url.hostname.replace(/^\[|\]$/g, '');
  let bootstrap = args.bootstrap;
  for (const ip of bootstrap ?? []) if (!isIP(ip)) fail(`--bootstrap: "${ip}" is not an IP address`, 2);
  if (!bootstrap?.length && !isIP(host)) {
    const known = KNOWN_BOOTSTRAP[host.toLowerCase()];
    if (!known) fail(`${flag}: "${host}" needs --bootstrap IP (dohd never asks the system resolver where a DoH or DoT server is)`, 2);
    bootstrap = [...known];
  }
  const ca = args.ca ? resolve(args.ca) : undefined;
  if (ca && !existsSync(ca)) fail(`--ca: cannot read ${ca}`, 2);
  const cfg = { url: url.href, ...(bootstrap?.length ? { bootstrap } : {}), ...(ca ? { ca } : {}) };
  // The connection race gives up before the query does, so a silent path gets its verdict ("unreachable").
  const connectTimeoutMs = Math.max(1, Math.round(args.timeout * 0.8));
  const upstream = args.dot ? new DotUpstream(cfg, { connectTimeoutMs }) : new DohUpstream(cfg, { connectTimeoutMs });
  const transport = args.dot ? 'DNS-over-TLS' : 'DNS-over-HTTPS, HTTP/2';
  const decoded = decodeQuery(buildClientQuery(args.name, type).wire);
  if (!decoded.ok) fail(`cannot build a query for "${args.name}"`, 2);
  const q = decoded.query;
  const started = performance.now();
  try {
    const answer = await upstream.exchange(buildUpstreamQuery(q), q, AbortSignal.timeout(args.timeout));
    const ms = performance.now() - started;
    if (args.short) {
      process.stdout.write(formatShort(dnsPacket.decode(answer.wire)));
      return 0;
    }
    const footer = [
      `;; Query time: ${Math.round(ms)} msec (including connection setup)`,
      `;; SERVER: ${url.href} via ${upstream.currentAddress} (${transport})`,
      `;; ANSWERED BY: ${upstream.name}, ${ms.toFixed(1)} ms`,
    ];
    // The answer as stored by dohd: ID 0, without the upstream's OPT record.
    process.stdout.write(formatMessage(dnsPacket.decode(answer.wire), answer.wire, { footer }));
    return 0;
  } catch (err) {
    if (err instanceof UpstreamError) {
      const why = err.reason === 'aborted' ? `no answer within ${args.timeout} ms` : `${err.reason}: ${err.message}`;
      const v = verdictOf(err.reason);
      fail(`no answer from ${url.href} (via ${upstream.currentAddress}): ${why}${v ? `\n  verdict: ${v.label}\n  fix: ${v.fix}` : ''}`, 1);
    }
    throw err;
  } finally {
    await upstream.close();
  }
}
