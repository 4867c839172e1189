/**
 * The one place that names every configuration option, its type, its default and what it
 * means (`.describe()`): docs/configuration.md is generated from this file
 * (src/config/reference.ts, `npm run config-doc`), and dohd.example.yaml is checked against it.
 * Code that takes a slice of the parsed config gets every field filled in: no other defaults.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { parseHostPort } from './address.js';
import { parseCidr } from './cidr.js';
import { isLocalZoneKey } from './local-zones.js';
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

const upstreamIdleTimeoutMs = z
  .int()
  .min(100)
  .max(3_600_000)
  .describe("dohd closes the upstream connection itself after this long without a query (ms), below the 10-30 s after which upstreams drop idle connections silently.");
const upstreamQuietMs = z
  .int()
  .min(0)
  .max(3_600_000)
  .describe('A connection silent this long (ms) may be dead without a FIN: a request on it that gets no timely answer is also sent on a fresh connection. 0: never.');

export const upstreamSchema = z.strictObject({
  url: dohUrl.describe('The server: https://HOST[:PORT]/PATH (DNS-over-HTTPS, RFC 8484) or tls://HOST[:853] (DNS-over-TLS, RFC 7858).'),
  bootstrap: z
    .array(ipAddress)
    .min(1)
    .optional()
    .describe(
      "IP addresses to connect to instead of resolving the URL's host name (dohd never asks the system resolver), raced happy-eyeballs style. Known providers (cloudflare-dns.com, dns.google, dns.quad9.net, dns.alidns.com, doh.pub, dot.pub) have them built in; a URL whose host is an IP needs none.",
    ),
  ca: z.string().min(1).optional().describe('Extra trusted CA certificate file (PEM), added to the public roots.'),
  name: z.string().min(1).max(64).optional().describe("A short label for logs and metrics; default: the URL's host."),
  idleTimeoutMs: upstreamIdleTimeoutMs.default(8000),
  quietMs: upstreamQuietMs.default(1000),
  alternates: z
    .array(
      z.strictObject({
        url: dohUrl.describe('An IP-literal DoH URL or a tls:// DoT server of the same provider.'),
        bootstrap: z.array(ipAddress).min(1).optional().describe("This path's own bootstrap IPs."),
      }),
    )
    .min(1)
    .max(8)
    .optional()
    .describe('Other paths to the same provider, tried in order when the one before looks blocked (see `ladder`): an IP-literal DoH URL, DoT on 853. They share `ca`.'),
});

/** The connection settings of a DoH or DoT upstream, as the schema defaults them (for upstreams built outside a config: `dohd query`, bootstrap, a group's). */
export const UPSTREAM_CONNECTION_DEFAULTS = z.object({ idleTimeoutMs: upstreamSchema.shape.idleTimeoutMs, quietMs: upstreamSchema.shape.quietMs }).parse({});

const pinAddresses = z.array(ipAddress).min(1);
export const pinSchema = z.union([
  pinAddresses,
  z.strictObject({
    addresses: pinAddresses.describe('The addresses answered (A and AAAA); every other type gets an empty NOERROR.'),
    ttl: z.int().min(0).max(86400).optional().describe('TTL of these answers, seconds; default: pinTtl.'),
    verify: z.boolean().optional().describe('Check each address with a TLS handshake for this name (pinVerify); leave out those that fail.'),
  }),
]);

/**
 * A block of settings that may be left out as a whole: each field then takes its own default
 * (every field of a section has a default or is optional).
 */
function section<T extends z.core.$ZodLooseShape>(what: string, shape: T) {
  return z.strictObject(shape).prefault({} as z.input<z.ZodObject<T>>).describe(what);
}

/** A whole number in [min, max], `dflt` when left out; `ms` and `seconds` say the unit. */
const int = (min: number, max: number, dflt: number) => z.int().min(min).max(max).default(dflt);
const ms = int;
const seconds = (max: number, dflt: number) => int(0, max, dflt);
/** SO_RCVBUF / SO_SNDBUF of a UDP listener, bytes (the kernel caps it at net.core.[rw]mem_max). */
const socketBuffer = int(1024, 2 ** 30, 4 * 2 ** 20);

export const cacheSchema = section('The answer cache: answers kept as received, TTLs counting down.', {
  maxEntries: int(0, 10_000_000, 100_000).describe('Answers kept (least recently used go first); 0 turns the cache off.'),
  maxBytes: int(4096, 8 * 2 ** 30, 64 * 2 ** 20).describe('And at most about this much memory for the stored answers, in bytes.'),
  minTtl: seconds(86400, 0).describe('Lower TTL clamp for positive answers, seconds.'),
  maxTtl: seconds(7 * 86400, 86400).describe('Upper TTL clamp for positive answers, seconds.'),
  negativeMaxTtl: seconds(86400, 3600).describe('NXDOMAIN and NODATA are kept for the SOA minimum (RFC 2308), at most this many seconds.'),
  staleWindow: seconds(30 * 86400, 86400).describe('Serve-stale (RFC 8767): seconds past expiry an answer may still be served when the upstreams fail; 0 turns it off.'),
  staleTtl: int(1, 3600, 30).describe('TTL written into stale answers, seconds.'),
  staleClientTimeoutMs: z
    .int()
    .min(10)
    .max(60_000)
    .optional()
    .describe('How long a client waits for a refresh before it gets the stale answer (ms); default: 72% of timeoutMs (1800 of 2500).'),
  staleRecheckMs: ms(0, 3_600_000, 30_000).describe('After a refresh failed, stale answers go out at once, and the next refresh waits this long (ms).'),
  prefetchHits: int(0, 1_000_000, 2).describe('Prefetch: an entry hit this often is refreshed before it expires; 0 turns prefetch off.'),
  prefetchThreshold: z.number().gt(0).max(0.9).default(0.1).describe("Prefetch when less than this share of the entry's TTL is left."),
  file: z.string().min(1).optional().describe('Warm restart: the cache is saved here on clean shutdown and loaded at start. Off unless set.'),
});

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
    url: z.string().min(1).optional().describe('https://HOST/PATH (DoH), tls://HOST[:853] (DoT), udp://IP:PORT (plain DNS, TCP when truncated) or tcp://IP:PORT (TCP only).'),
    address: z.string().min(1).optional().describe('IP:PORT of a plain DNS server (same as udp://).'),
    bootstrap: z.array(ipAddress).min(1).optional().describe('As upstreams[].bootstrap; DoH and DoT only.'),
    ca: z.string().min(1).optional().describe('As upstreams[].ca; DoH and DoT only.'),
    name: z.string().min(1).max(64).optional().describe('A short label for logs and metrics.'),
    idleTimeoutMs: upstreamIdleTimeoutMs.optional().describe('As upstreams[].idleTimeoutMs, with its default; DoH and DoT only.'),
    quietMs: upstreamQuietMs.optional().describe('As upstreams[].quietMs, with its default; DoH and DoT only.'),
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
    if (plain)
      for (const key of ['bootstrap', 'ca', 'idleTimeoutMs', 'quietMs'] as const)
        if (u[key] !== undefined) ctx.addIssue({ code: 'custom', path: [key], message: 'applies to https:// and tls:// upstreams only' });
  });

export const groupSchema = z.strictObject({
  strategy: strategyName.default('race').describe("How this group's upstreams are asked: race, hedged or failover."),
  upstreams: z.array(groupUpstreamSchema).min(1).describe('The upstreams of this group: DoH, DoT or plain DNS.'),
});

const hedgeSchema = section("Hedged strategy: the next upstream is asked after the first one's recent p90 latency, within these bounds.", {
  minDelayMs: ms(1, 10_000, 10).describe('Lower bound of the delay before the next upstream is asked (ms).'),
  maxDelayMs: ms(1, 10_000, 1000).describe('Upper bound of that delay (ms).'),
  initialDelayMs: ms(1, 10_000, 100).describe('The delay while an upstream has too few samples for a p90 (ms).'),
});

const failoverSchema = section('Failover strategy: upstreams in the order listed.', { attemptTimeoutMs: ms(10, 60_000, 1000).describe('An attempt not answered in this time counts as failed, and the next upstream is asked (ms).') });

const healthSchema = section('Upstream health, for every group: failures in a row take an upstream out, probes bring it back. When every upstream of a group is out, all are tried anyway.', {
  failures: int(1, 1000, 3).describe('Failures in a row that take an upstream out (SERVFAIL does not count).'),
  backoffMs: ms(10, 3_600_000, 1000).describe('An upstream that is out is probed after this long (ms), doubling per failed probe.'),
  maxBackoffMs: ms(10, 86_400_000, 300_000).describe('Upper bound of that delay (ms).'),
  probeTimeoutMs: ms(10, 60_000, 2000).describe('Deadline of one probe (ms).'),
});

const ladderSchema = section('Upstreams with `alternates` (a ladder of paths to one provider).', {
  stepMs: ms(50, 10_000, 700).describe('A path that has not answered in this long (ms) looks blocked: the next path is asked too.'),
  reprobeMs: ms(100, 86_400_000, 60_000).describe('After moving down the ladder, the better paths are probed again after this long (ms), doubling...'),
  maxReprobeMs: ms(100, 86_400_000, 900_000).describe('...up to this (ms).'),
});

const hostsSchema = z
  .strictObject({
    file: z.string().min(1).describe('The file (A, AAAA, and PTR for its addresses).'),
    ttl: seconds(86400, 60).describe('TTL of its answers, seconds.'),
    pollMs: ms(50, 3_600_000, 2000).describe('The file is watched, and also checked this often (ms).'),
  })
  .describe('An /etc/hosts-style file answered locally, reloaded when it changes. Off unless set.');

const pinVerifySchema = section('How pins marked `verify: true` are checked: a TLS handshake to the port, with the pinned name as server name, certificate verified.', {
  port: int(1, 65535, 443).describe('The port a pinned address is checked on.'),
  intervalMs: ms(50, 86_400_000, 60_000).describe('How often each address is checked (ms).'),
  timeoutMs: ms(50, 60_000, 5000).describe('Deadline of one check (ms).'),
  ca: z.string().min(1).optional().describe('Extra trusted CA file (PEM), added to the public roots.'),
});

export const configSchema = z.strictObject({
  listen: z.array(listenAddress).min(1).default(DEFAULT_LISTEN).describe('Addresses to answer DNS on, UDP and TCP (IPv6 in brackets: "[::1]:53").'),
  listenRetryMs: ms(0, 3_600_000, 1000).describe(
      'A listen address that no interface has yet (EADDRNOTAVAIL: a bridge such as docker0 that comes up after dohd) is retried this often (ms) while dohd serves on the others; 0: start-up fails instead. When no listen address can be bound at all, start-up fails either way.',
    ),
  upstreams: z
    .array(upstreamSchema)
    .min(1)
    .prefault(DEFAULT_UPSTREAMS)
    .describe(
      'The default group: DoH (`https://`) and DoT (`tls://`) servers, asked with `strategy`; or the name of a preset instead of a list (`default`: Cloudflare and Google, `cn`: AliDNS and DNSPod; src/config/presets.ts). Default: the `default` preset.',
    ),
  timeoutMs: int(50, 60_000, 2500).describe('Deadline for one client query (ms); past it the client gets SERVFAIL.'),
  maxInflight: int(1, 1_000_000, 10_000).describe('Client queries waiting on an upstream at once (answers from the cache, pins or hosts take no slot); past it a new one gets SERVFAIL at once (EDE "dohd overloaded") instead of queueing. Bounds memory when upstreams are slow or dead.'),
  cache: cacheSchema,
  pins: z
    .record(domainName, pinSchema)
    .default({})
    .describe('Names answered locally with fixed addresses: `name: [IP, ...]` or `name: { addresses: [...], ttl: N, verify: true }`.'),
  pinTtl: int(0, 86400, 60).describe('TTL of pinned answers, seconds.'),
  strategy: strategyName.default('race').describe('How `upstreams` are asked: race (all at once, first good answer wins), hedged (the fastest first, the next after its recent p90), failover (in order).'),
  groups: z
    .record(groupName, groupSchema)
    .default({})
    .describe('More upstream groups, by name, for `forward` rules and `fallback`: `name: { strategy, upstreams: [...] }`.'),
  forward: z
    .record(domainName, z.string().min(1))
    .default({})
    .describe('`domain: group`: the domain and its subdomains go to that group; the most specific rule wins, and `default` names `upstreams`.'),
  localZones: z
    .union([z.literal(false), z.record(domainName, z.boolean())])
    .superRefine((v, ctx) => {
      if (v === false) return;
      for (const key of Object.keys(v))
        if (!isLocalZoneKey(key)) ctx.addIssue({ code: 'custom', path: [key], message: 'is not a built-in local zone (see "Answered locally" in docs/configuration.md)' });
    })
    .default({})
    .describe(
      'Built-in local zones (localhost, test, invalid, onion, local, home.arpa, resolver.arpa, private and special reverse zones, use-application-dns.net), answered by dohd itself; all are on. `false` turns them all off, `{ ZONE: false }` that zone and every built-in zone under it (`in-addr.arpa: false`: every IPv4 reverse zone). Pins, hosts and `forward` rules win anyway.',
    ),
  fallback: z.string().min(1).optional().describe('A group asked only when every upstream of the default group is down. Off unless set.'),
  hedge: hedgeSchema,
  failover: failoverSchema,
  health: healthSchema,
  ladder: ladderSchema,
  hosts: hostsSchema.optional(),
  pinVerify: pinVerifySchema,
  loopProbe: z.boolean().default(true).describe('At start-up, send each upstream a probe query to detect a forwarding loop back to dohd.'),
  log: section('Logging, on stdout.', {
    level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info').describe('The least severe level logged.'),
    queries: z
      .boolean()
      .default(false)
      .describe('One log line per answered query: client, qname, qtype, rcode, source, cache (hit/miss/stale/none), upstream (the winner), ms, transport.'),
    format: z
      .enum(['json', 'text', 'auto'])
      .default('auto')
      .describe('`json` lines; `text`: one line per event for people, with its syslog priority (`<4>`...) for journald; `auto`: text when stdout is the journal.'),
  }),
  acl: section('Which client sources are answered; every other source gets REFUSED.', {
    allow: z
      .array(cidr)
      .default(DEFAULT_ACL_ALLOW)
      .describe('CIDR ranges answered: loopback, RFC 1918, link-local and fc00::/7 by default (CGNAT 100.64.0.0/10 is left out on purpose: add it for a Tailscale tailnet).'),
  }),
  rateLimit: section('Token bucket per client prefix (/24 IPv4, /56 IPv6); over it UDP queries are dropped, TCP ones get REFUSED.', {
    qps: z.number().min(0).max(1_000_000).default(1000).describe('Queries per second per prefix; 0 turns the limit off.'),
    burst: z.int().min(1).max(10_000_000).optional().describe('Bucket size (queries allowed at once); default: twice qps.'),
    maxClients: int(1, 10_000_000, 10_000).describe('Prefixes tracked at once (least recently seen are forgotten first).'),
    exempt: z.array(cidr).default(DEFAULT_RATE_LIMIT_EXEMPT).describe('CIDR ranges never limited.'),
  }),
  ecs: section('EDNS Client Subnet (RFC 7871) from clients: stripped before going upstream unless kept.', {
    keep: z.boolean().default(false).describe("Forward the client's EDNS Client Subnet instead of removing it."),
  }),
  any: z
    .enum(['hinfo', 'refuse', 'forward'])
    .default('hinfo')
    .describe('qtype ANY: `hinfo` answers the minimal RFC 8482 HINFO, `refuse` answers REFUSED, `forward` asks upstream.'),
  udp: section("UDP listener socket buffers, in bytes. The kernel caps them at net.core.rmem_max / wmem_max (a warning gives what was granted); the default matches the systemd socket unit's ReceiveBuffer=4M, and a size already larger (an activated socket) is kept.", {
    receiveBufferBytes: socketBuffer.describe('SO_RCVBUF of each UDP listener: what queues in the kernel while dohd is busy; drops show in dohd_udp_socket_drops_total.'),
    sendBufferBytes: socketBuffer.describe('SO_SNDBUF of each UDP listener.'),
  }),
  tcp: section('TCP listener limits (RFC 7766).', {
    idleTimeoutMs: int(100, 600_000, 10_000).describe('Close a connection with no query in progress and no traffic for this long (ms).'),
    maxConnections: int(1, 100_000, 1000).describe('Open connections per listen address; more are closed at once.'),
    maxInflightPerConnection: int(1, 1000, 64).describe('Queries in progress per connection; past it the connection is not read until some finish.'),
    frameTimeoutMs: int(100, 600_000, 5000).describe('A query frame, once its first byte arrived, must be complete within this long (ms).'),
    maxBufferedBytes: int(65_536, 64 * 2 ** 20, 262_144).describe('Unsent answer bytes per connection before it stops being read; twice this closes it.'),
  }),
  admin: z
    .union([z.literal(false), z.strictObject({ listen: listenAddress.default(DEFAULT_ADMIN_LISTEN).describe('ADDR:PORT of the admin listener.') })], {
      error: 'false (no admin listener), or { listen: "ADDR:PORT" }',
    })
    .optional()
    .describe(
      `The admin HTTP listener (/metrics, /healthz, /readyz, /status); \`false\` turns it off. Left out, it is { listen: ${DEFAULT_ADMIN_LISTEN} } on a best-effort basis (a taken port is logged, not fatal); set explicitly, failing to listen stops start-up like any listen address.`,
    ),
  workers: z
    .union([z.int().min(1).max(256), z.literal('auto')], { error: 'a whole number of processes from 1 to 256, or "auto" (one per CPU)' })
    .default(1)
    .describe('Processes answering on the same sockets (node:cluster); `auto`: one per CPU.'),
});

export type Config = z.output<typeof configSchema>;

/** The whole configuration with every default, as an empty file gives it (for parts built outside a config: `dohd query`, doctor). */
export const configDefaults = (): Config => configSchema.parse({});
export type GroupConfig = z.output<typeof groupSchema>;
export type GroupUpstreamConfig = z.output<typeof groupUpstreamSchema>;
export type StrategyName = z.output<typeof strategyName>;
export type ConfigInput = z.input<typeof configSchema>;
export type UpstreamConfig = z.output<typeof upstreamSchema>;
/** An upstream as written: the connection settings may be left to the schema's defaults. */
export type UpstreamInput = z.input<typeof upstreamSchema>;
export type PinConfig = z.output<typeof pinSchema>;
export type CacheConfig = z.output<typeof cacheSchema>;
