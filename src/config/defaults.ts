/**
 * Built-in knowledge: the default upstreams and the bootstrap addresses of
 * well-known DoH providers, so dohd never needs the system resolver to find them.
 */
import { presetUpstreams } from './presets.js';

export const KNOWN_BOOTSTRAP: Readonly<Record<string, readonly string[]>> = {
  'cloudflare-dns.com': ['1.1.1.1', '1.0.0.1', '2606:4700:4700::1111', '2606:4700:4700::1001'],
  'one.one.one.one': ['1.1.1.1', '1.0.0.1', '2606:4700:4700::1111', '2606:4700:4700::1001'],
  'security.cloudflare-dns.com': ['1.1.1.2', '1.0.0.2'],
  'dns.google': ['8.8.8.8', '8.8.4.4', '2001:4860:4860::8888', '2001:4860:4860::8844'],
  'dns.quad9.net': ['9.9.9.9', '149.112.112.112', '2620:fe::fe'],
  // The `cn` preset's providers (src/config/presets.ts).
  'dns.alidns.com': ['223.5.5.5', '223.6.6.6'],
  'doh.pub': ['1.12.12.12', '120.53.53.53'],
  'dot.pub': ['1.12.12.12', '120.53.53.53'],
};

/** The `default` preset (src/config/presets.ts): Cloudflare and Google, each with its ladder of paths. */
export const DEFAULT_UPSTREAMS = presetUpstreams('default')!;

export const DEFAULT_LISTEN = ['127.0.0.1:53', '[::1]:53'];

/** The admin HTTP listener (metrics, health): loopback unless configured otherwise. */
export const DEFAULT_ADMIN_LISTEN = '127.0.0.1:9153';

/**
 * The Go module proxy and checksum database names whose failure produces
 * `dial tcp: lookup goproxy.cn: no such host`. Documented so users can pin them in one place.
 */
export const GO_PROXY_NAMES = [
  'goproxy.cn',
  'goproxy.io',
  'proxy.golang.org',
  'sum.golang.org',
  'mirrors.aliyun.com',
] as const;

/**
 * Sources answered by default: loopback, RFC 1918, link-local (169.254/16, fe80::/10) and
 * unique local IPv6 (RFC 4193). CGNAT (100.64.0.0/10, RFC 6598) is left out on purpose: it
 * is shared by many customers of one ISP, not private to one site (add it for Tailscale).
 */
export const DEFAULT_ACL_ALLOW = [
  '127.0.0.0/8',
  '::1/128',
  '10.0.0.0/8',
  '172.16.0.0/12',
  '192.168.0.0/16',
  '169.254.0.0/16',
  'fc00::/7',
  'fe80::/10',
];

/** Sources the rate limit does not apply to: local processes can load the machine anyway. */
export const DEFAULT_RATE_LIMIT_EXEMPT = ['127.0.0.0/8', '::1/128'];
