/**
 * The daemon's garbage-collector setting, measured by the benchmark (bench/, "tail latency").
 *
 * Every upstream exchange leaves garbage that V8's young-generation collector has to copy
 * (Node's HTTP/2 streams outlive the exchange a little): about a fifth of what a cold miss
 * allocates survives one collection. V8 grows the young generation when much survives, up to
 * 16 MB per semi-space, and then each collection copies megabytes and stops the event loop
 * for 5-8 ms, once or twice a second at a few hundred misses per second: that pause was the
 * 99th percentile of every miss. Kept at its initial 1 MB, a collection takes under a
 * millisecond (more of them, same total work), and the resident set is ~30 MB smaller.
 *
 * V8 reads the growth factor whenever it would grow the young generation, so this can be set
 * at start-up from inside; a semi-space size given on the command line or in NODE_OPTIONS
 * (`--max-semi-space-size`, `--min-semi-space-size`) is left alone.
 */
import v8 from 'node:v8';

/** Keeps the young generation at its initial size (called once, by the `dohd` entry). */
export function tuneHeap(): void {
  const given = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].some((a) => /semi[-_]space/.test(a));
  if (!given) v8.setFlagsFromString('--semi-space-growth-factor=1');
}
