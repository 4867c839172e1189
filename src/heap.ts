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
 */
import v8 from 'node:v8';

/** The V8 flags dohd sets, less those the user gave a value of their own (node's arguments, NODE_OPTIONS). */
export function heapFlags(execArgv: readonly string[], nodeOptions = ''): string[] {
  const given = [...execArgv, ...nodeOptions.split(/\s+/)];
  return given.some((a) => /semi[-_]space/.test(a)) ? [] : ['--semi-space-growth-factor=1'];
}

/** Sets the heap up (called once, by the `dohd` entry). */
export function tuneHeap(): void {
  for (const f of heapFlags(process.execArgv, process.env.NODE_OPTIONS)) v8.setFlagsFromString(f);
}
