/**
 * The run-time half of the loop guard, after CoreDNS's `loop` plugin: at start-up dohd
 * sends each upstream a query for a random name only it knows (HINFO, like CoreDNS). A
 * healthy upstream answers it (NXDOMAIN). An upstream that forwards back to dohd makes
 * the name come in on dohd's own listener: that upstream is then marked looping, the probe
 * is answered SERVFAIL instead of being forwarded again, and from then on the upstream
 * fails at once (reason `loop`) instead of multiplying every query around the loop.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { makeQuery } from '../../dns/local-query.js';
import { recordTypes, type Query } from '../../dns/message.js';
import { buildUpstreamQuery } from '../../dns/upstream-query.js';
import { UpstreamError } from '../../upstream/errors.js';
import type { Upstream } from '../../upstream/types.js';
import type { CheckedAnswer } from '../../upstream/validate.js';

/** Probe names end in this label (a top-level name that does not exist: the root answers NXDOMAIN). */
export const PROBE_SUFFIX = 'dohd-loop-probe';
/** Probes ask for HINFO, as CoreDNS's do. */
const PROBE_TYPE = 'HINFO';
const PROBE_QTYPE = recordTypes.toType(PROBE_TYPE);

export interface LoopDetection {
  upstream: string;
  probe: string;
  /** Who sent the probe back to dohd, and over which transport. */
  from: string;
  transport: string;
  at: string;
}

export interface LoopStatus {
  /** `probing` until every upstream answered (or gave up on) its probe; `loop` once any loop was seen. */
  state: 'idle' | 'probing' | 'clear' | 'loop';
  loops: LoopDetection[];
}

export interface LoopProbeOptions {
  /** Time one probe may take (ms). */
  timeoutMs: number;
  /** Attempts per upstream when it cannot be reached, `retryDelayMs` apart. */
  attempts: number;
  retryDelayMs: number;
}

/** Five tries 2 s apart, each up to 5 s: about CoreDNS's 30 s of loop-detection tries. */
export const LOOP_PROBE: LoopProbeOptions = { timeoutMs: 5000, attempts: 5, retryDelayMs: 2000 };

export class LoopGuard {
  /** Probe name (lower case, no trailing dot) → the upstream it was sent to. */
  private readonly probes = new Map<string, string>();
  private readonly looping = new Set<string>();
  readonly loops: LoopDetection[] = [];
  private state: LoopStatus['state'] = 'idle';
  private readonly stopper = new AbortController();

  constructor(private readonly log?: Logger) {}

  status(): LoopStatus {
    return { state: this.loops.length ? 'loop' : this.state, loops: [...this.loops] };
  }

  /** False once a forwarding loop was seen: readiness reports it. */
  get ok(): boolean {
    return this.loops.length === 0;
  }

  isLooping(upstream: string): boolean {
    return this.looping.has(upstream);
  }

  /** The upstream a probe was sent to, if `q` is one of our probes (HINFO: other queries are not even looked up). */
  match(q: Query): string | undefined {
    return q.qtype === PROBE_QTYPE ? this.probes.get(q.lname) : undefined;
  }

  /** A probe came back in on one of dohd's listeners. */
  detected(lname: string, from: { address: string; port: number }, transport: string): void {
    const upstream = this.probes.get(lname);
    if (upstream === undefined) return;
    if (this.looping.has(upstream)) return;
    this.looping.add(upstream);
    const d: LoopDetection = { upstream, probe: lname, from: `${from.address}:${from.port}`, transport, at: new Date().toISOString() };
    this.loops.push(d);
    this.log?.error(
      { upstream, probe: lname, from: d.from, transport },
      `forwarding loop: upstream ${upstream} sent dohd's own probe query back to dohd; that upstream now fails at once (SERVFAIL if it is the only one). Point it at a resolver that does not use dohd, and restart`,
    );
  }

  /** The upstream as the strategy sees it: fails at once while it is known to loop. */
  wrap(upstream: Upstream): Upstream {
    const guard = this;
    return {
      get name() {
        return upstream.name;
      },
      kind: upstream.kind,
      exchange(wire: Buffer, q: Query, signal: AbortSignal): Promise<CheckedAnswer> {
        if (guard.looping.has(upstream.name)) {
          return Promise.reject(new UpstreamError('loop', `upstream ${upstream.name} forwards back to dohd (forwarding loop)`));
        }
        return upstream.exchange(wire, q, signal);
      },
      close: () => upstream.close(),
    };
  }

  /** Sends one probe per upstream (in the background); resolves when all are done. */
  async probe(upstreams: readonly Upstream[], opts: LoopProbeOptions = LOOP_PROBE): Promise<void> {
    if (upstreams.length === 0) return;
    this.state = 'probing';
    await Promise.all(upstreams.map((u) => this.probeOne(u, opts)));
    if (!this.stopper.signal.aborted) this.state = 'clear';
  }

  private async probeOne(u: Upstream, opts: LoopProbeOptions): Promise<void> {
    for (let i = 0; i < opts.attempts && !this.stopper.signal.aborted && !this.looping.has(u.name); i++) {
      if (i > 0) await sleep(opts.retryDelayMs, this.stopper.signal);
      if (this.stopper.signal.aborted) return;
      const name = `${randomBytes(8).toString('hex')}.${randomBytes(4).toString('hex')}.${PROBE_SUFFIX}`;
      if (this.probes.size >= 1000) return; // bounded: never more than a handful in practice
      this.probes.set(name, u.name);
      const q = makeQuery(name, PROBE_TYPE);
      try {
        await u.exchange(buildUpstreamQuery(q), q, AbortSignal.any([this.stopper.signal, AbortSignal.timeout(opts.timeoutMs)]));
        return; // answered (whatever the rcode): the probe went through without coming back
      } catch (err) {
        const reason = err instanceof UpstreamError ? err.reason : 'other';
        // An upstream that answered badly was reached; only an unreachable one is tried again.
        if (!['connect', 'tls', 'timeout', 'aborted', 'reset', 'goaway', 'other'].includes(reason)) return;
        this.log?.debug({ upstream: u.name, reason }, 'loop probe not answered; trying again');
      }
    }
  }

  stop(): void {
    this.stopper.abort();
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
