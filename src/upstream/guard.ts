/**
 * The guard every upstream transport (DoH, DoT, plain DNS) runs its callbacks
 * under: socket and connection events, connect callbacks, timers, and the settling of each
 * exchange. Those run outside any query's try/catch, straight from the event loop, so a throw
 * there — a bug in dohd, or a library's internal assertion tripped by what a server sent
 * (undici's `assert(client[kRunning] === 0)`, issue 18) — would reach `uncaughtException`
 * and end the process.
 *
 * Under the guard, such a throw instead quarantines the transport: every connection and
 * socket it holds is destroyed (none of them is trusted again, their requests fail over to
 * a fresh connection or to the other upstreams), its state is rebuilt from the config, and
 * the restart is logged at error level and counted in `dohd_upstream_restarts_total{upstream,
 * reason}`. The process goes on answering.
 *
 * Only the transports' own callbacks are guarded: a throw anywhere else is still a bug that
 * ends the process (the CLI does not catch `uncaughtException`).
 */
import type { Logger } from 'pino';
import { UpstreamError } from './errors.js';

/**
 * Where a transport threw; the `reason` label of dohd_upstream_restarts_total (a fixed set).
 * connect: the connect/TLS callback; connection: a connection's events (connect, disconnect,
 * error); timer: the transport's timers (idle close, re-send, retire); settle: delivering an
 * exchange's outcome; response: handling a response's headers and body (undici's callbacks); socket: a plain-DNS socket's events; exchange: `exchange()` itself threw
 * or failed with something that is not an UpstreamError.
 */
export type GuardedPlace = 'connect' | 'connection' | 'timer' | 'settle' | 'response' | 'socket' | 'exchange';

export interface GuardOptions {
  log?: Logger | undefined;
  /** Told about each restart (metrics). */
  onRestart?: ((upstream: string, reason: GuardedPlace) => void) | undefined;
  /**
   * Fault injection, for tests only: called first inside every guarded callback with its
   * place, so a test can make a transport throw exactly where the network would.
   */
  inject?: ((place: GuardedPlace) => void) | undefined;
}

export class TransportGuard {
  /** Restarts so far (quarantine and rebuild after a throw). */
  restarts = 0;
  /** Fault injection (tests): see GuardOptions.inject. */
  inject: ((place: GuardedPlace) => void) | undefined;

  constructor(
    private readonly upstream: () => string,
    private readonly opts: GuardOptions,
    /** Destroys every connection and socket of the transport and resets its state. Must not throw. */
    private readonly rebuild: () => void,
  ) {
    this.inject = opts.inject;
  }

  /** `fn` under the guard: a throw from it restarts the transport instead of reaching the process. */
  wrap<A extends unknown[]>(place: GuardedPlace, fn: (...args: A) => void): (...args: A) => void {
    return (...args: A) => {
      try {
        if (this.inject) this.inject(place);
        fn(...args);
      } catch (err) {
        this.fault(place, err);
      }
    };
  }

  /** Runs `fn` now, under the guard. */
  run(place: GuardedPlace, fn: () => void): void {
    try {
      if (this.inject) this.inject(place);
      fn();
    } catch (err) {
      this.fault(place, err);
    }
  }

  /**
   * For `exchange()`'s catch: an UpstreamError is the exchange's outcome and goes on as it is;
   * anything else is a throw from the transport itself, which restarts it and fails the
   * exchange as `other`.
   */
  exchangeError(err: unknown): UpstreamError {
    if (err instanceof UpstreamError) return err;
    this.fault('exchange', err);
    return new UpstreamError('other', `transport restarted after: ${(err as Error)?.message ?? String(err)}`);
  }

  /** A throw at `place`: quarantine, rebuild, log, count. */
  fault(place: GuardedPlace, err: unknown): void {
    this.restarts++;
    const upstream = this.upstream();
    this.opts.log?.error({ err, upstream, place }, 'upstream transport failed unexpectedly: its connections were dropped and it was rebuilt (a bug: please report it)');
    try {
      this.rebuild();
    } catch (e) {
      this.opts.log?.error({ err: e, upstream }, 'rebuilding the upstream transport failed');
    }
    try {
      this.opts.onRestart?.(upstream, place);
    } catch {
      /* metrics must not fail the guard */
    }
  }
}
