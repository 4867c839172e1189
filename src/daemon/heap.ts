/**
 * The daemon's garbage-collector setting, measured by the benchmark (bench/, "tail latency").
 *
 * Every upstream exchange leaves garbage that V8's young-generation collector has to copy
 * (Node's HTTP/2 streams outlive the exchange: only a full collection frees one): about a
 * fifth of what a cold miss allocates survives one collection. V8 grows the young generation
 * when much survives, up to 16 MB per semi-space, and then each collection copies megabytes
 * and stops the event loop for 5-8 ms, once or twice a second at a few hundred misses per
 * second: that pause was the 99th percentile of every miss. Kept at its initial 1 MB, a
 * collection takes under a millisecond (more of them, same total work), and the resident set
 * is ~30 MB smaller.
 *
 * The old generation is left to V8. On a machine with memory to spare V8 lets it grow to a few
 * times its live size between full collections (after a burst of 100,000 new names, ~270 MB
 * for a few seconds); under a memory limit (a container's, systemd's MemoryMax=) Node sizes the
 * heap from the limit and V8 collects sooner by itself (the same burst in a 256 MiB cgroup:
 * ~140 MB). Forcing early collections everywhere (`--heap-growing-percent`) was measured too:
 * it costs the 99th percentile of ordinary misses (a full collection's marking steps run
 * between queries, three times as often), so it is the operator's choice, not a default.
 *
 * V8 reads the growth factor whenever it would grow the young generation, so this can be set
 * at start-up from inside; a semi-space size given on the command line or in NODE_OPTIONS
 * (`--max-semi-space-size`, `--min-semi-space-size`) is left alone.
 *
 * With two CPUs or fewer to use (affinity, or a cgroup's CPU quota: the sidecar manifest
 * gives dohd half a CPU) concurrent marking is turned off as well: V8 then marks in small
 * steps on the main thread. Node starts four GC helper threads whatever the machine; on two
 * busy cores a concurrent marker competes with the event loop, and the final pause of a full
 * collection waits for it. Measured in the benchmark's tail phase (300 misses a second, two
 * cores shared with dnsperf and the upstream servers): every run of late answers began at a
 * full collection, and in A/B runs (interleaved rounds) the `race` p99 came down by a
 * millisecond or two with concurrent marking off. The other helpers were measured as well and
 * are left on: parallel scavenges off changed no p99 and slowed a burst of new names;
 * concurrent sweeping off (part of `--single-threaded-gc`) kept memory higher after a burst;
 * the compaction helpers changed nothing. The flag is read whenever V8 starts marking, so it
 * can be set from inside (`--single-threaded-gc` and `--parallel-marking` cannot: V8 fixes
 * them when the heap is set up, and turned off later node aborts). Any GC threading flag
 * given on the command line or in NODE_OPTIONS leaves the choice to the user.
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
