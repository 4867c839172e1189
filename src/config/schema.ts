/**
 * The one place that names every configuration option, its type and its default.
 * YAML keys, CLI flags and the example config all follow these names.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { parseHostPort } from './address.js';
import { DEFAULT_ADMIN_LISTEN, DEFAULT_LISTEN, DEFAULT_UPSTREAMS } from './defaults.js';

const listenAddress = z.string().superRefine((s, ctx) => {
  const r = parseHostPort(s);
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
  log: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      /** One log line per answered query (client, name, type, rcode, upstream, latency, cache status). */
      queries: z.boolean().default(false),
    })
    .default({ level: 'info', queries: false }),
  /**
   * The admin HTTP listener (/metrics, /healthz, /readyz); `false` turns it off. Left out, it is
   * { listen: 127.0.0.1:9153 } on a best-effort basis (a taken port is logged, not fatal);
   * set explicitly, failing to listen stops start-up like any listen address.
   */
  admin: z
    .union([z.literal(false), z.strictObject({ listen: listenAddress.default(DEFAULT_ADMIN_LISTEN) })], {
      error: 'expected false or { listen: "ADDR:PORT" }',
    })
    .optional(),
});

export type Config = z.output<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
export type UpstreamConfig = z.output<typeof upstreamSchema>;
export type PinConfig = z.output<typeof pinSchema>;
