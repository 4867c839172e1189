/**
 * The one place that names every configuration option, its type and its default.
 * YAML keys, CLI flags and the example config all follow these names.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { parseHostPort } from './address.js';
import { parseCidr } from './cidr.js';
import { DEFAULT_ACL_ALLOW, DEFAULT_LISTEN, DEFAULT_RATE_LIMIT_EXEMPT, DEFAULT_UPSTREAMS } from './defaults.js';

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
  if (u.protocol !== 'https:') ctx.addIssue({ code: 'custom', message: `"${s}" must be an https:// URL (DNS-over-HTTPS, RFC 8484)` });
  if (u.username || u.password) ctx.addIssue({ code: 'custom', message: `"${s}" must not carry credentials` });
});

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
});

const pinAddresses = z.array(ipAddress).min(1);
export const pinSchema = z.union([
  pinAddresses,
  z.strictObject({
    addresses: pinAddresses,
    ttl: z.int().min(0).max(86400).optional(),
  }),
]);

export const configSchema = z.strictObject({
  listen: z.array(listenAddress).min(1).default(DEFAULT_LISTEN),
  upstreams: z.array(upstreamSchema).min(1).default(DEFAULT_UPSTREAMS),
  /** Deadline for one client query; past it the client gets SERVFAIL. */
  timeoutMs: z.int().min(50).max(60_000).default(2500),
  cache: z
    .strictObject({
      maxEntries: z.int().min(0).max(10_000_000).default(100_000),
    })
    .default({ maxEntries: 100_000 }),
  pins: z.record(domainName, pinSchema).default({}),
  /** TTL of pinned answers, in seconds. */
  pinTtl: z.int().min(0).max(86400).default(60),
  /** At start-up, send each upstream a probe query to detect a forwarding loop back to dohd. */
  loopProbe: z.boolean().default(true),
  log: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    })
    .default({ level: 'info' }),
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
});

export type Config = z.output<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
export type UpstreamConfig = z.output<typeof upstreamSchema>;
export type PinConfig = z.output<typeof pinSchema>;
