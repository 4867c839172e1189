/**
 * `dohd status`: the running daemon's state, asked over its admin listener (`GET /status`,
 * docs/admin-api.md), the way `resolvectl status` shows resolved's: per upstream its state (in,
 * or out and when it is probed next), its path, round trips (p50/p99) and errors by reason over
 * the last minute and since start; then the cache, the pins and the listeners. `--json` prints
 * the report as the daemon sent it. Exit 0 when an upstream is in, 1 when nothing is healthy
 * (or dohd cannot be reached), 2 on bad arguments.
 */
import http from 'node:http';
import type { CommandModule } from 'yargs';
import { formatHostPort, parseHostPort } from '../config/address.js';
import { DEFAULT_ADMIN_LISTEN } from '../config/defaults.js';
import { loadConfig } from '../config/load.js';
import type { StatusReport, UpstreamStatus } from '../server/status.js';
import { quantile, type WindowCounts } from '../upstream/stats.js';
import { fail, orExit } from './common.js';

interface StatusArgs {
  admin?: string;
  config?: string;
  json?: boolean;
  timeout: number;
}

export const statusCommand: CommandModule<object, StatusArgs> = {
  command: 'status',
  describe: 'show the running dohd: upstreams (state, path, round trips, errors), cache, pins, listeners',
  builder: (y) =>
    y
      .option('admin', { type: 'string', describe: `ADDR:PORT of dohd's admin listener (default: admin.listen of --config, else ${DEFAULT_ADMIN_LISTEN})` })
      .option('config', { alias: 'c', type: 'string', describe: "dohd's configuration file, to find its admin listener" })
      .option('json', { type: 'boolean', describe: 'print the report as JSON (the admin API\'s /status)' })
      .option('timeout', { type: 'number', default: 5000, describe: 'milliseconds to wait for dohd' }) as never,
  handler: async (args) => {
    process.exitCode = await status(args);
  },
};

function adminAddress(args: StatusArgs): string {
  if (args.admin !== undefined) {
    if (args.admin.trim() === '') fail('--admin: no value given; give --admin ADDR:PORT', 2);
    return args.admin;
  }
  if (args.config !== undefined) {
    const admin = orExit(() => loadConfig(args.config)).admin;
    if (admin === false) fail(`${args.config} turns the admin listener off (admin: false): dohd status has nothing to ask; set admin.listen`, 2);
    return admin?.listen ?? DEFAULT_ADMIN_LISTEN;
  }
  return DEFAULT_ADMIN_LISTEN;
}

function get(addr: { host: string; port: number }, path: string, timeoutMs: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: addr.host, port: addr.port, path, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error(`no answer within ${timeoutMs} ms`), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
  });
}

export async function status(args: StatusArgs): Promise<number> {
  const text = adminAddress(args);
  const addr = parseHostPort(text, 9153);
  if (typeof addr === 'string') fail(`--admin: ${addr}`, 2);
  const where = formatHostPort(addr);
  let r: { status: number; body: string };
  try {
    r = await get(addr, '/status', args.timeout);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    process.stderr.write(
      `dohd: cannot reach dohd's admin listener at ${where} (${code}). Is dohd running? Its admin listener is admin.listen in its configuration (--admin ADDR:PORT here, or --config FILE)\n`,
    );
    return 1;
  }
  let report: StatusReport;
  try {
    if (r.status !== 200) throw new Error(`HTTP ${r.status}`);
    report = JSON.parse(r.body) as StatusReport;
  } catch (err) {
    process.stderr.write(`dohd: ${where} answered /status with ${(err as Error).message}: is it dohd (a version with dohd status)?\n`);
    return 1;
  }
  process.stdout.write(args.json ? `${JSON.stringify(report, null, 2)}\n` : renderStatus(report));
  return healthy(report) ? 0 : 1;
}

/** Healthy: ready, and an upstream in (pins alone keep names answered, but nothing else is). */
export function healthy(r: StatusReport): boolean {
  return r.ready.ready && r.upstreams.some((u) => u.state === 'in');
}

const ms = (v: number | undefined) => (v === undefined ? '-' : v < 10 ? `${v.toFixed(1)} ms` : `${Math.round(v)} ms`);

function errors(w: WindowCounts): string {
  const e = Object.entries(w.errors).sort((a, b) => b[1] - a[1]);
  return e.length ? e.map(([r, n]) => `${r} ${n}`).join(', ') : '-';
}

function duration(s: number): string {
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d${Math.floor((s % 86400) / 3600)}h`;
}

function state(u: UpstreamStatus): string {
  if (u.state === 'in') return 'in';
  return u.nextProbeInMs !== undefined ? `out, probe in ${duration(Math.ceil(u.nextProbeInMs / 1000))}` : 'out, probing';
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]! + 2))).join('').trimEnd());
}

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

export function renderStatus(r: StatusReport): string {
  const out: string[] = [];
  out.push(`dohd ${r.version}, pid ${r.pid}, up ${duration(r.uptimeS)}${r.workers > 1 ? `, ${r.workers} workers` : ''}: ${r.ready.ready ? 'ready' : 'NOT READY'} (${r.ready.detail})`);
  out.push(`listeners: ${r.listeners.map((l) => `${l} udp+tcp`).join(', ') || 'none'}`);
  out.push('');
  const rows = [['UPSTREAM', 'GROUP', 'STATE', 'LAST MINUTE', 'P50', 'P99', 'ERRORS', 'SINCE START', 'P50', 'P99', 'ERRORS']];
  for (const u of r.upstreams) {
    const m = u.lastMinute;
    const t = u.sinceStart;
    rows.push([u.name, u.group, state(u), `${m.answers}`, ms(quantile(m, 0.5)), ms(quantile(m, 0.99)), errors(m), `${t.answers}`, ms(quantile(t, 0.5)), ms(quantile(t, 0.99)), errors(t)]);
  }
  out.push(...table(rows));
  out.push('');
  out.push(...table([['UPSTREAM', 'PATH'], ...r.upstreams.map((u) => [u.name, `${u.kind === 'doh' ? 'DoH' : u.kind === 'dot' ? 'DoT' : 'plain DNS'} ${u.path}${u.lastError && u.state === 'out' ? ` (last error: ${u.lastError})` : ''}`])]));
  out.push('');
  const c = r.cache;
  out.push(
    `cache: ${c.entries} entries, ${bytes(c.bytes)}; hit ratio ${c.hitRatio === null ? '-' : `${(c.hitRatio * 100).toFixed(1)}%`} (${c.hits} hits, ${c.misses} misses); ${c.staleServed} stale served; ${c.prefetches} prefetched`,
  );
  if (r.pins.length === 0) out.push('pins: none');
  else {
    out.push('pins:');
    for (const p of r.pins) {
      out.push(`  ${p.name}: ${p.addresses.map((a) => `${a.address} ${p.verify ? a.state : '(not verified)'}`).join(', ')}`);
    }
  }
  if (!healthy(r)) out.push('', 'NOTHING HEALTHY: no upstream is answering (see the log: journalctl -u dohd)');
  return `${out.join('\n')}\n`;
}
