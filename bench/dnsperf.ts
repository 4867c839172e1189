/** Runs Debian's dnsperf and reads its summary (and, with -v, every query's latency). */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface PerfResult {
  qps: number;
  sent: number;
  completed: number;
  lost: number;
  /** Per-query latencies in ms (only with verbose). */
  latencies: number[];
}

export interface PerfOptions {
  port: number;
  file: string;
  seconds?: number;
  clients?: number;
  outstanding?: number;
  maxQps?: number;
  tcp?: boolean;
  verbose?: boolean;
  /** Run through the file at most this many times. */
  runs?: number;
  /** CPUs dnsperf may run on (taskset list, e.g. "1"). */
  cpus?: string;
  extra?: string[];
}

export function writeQueryFile(path: string, lines: string[]): string {
  writeFileSync(path, lines.join('\n') + '\n');
  return path;
}

export async function dnsperf(o: PerfOptions): Promise<PerfResult> {
  const args = ['-s', '127.0.0.1', '-p', String(o.port), '-d', o.file, '-c', String(o.clients ?? 4), '-q', String(o.outstanding ?? 100), '-t', '3'];
  if (o.seconds) args.push('-l', String(o.seconds));
  if (o.runs) args.push('-n', String(o.runs));
  if (o.maxQps) args.push('-Q', String(o.maxQps));
  if (o.tcp) args.push('-m', 'tcp');
  if (o.verbose) args.push('-v');
  if (o.extra) args.push(...o.extra);
  const { stdout } = o.cpus
    ? await run('taskset', ['-c', o.cpus, 'dnsperf', ...args], { maxBuffer: 512 * 1024 * 1024 })
    : await run('dnsperf', args, { maxBuffer: 512 * 1024 * 1024 });
  const num = (re: RegExp) => Number(re.exec(stdout)?.[1] ?? NaN);
  const latencies: number[] = [];
  if (o.verbose) {
    // "> NOERROR hit.bench A 0.000054"
    for (const m of stdout.matchAll(/^> \S+ \S+ \S+ ([\d.]+)$/gm)) latencies.push(Number(m[1]) * 1000);
  }
  return {
    qps: num(/Queries per second:\s+([\d.]+)/),
    sent: num(/Queries sent:\s+(\d+)/),
    completed: num(/Queries completed:\s+(\d+)/),
    lost: num(/Queries lost:\s+(\d+)/),
    latencies,
  };
}

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  return percentileOfSorted([...values].sort((a, b) => a - b), p);
}

/** The p-th percentile (nearest rank) of values already in ascending order. */
export function percentileOfSorted(s: ArrayLike<number>, p: number): number {
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}
