/**
 * The daemon's garbage-collector settings, set before the rest of dohd loads:
 * - the young generation stays at its initial 1 MB (growth factor 1), because a grown one
 *   made every scavenge a 5-8 ms pause that set the p99 of cold misses;
 * - with two CPUs or fewer, concurrent marking is off, because a marker without a core of its
 *   own stalled the event loop at each full collection.
 * A flag the user gave node (command line, NODE_OPTIONS) wins. The measurements behind both:
 * docs/performance.md, "The heap settings, as measured".
 */
import v8 from 'node:v8';
import { usableCpus } from './cpu-limit.js';

/** The GC helpers dohd turns off on a machine with two CPUs or fewer (each `--no-` this). */
export const GC_HELPER_FLAGS = ['concurrent-marking'] as const;

/** With at most this many usable CPUs, V8 marks on the main thread alone. */
export const MAIN_THREAD_MARKING_CPUS = 2;

/**
 * The V8 flags dohd sets, less those the user gave a value of their own (node's arguments,
 * NODE_OPTIONS); `cpus`: how many CPUs dohd may use.
 */
export function heapFlags(execArgv: readonly string[], nodeOptions = '', cpus = Infinity): string[] {
  const given = [...execArgv, ...nodeOptions.split(/\s+/)].map((a) => a.replace(/_/g, '-'));
  const flags: string[] = [];
  if (!given.some((a) => a.includes('semi-space'))) flags.push('--semi-space-growth-factor=1');
  const gcThreads = /^--(no-)?(single-threaded|concurrent-marking|parallel-marking|parallel-scavenge|concurrent-sweeping|parallel-compaction|parallel-pointer-update|concurrent-array-buffer-sweeping)\b/;
  if (cpus <= MAIN_THREAD_MARKING_CPUS && !given.some((a) => gcThreads.test(a))) flags.push(...GC_HELPER_FLAGS.map((f) => `--no-${f}`));
  return flags;
}

/** Sets the heap up (called once, by the `dohd` entry). */
export function tuneHeap(): void {
  for (const f of heapFlags(process.execArgv, process.env.NODE_OPTIONS, usableCpus())) v8.setFlagsFromString(f);
}
