/**
 * The one place that names every configuration option, its type and its default.
 * YAML keys, CLI flags and the example config all follow these names.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { parseHostPort } from './address.js';
import { parseCidr } from './cidr.js';
import { isLocalZoneKey } from '../stages/local-zones/zones.js';
import { DEFAULT_ACL_ALLOW, DEFAULT_ADMIN_LISTEN, DEFAULT_LISTEN, DEFAULT_RATE_LIMIT_EXEMPT, DEFAULT_UPSTREAMS } from './defaults.js';

const listenAddress = z.string().superRefine((s, ctx) => {
  const r = parseHostPort(s);
  if (typeof r === 'string') ctx.addIssue({ code: 'custom', message: r });
});

const cidr = z.string().superRefine((s, ctx) => {
  const r = parseCidr(s);
  if (typeof r === 'string') ctx.addIssue({ code: 'custom', message: r });
});

const ipAddress = z.string().refine((s) => isIP(s) !== 0, { message: 'is not an IPv4 or IPv6 address' });

const domainName = z
  .string()
  .min(1)
  .max(253)
  .refine((s) => /^(?:[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.)*[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?\.?$/.test(s), {
    message: 'is not a valid domain name',
  });

const dohUrl = z.string().superRefine((s, ctx) => {
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    ctx.addIssue({ code: 'custom', message: `"${s}" is not a valid URL` });
    return;
  }
  if (u.protocol === 'tls:') {
    // DNS-over-TLS (RFC 7858): tls://HOST[:PORT], nothing else.
    if ((u.pathname && u.pathname !== '/') || u.search || u.hash || !u.hostname)
      ctx.addIssue({ code: 'custom', message: `"${s}" must be tls://HOST[:PORT] (DNS-over-TLS, no path)` });
  } else if (u.protocol !== 'https:')
    ctx.addIssue({ code: 'custom', message: `"${s}" must be an https:// URL (DNS-over-HTTPS, RFC 8484) or tls://HOST[:853] (DNS-over-TLS, RFC 7858)` });
  if (u.username || u.password) ctx.addIssue({ code: 'custom', message: `"${s}" must not carry credentials` });
  if (u.protocol === 'https:' && u.pathname === '/' && !u.search) ctx.addIssue({ code: 'custom', message: noPath(s) });
});

/** A DoH URL needs the server's path (RFC 8484 names none): the usual one is /dns-query. */
function noPath(url: string): string {
  return `"${url}" has no path; DoH servers answer on a path, usually /dns-query: write "${url.replace(/\/?$/, '')}/dns-query"`;
}

export const upstreamSchema = z.strictObject({
  url: dohUrl,
  /** IP addresses to connect to instead of resolving the URL's host name. */
  bootstrap: z.array(ipAddress).min(1).optional(),
  /** Extra trusted CA certificate file (PEM), added to the public roots. */
  ca: z.string().min(1).optional(),
  /** A short label for logs and metrics; defaults to the URL's host. */
  name: z.string().min(1).max(64).optional(),
  /** Close the connection after this many ms without a query (default 8000): below the upstream's own idle limit. */
  idleTimeoutMs: z.int().min(100).max(3_600_000).optional(),
  /**
   * A connection silent this long (ms, default 1000) may be dead without a FIN: a request on it
   * that gets no answer within 4× the usual time is also sent on a fresh connection. 0 = never.
   */
  quietMs: z.int().min(0).max(3_600_000).optional(),
  /**
   * Other paths to the same provider, tried in order when the one before looks blocked: an
   * IP-literal DoH URL, DoT on 853. They share `ca`; each has bootstrap IPs of its own.
   */
  alternates: z.array(z.strictObject({ url: dohUrl, bootstrap: z.array(ipAddress).min(1).optional() })).min(1).max(8).optional(),
});

const pinAddresses = z.array(ipAddress).min(1);
export const pinSchema = z.union([
  pinAddresses,
  z.strictObject({
    addresses: pinAddresses,
    ttl: z.int().min(0).max(86400).optional(),
    /** Probe each address with a TLS handshake for this name; withhold those that fail. */
    verify: z.boolean().optional(),
  }),
]);

const ms = (min: number, max: number, dflt: number) => z.int().min(min).max(max).default(dflt);
const seconds = (max: number, dflt: number) => z.int().min(0).max(max).default(dflt);

export const cacheSchema = z
  .strictObject({
    maxEntries: z.int().min(0).max(10_000_000).default(100_000),
    /** Approximate memory bound of the stored answers, in bytes. */
    maxBytes: z.int().min(4096).max(8 * 2 ** 30).default(64 * 2 ** 20),
    /** TTL clamps (seconds) for positive answers. */
    minTtl: seconds(86400, 0),
    maxTtl: seconds(7 * 86400, 86400),
    /** Upper bound of the negative-caching TTL (RFC 2308: the SOA's min(TTL, MINIMUM)). */
    negativeMaxTtl: seconds(86400, 3600),
    /** Serve-stale (RFC 8767): how long past expiry an answer may still be served, seconds; 0 turns it off. */
    staleWindow: seconds(30 * 86400, 86400),
    /** TTL written into stale answers. */
    staleTtl: z.int().min(1).max(3600).default(30),
    /** How long a client waits for a refresh before it gets the stale answer; default 72% of timeoutMs (1800 of 2500). */
    staleClientTimeoutMs: z.int().min(10).max(60_000).optional(),
    /** After a refresh failed, stale answers go out at once, and refreshing waits this long. */
    staleRecheckMs: ms(0, 3_600_000, 30_000),
    /** Prefetch: hits an entry needs to be refreshed before it expires; 0 turns prefetch off. */
    prefetchHits: z.int().min(0).max(1_000_000).default(2),
    /** Prefetch when less than this fraction of the entry's TTL is left. */
    prefetchThreshold: z.number().gt(0).max(0.9).default(0.1),
    /** Warm restart: saved here on clean shutdown, loaded at start. */
    file: z.string().min(1).optional(),
  })
  .prefault({});

const strategyName = z.enum(['race', 'hedged', 'failover']);

const groupName = z.string().superRefine((s, ctx) => {
  if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/.test(s)) ctx.addIssue({ code: 'custom', message: `"${s}" is not a group name (letters, digits, - and _, up to 32)` });
  else if (s === 'default') ctx.addIssue({ code: 'custom', message: '"default" is the top-level upstreams list; pick another name' });
});

/**
 * An upstream of a group: DoH (`url: https://...`) or plain DNS
 * (`url: udp://IP:PORT` — UDP, TCP when truncated —, `url: tcp://IP:PORT`, or `address: IP:PORT`).
 */
export const groupUpstreamSchema = z
  .strictObject({
    url: z.string().min(1).optional(),
    address: z.string().min(1).optional(),
    bootstrap: z.array(ipAddress).min(1).optional(),
    ca: z.string().min(1).optional(),
    name: z.string().min(1).max(64).optional(),
  })
  .superRefine((u, ctx) => {
    if ((u.url === undefined) === (u.address === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'give either url (https://, udp:// or tcp://) or address (IP:PORT)' });
      return;
    }
    let plain = u.address !== undefined;
    if (u.address !== undefined) {
      const r = parseHostPort(u.address);
      if (typeof r === 'string') ctx.addIssue({ code: 'custom', path: ['address'], message: r });
    } else {
      let url: URL;
      try {
        url = new URL(u.url!);
      } catch {
        ctx.addIssue({ code: 'custom', path: ['url'], message: `"${u.url}" is not a valid URL` });
        return;
      }
      if (url.protocol === 'udp:' || url.protocol === 'tcp:') {
        plain = true;
        const r = parseHostPort(url.host || '');
        if (typeof r === 'string' || url.pathname.replace(/^\/$/, '') || url.search)
          ctx.addIssue({ code: 'custom', path: ['url'], message: `"${u.url}" must be ${url.protocol}//IP:PORT (an IP address, no path)` });
      } else if (url.protocol === 'https:' || url.protocol === 'tls:') {
        if (url.username || url.password) ctx.addIssue({ code: 'custom', path: ['url'], message: `"${u.url}" must not carry credentials` });
        if (url.protocol === 'tls:' && ((url.pathname && url.pathname !== '/') || url.search || !url.hostname))
          ctx.addIssue({ code: 'custom', path: ['url'], message: `"${u.url}" must be tls://HOST[:PORT] (DNS-over-TLS, no path)` });
        if (url.protocol === 'https:' && url.pathname === '/' && !url.search) ctx.addIssue({ code: 'custom', path: ['url'], message: noPath(u.url!) });
      } else {
        ctx.addIssue({ code: 'custom', path: ['url'], message: `"${u.url}" must be https:// (DoH), tls:// (DoT), udp:// or tcp:// (plain DNS)` });
      }
    }
    if (plain && u.bootstrap) ctx.addIssue({ code: 'custom', path: ['bootstrap'], message: 'applies to https:// and tls:// upstreams only' });
    if (plain && u.ca) ctx.addIssue({ code: 'custom', path: ['ca'], message: 'applies to https:// and tls:// upstreams only' });
  });

export const groupSchema = z.strictObject({
  strategy: strategyName.default('race'),
  upstreams: z.array(groupUpstreamSchema).min(1),
});

/** Hedged strategy: the second request goes out after the first one's recent p90, clamped. */
const hedgeSchema = z
  .strictObject({
    minDelayMs: ms(1, 10_000, 10),
    maxDelayMs: ms(1, 10_000, 1000),
    /** Delay while an upstream has too few samples for a p90. */
    initialDelayMs: ms(1, 10_000, 100),
  })
  .prefault({});

/** Failover strategy: an attempt that has not answered in this time counts as failed. */
const failoverSchema = z.strictObject({ attemptTimeoutMs: ms(10, 60_000, 1000) }).prefault({});

/** Upstream health: consecutive failures take an upstream out; probes bring it back. */
const healthSchema = z
  .strictObject({
    failures: z.int().min(1).max(1000).default(3),
    backoffMs: ms(10, 3_600_000, 1000),
    maxBackoffMs: ms(10, 86_400_000, 300_000),
    probeTimeoutMs: ms(10, 60_000, 2000),
  })
  .prefault({});

/** Upstreams with `alternates` (a ladder of paths to one provider). */
const ladderSchema = z
  .strictObject({
    /** A path that has not answered in this long looks blocked: the next path is asked too. */
    stepMs: ms(50, 10_000, 700),
    /** After moving down the ladder, the better paths are probed again after this long, doubling... */
    reprobeMs: ms(100, 86_400_000, 60_000),
    /** ...up to this. */
    maxReprobeMs: ms(100, 86_400_000, 900_000),
  })
  .prefault({});

/** An /etc/hosts-style file answered locally, reloaded when it changes. */
const hostsSchema = z.strictObject({
  file: z.string().min(1),
  ttl: seconds(86400, 60),
  pollMs: ms(50, 3_600_000, 2000),
});

/** How pins marked `verify: true` are checked: TLS to PORT with the pinned name as server name. */
const pinVerifySchema = z
  .strictObject({
    port: z.int().min(1).max(65535).default(443),
    intervalMs: ms(50, 86_400_000, 60_000),
    timeoutMs: ms(50, 60_000, 5000),
    /** Extra trusted CA file (PEM), added to the public roots. */
    ca: z.string().min(1).optional(),
  })
  .prefault({});

export const configSchema = z.strictObject({
  listen: z.array(listenAddress).min(1).default(DEFAULT_LISTEN),
  /**
   * A `listen` address that no interface has yet (EADDRNOTAVAIL: a bridge such as docker0 that
   * comes up after dohd) is retried this often, while dohd serves on the others; 0: start-up
   * fails instead. When no listen address can be bound at all, start-up fails either way.
   */
  listenRetryMs: z.int().min(0).max(3_600_000).default(1000),
  upstreams: z.array(upstreamSchema).min(1).default(DEFAULT_UPSTREAMS),
  /** Deadline for one client query; past it the client gets SERVFAIL. */
  timeoutMs: z.int().min(50).max(60_000).default(2500),
  cache: cacheSchema,
  pins: z.record(domainName, pinSchema).default({}),
  /** TTL of pinned answers, in seconds. */
  pinTtl: z.int().min(0).max(86400).default(60),
  /** Strategy of the default group (the `upstreams` list). */
  strategy: strategyName.default('race'),
  /** More upstream groups, by name, for `forward` rules and `fallback`. */
  groups: z.record(groupName, groupSchema).default({}),
  /** Domain (and its subdomains) → group name; the most specific rule wins. */
  forward: z.record(domainName, z.string().min(1)).default({}),
  /**
   * Built-in local zones (localhost, test, invalid, onion, local, home.arpa, resolver.arpa, private
   * and special reverse zones, use-application-dns.net), answered by dohd itself. All are on;
   * `false` turns them all off, `{ ZONE: false }` turns off that zone and every built-in zone
   * under it (`in-addr.arpa: false`: every IPv4 reverse zone). Pins, hosts and `forward` rules win anyway.
   */
  localZones: z
    .union([z.literal(false), z.record(domainName, z.boolean())])
    .superRefine((v, ctx) => {
      if (v === false) return;
      for (const key of Object.keys(v))
        if (!isLocalZoneKey(key)) ctx.addIssue({ code: 'custom', path: [key], message: 'is not a built-in local zone (see "Answered locally" in the README)' });
    })
    .default({}),
  /** A group asked only when every upstream of the default group is down. Off by default. */
  fallback: z.string().min(1).optional(),
  hedge: hedgeSchema,
  failover: failoverSchema,
  health: healthSchema,
  ladder: ladderSchema,
  hosts: hostsSchema.optional(),
  pinVerify: pinVerifySchema,
  /** At start-up, send each upstream a probe query to detect a forwarding loop back to dohd. */
  loopProbe: z.boolean().default(true),
  log: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      /** One log line per answered query (client, name, type, rcode, upstream, latency, cache status). */
      queries: z.boolean().default(false),
      /** `json` lines; `text`: one line per event for people, with its syslog priority (`<4>`...) for journald; `auto`: text when stdout is the journal. */
      format: z.enum(['json', 'text', 'auto']).default('auto'),
    })
    .prefault({}),
  /** Which client sources are answered; every other source gets REFUSED. */
  acl: z
    .strictObject({
      allow: z.array(cidr).default(DEFAULT_ACL_ALLOW),
    })
    .prefault({}),
  /** Token bucket per client prefix (/24 IPv4, /56 IPv6); over it UDP queries are dropped, TCP ones REFUSED. */
  rateLimit: z
    .strictObject({
      /** Queries per second per prefix; 0 turns the limit off. */
      qps: z.number().min(0).max(1_000_000).default(1000),
      /** Bucket size (queries allowed at once); default twice qps. */
      burst: z.int().min(1).max(10_000_000).optional(),
      /** Prefixes tracked at once (least recently seen are forgotten first). */
      maxClients: z.int().min(1).max(10_000_000).default(10_000),
      /** Sources never limited. */
      exempt: z.array(cidr).default(DEFAULT_RATE_LIMIT_EXEMPT),
    })
    .prefault({}),
  /** EDNS Client Subnet (RFC 7871) from clients: stripped before going upstream unless kept. */
  ecs: z
    .strictObject({
      keep: z.boolean().default(false),
    })
    .prefault({}),
  /** qtype ANY: `hinfo` answers the minimal RFC 8482 HINFO, `refuse` answers REFUSED, `forward` asks upstream. */
  any: z.enum(['hinfo', 'refuse', 'forward']).default('hinfo'),
  /**
   * UDP listener socket buffers (SO_RCVBUF, SO_SNDBUF), in bytes: what queues in the kernel
   * while dohd is busy, before datagrams are dropped (counted in dohd_udp_socket_drops_total).
   * The kernel caps them at net.core.rmem_max / wmem_max; the default matches the systemd
   * socket unit's ReceiveBuffer=4M. A size already larger (an activated socket) is kept.
   */
  udp: z
    .strictObject({
      receiveBufferBytes: z.int().min(1024).max(1024 * 1024 * 1024).default(4 * 1024 * 1024),
      sendBufferBytes: z.int().min(1024).max(1024 * 1024 * 1024).default(4 * 1024 * 1024),
    })
    .prefault({}),
  /** TCP listener limits (RFC 7766). */
  tcp: z
    .strictObject({
      /** Close a connection with no query in progress and no traffic for this long. */
      idleTimeoutMs: z.int().min(100).max(600_000).default(10_000),
      /** Open connections per listening address; more are closed at once. */
      maxConnections: z.int().min(1).max(100_000).default(1000),
      /** Queries in progress per connection; past it the connection is not read until some finish. */
      maxInflightPerConnection: z.int().min(1).max(1000).default(64),
      /** A query frame, once its first byte arrived, must be complete within this long. */
      frameTimeoutMs: z.int().min(100).max(600_000).default(5000),
      /** Unsent answer bytes per connection before it stops reading; twice this closes it. */
      maxBufferedBytes: z.int().min(65_536).max(64 * 1024 * 1024).default(262_144),
    })
    .prefault({}),
  /**
   * The admin HTTP listener (/metrics, /healthz, /readyz); `false` turns it off. Left out, it is
   * { listen: 127.0.0.1:9153 } on a best-effort basis (a taken port is logged, not fatal);
   * set explicitly, failing to listen stops start-up like any listen address.
   */
  admin: z
    .union([z.literal(false), z.strictObject({ listen: listenAddress.default(DEFAULT_ADMIN_LISTEN) })], {
      error: 'false (no admin listener), or { listen: "ADDR:PORT" }',
    })
    .optional(),
  /** Processes answering on the same sockets (node:cluster); `auto`: one per CPU. */
  workers: z.union([z.int().min(1).max(256), z.literal('auto')], { error: 'a whole number of processes from 1 to 256, or "auto" (one per CPU)' }).default(1),
});

export type Config = z.output<typeof configSchema>;
export type GroupConfig = z.output<typeof groupSchema>;
export type GroupUpstreamConfig = z.output<typeof groupUpstreamSchema>;
export type StrategyName = z.output<typeof strategyName>;
export type ConfigInput = z.input<typeof configSchema>;
export type UpstreamConfig = z.output<typeof upstreamSchema>;
export type PinConfig = z.output<typeof pinSchema>;
