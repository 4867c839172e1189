/**
 * `dohd pins learn NAME...`: resolves each name (A and AAAA) through the DoH upstreams of
 * the configuration, keeps the addresses that complete a TLS handshake for the name
 * (certificate verified, the way pin health checks them), and prints a `pins:` block ready
 * for the configuration, or writes it with `--write FILE`. Exit 0 when every name got at
 * least one verified address, 1 otherwise, 2 on a configuration error.
 */
import { writeFileSync } from 'node:fs';
import dnsPacket from 'dns-packet';
import type { Argv, CommandModule } from 'yargs';
import type { Config } from '../config/schema.js';
import { decodeQuery } from '../dns/message.js';
import { buildUpstreamQuery } from '../dns/upstream-query.js';
import { probeCa, probeTls, type TlsProbeOptions } from '../stages/pins/verify.js';
import { buildSecureUpstream } from '../upstream/strategies/groups.js';
import { RaceStrategy } from '../upstream/strategies/race.js';
import type { Strategy } from '../upstream/strategies/strategy.js';
import { configFrom, fail, withUpstreamOptions, type ConfigArgs } from './common.js';

interface LearnArgs extends ConfigArgs {
  names: string[];
  port?: number;
  'verify-ca'?: string;
  'probe-timeout-ms'?: number;
  write?: string;
}

export interface Learned {
  name: string;
  verified: string[];
  rejected: { address: string; error: string }[];
  /** Why nothing was found, when resolution itself failed. */
  error?: string;
}

const NAME_RE = /^(?:[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.)*[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.?$/;

async function resolveAddresses(strategy: Strategy, name: string, timeoutMs: number): Promise<string[]> {
  const out: string[] = [];
  for (const type of ['A', 'AAAA'] as const) {
    const raw = dnsPacket.encode({ type: 'query', id: 0, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type, class: 'IN' }] });
    const d = decodeQuery(raw);
    if (!d.ok) throw new Error(`cannot build a query for ${name}`);
    const r = await strategy.resolve(buildUpstreamQuery(d.query), d.query, AbortSignal.timeout(timeoutMs));
    if (r.answer.rcode === 3) throw new Error('NXDOMAIN (the name does not exist)');
    if (r.answer.rcode !== 0) throw new Error(`rcode ${r.answer.rcode} from ${r.upstream}`);
    for (const rr of r.answer.packet.answers ?? []) {
      if (rr.type === type && typeof rr.data === 'string' && !out.includes(rr.data)) out.push(rr.data);
    }
  }
  return out;
}

export async function learnPins(config: Config, names: string[], probe: TlsProbeOptions): Promise<Learned[]> {
  const upstreams = config.upstreams.map((u) => buildSecureUpstream(u));
  const strategy = new RaceStrategy(upstreams, config.timeoutMs);
  try {
    return await Promise.all(
      names.map(async (raw): Promise<Learned> => {
        const name = raw.replace(/\.$/, '').toLowerCase();
        let addresses: string[];
        try {
          addresses = await resolveAddresses(strategy, name, config.timeoutMs);
        } catch (err) {
          return { name, verified: [], rejected: [], error: `cannot resolve: ${(err as Error).message}` };
        }
        if (addresses.length === 0) return { name, verified: [], rejected: [], error: 'no A or AAAA records' };
        const results = await Promise.all(addresses.map(async (address) => ({ address, r: await probeTls(address, name, probe) })));
        return {
          name,
          verified: results.filter((x) => x.r.ok).map((x) => x.address),
          rejected: results.flatMap((x) => (x.r.ok ? [] : [{ address: x.address, error: x.r.error }])),
        };
      }),
    );
  } finally {
    await Promise.all(upstreams.map((u) => u.close()));
  }
}

/** The `pins:` block: verified names as config entries, the others as comments. */
export function pinsBlock(learned: Learned[], port: number, when = new Date()): string {
  const lines = [`# dohd pins learn, ${when.toISOString()}: addresses that completed a TLS handshake for their name on port ${port}`];
  const ok = learned.filter((l) => l.verified.length > 0);
  lines.push(ok.length ? 'pins:' : 'pins: {}');
  for (const l of learned) {
    if (l.verified.length) {
      lines.push(`  ${l.name}: { addresses: [${l.verified.map((a) => JSON.stringify(a)).join(', ')}], verify: true }`);
      for (const r of l.rejected) lines.push(`  #   ${l.name} ${r.address} left out: ${r.error.replace(/\s+/g, ' ')}`);
    } else {
      const why = l.error ?? `no address passed: ${l.rejected.map((r) => `${r.address} (${r.error})`).join('; ')}`;
      lines.push(`  # ${l.name}: ${why.replace(/\s+/g, ' ')}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

const learnCommand: CommandModule<object, LearnArgs> = {
  command: 'learn <names..>',
  describe: 'resolve the names over DoH, keep the addresses that pass a TLS check, print a pins block',
  builder: (y) =>
    // <names..> is not declared with .positional(): yargs would print "[array] [required] [default: []]" for it.
    (withUpstreamOptions(y) as Argv<object>)
      .usage('dohd pins learn NAME... [options]\n\nResolve each NAME (A and AAAA) over DoH, keep the addresses that complete a TLS handshake for it, print a pins block')
      .option('port', { type: 'number', describe: 'port for the TLS check (default: pinVerify.port, 443)' })
      .option('verify-ca', { type: 'string', describe: 'extra trusted CA file (PEM) for the TLS check (default: pinVerify.ca)' })
      .option('probe-timeout-ms', { type: 'number', describe: 'TLS check timeout (default: pinVerify.timeoutMs)' })
      .option('write', { alias: 'w', type: 'string', describe: 'write the pins block to FILE instead of printing it' }) as never,
  handler: async (args) => {
    const config = configFrom(args);
    args.names = args.names.map(String); // "pins learn 1.2" would be a number otherwise
    const bad = args.names.filter((n) => !NAME_RE.test(n) || n.length > 253);
    if (bad.length) fail(`not a domain name: ${bad.map((n) => JSON.stringify(n)).join(', ')}`, 2);
    const port = args.port ?? config.pinVerify.port;
    if (!Number.isInteger(port) || port < 1 || port > 65535) fail(`--port: ${args.port} is not a port number`, 2);
    const caFile = args['verify-ca'] ?? config.pinVerify.ca;
    let ca: string[] | undefined;
    try {
      ca = probeCa(caFile);
    } catch (err) {
      fail(`--verify-ca: cannot read ${caFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 2);
    }
    const timeoutMs = args['probe-timeout-ms'] ?? config.pinVerify.timeoutMs;
    const learned = await learnPins(config, args.names, { port, timeoutMs, ...(ca ? { ca } : {}) });
    const block = pinsBlock(learned, port);
    for (const l of learned) {
      if (l.verified.length === 0) process.stderr.write(`dohd: ${l.name}: ${l.error ?? 'no address passed the TLS check'}\n`);
    }
    if (args.write) {
      try {
        writeFileSync(args.write, block);
      } catch (err) {
        fail(`--write: cannot write ${args.write}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 1);
      }
      process.stdout.write(`wrote ${learned.filter((l) => l.verified.length).length} of ${learned.length} pins to ${args.write}\n`);
    } else process.stdout.write(block);
    process.exitCode = learned.every((l) => l.verified.length > 0) ? 0 : 1;
  },
};

export const pinsCommand: CommandModule<object, object> = {
  command: 'pins <command>',
  describe: 'work with pinned names (pins learn NAME...)',
  builder: (y) => y.command(learnCommand as never).demandCommand(1, 'name a pins command: learn'),
  handler: () => {},
};
