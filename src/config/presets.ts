/**
 * Named upstream sets (`upstreams: cn` in the config, `--preset cn` on the command line).
 * This file is the one source: the README table is generated from it (scripts/presets-table.ts;
 * test/unit/config/presets.test.ts fails when the README is stale).
 *
 * Each provider is one upstream with a ladder of paths to the same resolver, tried in this
 * order, moving on as soon as one looks blocked: DoH by name on each bootstrap IP, DoH to an
 * IP-literal URL (no server name for a filter to read), DoT on 853. Addresses and URLs come
 * only from each provider's own documentation (`source`).
 *
 * Nothing here is ever contacted by dohd on its own: a preset is used only when chosen, and
 * the default never falls back to another preset (it only says, in the log and in doctor,
 * that one exists).
 */
import { isIPv4 } from 'node:net';

export interface PresetPath {
  url: string;
  bootstrap?: string[];
}

export interface PresetProvider {
  /** Label in logs and metrics. */
  name: string;
  /** Who runs it, for people. */
  provider: string;
  /** Where the addresses below are published. */
  source: string;
  /** The first path: DoH by name. */
  url: string;
  bootstrap: string[];
  /** The other paths, in ladder order. */
  alternates: PresetPath[];
}

export interface Preset {
  name: string;
  /** One line for the README and `--help`. */
  description: string;
  providers: PresetProvider[];
}

/**
 * One provider, its paths in the one pattern above: DoH by name (`https://NAME/dns-query`) on
 * every bootstrap IP; DoH to the first IPv4 literal; DoT to `dotHost`. The last two use the
 * IPv4 bootstrap addresses.
 */
function provider(name: string, who: string, source: string, dotHost: string, bootstrap: string[]): PresetProvider {
  const v4 = bootstrap.filter((ip) => isIPv4(ip));
  return {
    name,
    provider: who,
    source,
    url: `https://${name}/dns-query`,
    bootstrap,
    alternates: [
      { url: `https://${v4[0]}/dns-query`, bootstrap: v4 },
      { url: `tls://${dotHost}`, bootstrap: [...v4] },
    ],
  };
}

export const PRESETS: Readonly<Record<string, Preset>> = {
  default: {
    name: 'default',
    description: 'Cloudflare and Google (used when `upstreams` is not set)',
    providers: [
      provider('cloudflare-dns.com', 'Cloudflare 1.1.1.1', 'https://developers.cloudflare.com/1.1.1.1/encryption/', 'one.one.one.one',
        ['1.1.1.1', '1.0.0.1', '2606:4700:4700::1111', '2606:4700:4700::1001']),
      provider('dns.google', 'Google Public DNS', 'https://developers.google.com/speed/public-dns/docs/secure-transports', 'dns.google',
        ['8.8.8.8', '8.8.4.4', '2001:4860:4860::8888', '2001:4860:4860::8844']),
    ],
  },
  cn: {
    name: 'cn',
    description: 'AliDNS and DNSPod: answer in mainland China, where Cloudflare and Google are blocked',
    providers: [
      provider('dns.alidns.com', 'AliDNS (Alibaba Cloud)', 'https://www.alidns.com/knowledge?type=SETTING_DOCS', 'dns.alidns.com', ['223.5.5.5', '223.6.6.6']),
      provider('doh.pub', 'DNSPod Public DNS (Tencent)', 'https://docs.dnspod.cn/public-dns/', 'dot.pub', ['1.12.12.12', '120.53.53.53']),
    ],
  },
};

/** What a preset is in the `upstreams` list: one upstream per provider, with its ladder. */
export function presetUpstreams(name: string): { url: string; bootstrap: string[]; name: string; alternates: PresetPath[] }[] | undefined {
  const p = Object.hasOwn(PRESETS, name) ? PRESETS[name] : undefined;
  return p?.providers.map((x) => ({
    url: x.url,
    bootstrap: [...x.bootstrap],
    name: x.name,
    alternates: x.alternates.map((a) => ({ url: a.url, ...(a.bootstrap ? { bootstrap: [...a.bootstrap] } : {}) })),
  }));
}

/** Why `cn` may help, said in the log and by doctor when the default upstreams cannot be reached. */
export const CN_HINT =
  "Cloudflare and Google are blocked in some networks (mainland China among them). The 'cn' preset (AliDNS, DNSPod) answers there: set 'upstreams: cn' in the config, or run with --preset cn. dohd never switches to another country's resolvers by itself.";

/** The README table (between the presets markers). */
export function presetsTable(): string {
  const rows = ['| preset | provider | DoH by name (bootstrap IPs) | IP-literal DoH | DoT |', '|---|---|---|---|---|'];
  for (const p of Object.values(PRESETS)) {
    for (const x of p.providers) {
      const ip = x.alternates.filter((a) => a.url.startsWith('https:')).map((a) => `\`${a.url}\``);
      const dot = x.alternates.filter((a) => a.url.startsWith('tls:')).map((a) => `\`${a.url}\``);
      rows.push(`| \`${p.name}\` | [${x.provider}](${x.source}) | \`${x.url}\` (${x.bootstrap.join(', ')}) | ${ip.join(', ') || '—'} | ${dot.join(', ') || '—'} |`);
    }
  }
  return rows.join('\n');
}
