/**
 * Prometheus metrics (prom-client), one registry per daemon. The families, and who feeds them:
 *
 *   dohd_queries_total{transport,type,rcode,source}   handler onAnswer (every answered query)
 *   dohd_query_duration_seconds{source}               handler onAnswer
 *   dohd_rejected_total{transport,reason}             handler onReject (malformed, overloaded, ...)
 *   dohd_inflight_queries                             handler, read at scrape time
 *   dohd_cache_events_total{event}                    `cacheEvent(event)`: hit, miss, stale, prefetch (the
 *                                                     stages' counters, fed at scrape time by metric-sources.ts)
 *   dohd_cache_entries                                the answer cache, read at scrape time
 *   dohd_upstream_duration_seconds{upstream}          UpstreamReporter listener (good answers)
 *   dohd_upstream_wins_total{upstream}                UpstreamReporter listener
 *   dohd_upstream_failures_total{upstream,reason}     UpstreamReporter listener (reasons: upstream/errors.ts)
 *   dohd_pin_up{name,address}                         `pinProbe(name, address, up)` (pin health checks)
 *   dohd_policy_drops_total{reason}                   `policyDrop(reason)` (rate limit, ACL refusals, ...)
 *   dohd_local_answers_total{zone}                    `localAnswer(zone)`: queries a built-in local zone answered
 *   dohd_config_reloads_total{result}                 `reload(ok)` (SIGHUP)
 *   dohd_upstream_restarts_total{upstream,reason}     `upstreamRestart` (a transport threw: quarantined, rebuilt; upstream/guard.ts)
 *   dohd_internal_errors_total{where,kind}            handler onInternalError (bugs met handling a query)
 *   dohd_udp_socket_drops_total{listen}, dohd_udp_receive_buffer_errors_total
 *                                                     server/udp-drops.ts, read from /proc at scrape time
 *
 * Stages built elsewhere call the small methods below; every label value they pass must come
 * from a fixed set in the code (never from a client packet), so the series count stays bounded.
 * Process metrics (memory, CPU, event loop) come from prom-client's defaults, once per process.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { recordTypes } from '../dns/message.js';
import { QueryTally, register as registerTally } from './query-tally.js';
import type { Context, Result, Source, Transport } from '../pipeline/types.js';
import type { UpstreamError } from '../upstream/errors.js';
import type { UpstreamObserver } from '../upstream/strategies/strategy.js';
import type { Upstream } from '../upstream/types.js';

/** Cache outcomes; `hit` and `miss` are counted by the CacheStage and read at scrape time. */
export type CacheEvent = 'hit' | 'miss' | 'stale' | 'prefetch' | (string & {});
/** Why a policy stage turned a query away: `rate_limit`, `acl`, `refused`, ... */
export type PolicyReason = 'rate_limit' | 'acl' | 'refused' | (string & {});

/** Query types with their own label value; any other type is counted as `other`. */
const KNOWN_TYPES = [
  'A', 'AAAA', 'CNAME', 'MX', 'NS', 'PTR', 'SOA', 'SRV', 'TXT', 'HTTPS', 'SVCB', 'CAA', 'DS', 'DNSKEY', 'NAPTR', 'ANY',
];
const RCODES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'];

/** A query type's label, by type number (the fast lane has only the number); `other` when not known. */
const TYPE_LABELS = new Map(KNOWN_TYPES.map((t) => [recordTypes.toType(t), t]));
export function typeLabelOf(qtype: number): string {
  return TYPE_LABELS.get(qtype) ?? 'other';
}

export function rcodeLabel(rcode: number): string {
  return RCODES[rcode] ?? String(rcode & 0xfff);
}

let processRegistry: Registry | null = null;
/** prom-client's process metrics, registered once per process however many daemons run in it. */
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

export class Metrics {
  readonly registry = new Registry();
  private readonly tally: QueryTally;
  private readonly rejected: Counter<'transport' | 'reason'>;
  private readonly cacheEvents: Counter<'event'>;
  private readonly upstreamDuration: Histogram<'upstream'>;
  private readonly upstreamWins: Counter<'upstream'>;
  private readonly upstreamFailures: Counter<'upstream' | 'reason'>;
  private readonly pinUp: Gauge<'name' | 'address'>;
  private readonly policyDrops: Counter<'reason'>;
  private readonly reloads: Counter<'result'>;
  private readonly localAnswers: Counter<'zone'>;
  private readonly internalErrors: Counter<'where' | 'kind'>;
  private readonly upstreamRestarts: Counter<'upstream' | 'reason'>;

  /** Fed to UpstreamReporter.add(): upstream latency, wins and failures. */
  readonly upstreamObserver: UpstreamObserver;

  constructor(sources: { inflight?: () => number; cacheEntries?: () => number } = {}) {
    const registers = [this.registry];
    /** A plain labelled counter of this registry (the families with a collect() are spelled out). */
    const counter = <L extends string>(name: string, help: string, labelNames: L[]) => new Counter<L>({ name, help, labelNames, registers });
    // Every answered query is counted in a tally (plain numbers), which these two families
    // read when scraped: prom-client's own inc/observe would cost more than a cache hit.
    const tally = (this.tally = new QueryTally([0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]));
    new Counter({
      name: 'dohd_queries_total',
      help: 'Client queries answered, by transport, query type, response code and where the answer came from',
      labelNames: ['transport', 'type', 'rcode', 'source'],
      registers,
      collect() {
        tally.flushTo(this);
      },
    });
    registerTally(this.registry, tally.histogram('dohd_query_duration_seconds', 'Time from receiving a client query to having its answer, by where the answer came from'));
    this.rejected = counter('dohd_rejected_total', 'Client packets not answered normally (malformed, not a query, overloaded), by transport and reason', ['transport', 'reason']);
    const inflight = sources.inflight;
    new Gauge({
      name: 'dohd_inflight_queries',
      help: 'Client queries being resolved right now',
      registers,
      collect() {
        this.set(inflight ? inflight() : 0);
      },
    });
    this.cacheEvents = counter('dohd_cache_events_total', 'Answer cache outcomes: hit, miss, stale (expired answer served), prefetch (refreshed before expiry)', ['event']);
    for (const event of ['hit', 'miss', 'stale', 'prefetch']) this.cacheEvents.inc({ event }, 0);
    const entries = sources.cacheEntries;
    new Gauge({
      name: 'dohd_cache_entries',
      help: 'Answers in the cache',
      registers,
      // --workers: each worker keeps a copy of what the others stored; the sum would count them twice.
      aggregator: 'max',
      collect() {
        this.set(entries ? entries() : 0);
      },
    });
    this.upstreamDuration = new Histogram({
      name: 'dohd_upstream_duration_seconds',
      help: 'Time for an upstream to give a usable answer, by upstream',
      labelNames: ['upstream'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.upstreamWins = counter('dohd_upstream_wins_total', 'Queries whose answer came from this upstream (it answered first, or alone)', ['upstream']);
    this.upstreamFailures = counter('dohd_upstream_failures_total', 'Upstream exchanges that failed, by upstream and reason (timeout, connect, tls, reset, http_status, servfail, ...)', ['upstream', 'reason']);
    this.pinUp = new Gauge({
      name: 'dohd_pin_up',
      help: 'Pinned address health from the last probe (1 reachable, 0 failing), by pinned name and address',
      labelNames: ['name', 'address'],
      registers,
      aggregator: 'max', // --workers: each worker probes; up in any of them is up
    });
    this.policyDrops = counter('dohd_policy_drops_total', 'Queries a policy refused, dropped or rate-limited, by reason', ['reason']);
    this.localAnswers = counter('dohd_local_answers_total', 'Queries answered by a built-in local zone (localhost, private reverse zones, ...), by zone', ['zone']);
    this.reloads = counter('dohd_config_reloads_total', 'Configuration reloads (SIGHUP), by result (ok, invalid)', ['result']);
    this.internalErrors = counter('dohd_internal_errors_total', 'Bugs met while handling a client query (logged at error level; the client got FORMERR or SERVFAIL), by where and error class', ['where', 'kind']);
    this.upstreamRestarts = counter('dohd_upstream_restarts_total', 'Upstream transports quarantined and rebuilt after one of their callbacks threw, by upstream and where (connect, connection, timer, settle, response, socket, exchange)', ['upstream', 'reason']);
    this.upstreamObserver = {
      success: (u: Upstream, ms: number, won: boolean) => {
        this.upstreamDuration.observe({ upstream: u.name }, ms / 1000);
        if (won) this.upstreamWins.inc({ upstream: u.name });
      },
      failure: (u: Upstream, err: UpstreamError, _ms: number) => {
        this.upstreamFailures.inc({ upstream: u.name, reason: err.reason });
      },
    };
  }

  /** Local-zone answers (the zone names come from the built-in table only). */
  localAnswer(zone: string, n = 1): void {
    this.localAnswers.inc({ zone }, n);
  }

  /** One answered client query (wire to QueryHandler's onAnswer). */
  query(ctx: Context, result: Result, ms: number): void {
    const source: Source = result.source;
    this.tally.add(ctx.transport, typeLabelOf(ctx.query.qtype), rcodeLabel(result.rcode), source, ms / 1000);
  }

  /** A client packet that was not answered normally (wire to QueryHandler's onReject). */
  reject(transport: Transport, reason: string): void {
    this.rejected.inc({ transport, reason });
  }

  /** A cache outcome counted by the stage that saw it: `stale`, `prefetch`, ... */
  cacheEvent(event: CacheEvent, n = 1): void {
    this.cacheEvents.inc({ event }, n);
  }

  /** The result of probing one pinned address (TCP + TLS); `up` false withholds it from answers. */
  pinProbe(name: string, address: string, up: boolean): void {
    this.pinUp.set({ name, address }, up ? 1 : 0);
  }

  /** Forget every pin series (the pins changed on reload; probes set the new ones). */
  resetPins(): void {
    this.pinUp.reset();
  }

  /** A query a policy stage refused, dropped or rate-limited. */
  policyDrop(reason: PolicyReason, n = 1): void {
    this.policyDrops.inc({ reason }, n);
  }

  /** A bug met while handling a query (wire to QueryHandler's onInternalError); `kind` from a fixed set. */
  internalError(where: string, kind: string): void {
    this.internalErrors.inc({ where, kind });
  }

  /** An upstream transport threw and was rebuilt (upstream/guard.ts); `reason` from a fixed set. */
  upstreamRestart(upstream: string, reason: string): void {
    this.upstreamRestarts.inc({ upstream, reason });
  }

  reload(ok: boolean): void {
    this.reloads.inc({ result: ok ? 'ok' : 'invalid' });
  }

  readonly contentType = this.registry.contentType;

  /** This daemon's families and the process metrics as prom-client JSON (AggregatorRegistry.aggregate adds workers' up). */
  async json() {
    return [...(await this.registry.getMetricsAsJSON()), ...(await processMetrics().getMetricsAsJSON())];
  }

  /** The Prometheus text exposition: this daemon's families, then the process metrics. */
  async render(): Promise<string> {
    const own = await this.registry.metrics();
    const proc = await processMetrics().metrics();
    return `${own}\n${proc}`;
  }
}
