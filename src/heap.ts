/**
 * The daemon's garbage-collector settings, measured by the benchmark (bench/: "tail latency"
 * and "memory").
 *
 * Young generation. Every upstream exchange leaves garbage that V8's young-generation
 * collector has to copy (Node's HTTP/2 streams outlive the exchange a little): about a fifth
 * of what a cold miss allocates survives one collection. V8 grows the young generation when
 * much survives, up to 16 MB per semi-space, and then each collection copies megabytes and
 * stops the event loop for 5-8 ms, once or twice a second at a few hundred misses per second:
 * that pause was the 99th percentile of every miss. Kept at its initial 1 MB, a collection
 * takes under a millisecond (more of them, same total work), and the resident set is ~30 MB
 * smaller.
 *
 * Old generation. A burst of misses (a CI job resolving thousands of new names) promotes the
 * objects of the requests in flight, and V8 lets the old generation grow to up to four times
 * what was live after its last full collection before it collects again: right after 100,000
 * names at full speed the daemon held ~270 MB, given back only after a few idle seconds. A
 * daemon that runs beside other work, often under a container's memory limit, is better off
 * collecting sooner: at 1.5 times the live size the peak of that fill stays under 150 MB, for
 * a few percent more CPU during the burst and none at ordinary rates.
 *
 * V8 reads both flags whenever it sizes a generation, so they can be set at start-up from
 * inside. A flag given on node's command line or in NODE_OPTIONS for the same thing
 * (`--max-semi-space-size`, `--min-semi-space-size`; `--heap-growing-percent`) is left alone.
 */
import v8 from 'node:v8';

/** The V8 flags dohd sets, less those the user gave a value of their own (node's arguments, NODE_OPTIONS). */
export function heapFlags(execArgv: readonly string[], nodeOptions = ''): string[] {
  const given = [...execArgv, ...nodeOptions.split(/\s+/)];
  const flags: string[] = [];
  if (!given.some((a) => /semi[-_]space/.test(a))) flags.push('--semi-space-growth-factor=1');
  if (!given.some((a) => /heap[-_]growing[-_]percent/.test(a))) flags.push('--heap-growing-percent=50');
  return flags;
}

/** Sets the heap up (called once, by the `dohd` entry). */
export function tuneHeap(): void {
  for (const f of heapFlags(process.execArgv, process.env.NODE_OPTIONS)) v8.setFlagsFromString(f);
}
