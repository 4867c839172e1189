/** What happens to the requests that lost a race: see lingerLosers. */
import { performance } from 'node:perf_hooks';
import type { Upstream } from '../types.js';
import type { UpstreamObserver } from './strategy.js';

/**
 * Once a good answer has won, the requests still in `running` are left to finish: their
 * answers still tell health how fast their upstream is, and nothing resets a burst of HTTP/2
 * streams. Resetting every loser at once is the rapid-reset pattern (CVE-2023-44487): at a few
 * hundred races a second, servers answer it with GOAWAY (nghttp2 allows a burst of 1000
 * resets, then 33 a second), and every query on that connection has to be sent again on a
 * new one. Those still running `lingerMs` after `began` are reported lost and stopped by
 * `cancel`. The caller clears the returned timer once the last one has finished.
 */
export function lingerLosers<T>(
  running: ReadonlyMap<Upstream, T>,
  startOf: (t: T) => number,
  began: number,
  lingerMs: number,
  observer: UpstreamObserver | undefined,
  cancel: () => void,
): NodeJS.Timeout {
  const timer = setTimeout(
    () => {
      const now = performance.now();
      for (const [u, t] of running) observer?.lost?.(u, now - startOf(t));
      cancel();
    },
    Math.max(0, lingerMs - (performance.now() - began)),
  );
  timer.unref();
  return timer;
}
