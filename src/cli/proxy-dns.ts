/**
 * `dohd proxy-dns`: a drop-in for `cloudflared proxy-dns`, removed in cloudflared 2026.2.0.
 * Replace the word `cloudflared` with `dohd` in a command line, a systemd unit or a
 * container entry point, and the same flags, TUNNEL_DNS_* variables and config keys mean
 * the same thing (see src/config/cloudflared.ts). It then runs the same daemon as `dohd run`.
 */
import type { CommandModule } from 'yargs';
import { CLOUDFLARED_DEFAULTS, listenAddresses, proxyDnsSettings, type ProxyDnsFlags, type ProxyDnsSettings } from '../config/cloudflared.js';
import { KNOWN_BOOTSTRAP } from '../config/defaults.js';
import { ConfigError, validateConfig } from '../config/load.js';
import type { Config, ConfigInput } from '../config/schema.js';
import { createLogger, type Logger } from '../log/log.js';
import { BootstrapError, resolveThroughDoh } from '../upstream/doh/bootstrap-resolve.js';
import { fail } from './common.js';
import { serve } from './run.js';

interface ProxyDnsArgs extends ProxyDnsFlags {
  ca?: string;
  'max-upstream-conns'?: string;
}

const d = CLOUDFLARED_DEFAULTS;

export const proxyDnsCommand: CommandModule<object, ProxyDnsArgs> = {
  command: 'proxy-dns',
  describe: 'run as a drop-in for the removed `cloudflared proxy-dns` (same flags, TUNNEL_DNS_* variables and config keys)',
  builder: (y) =>
    y
      .option('address', { type: 'string', alias: 'proxy-dns-address', describe: `Listen address for the DNS over HTTPS proxy server. (default: "${d.address}") [$TUNNEL_DNS_ADDRESS]` })
      .option('port', { type: 'string', alias: 'proxy-dns-port', describe: `Listen on given port for the DNS over HTTPS proxy server. (default: ${d.port}) [$TUNNEL_DNS_PORT]` })
      .option('upstream', {
        type: 'string',
        array: true,
        alias: 'proxy-dns-upstream',
        describe: `Upstream endpoint URL, you can specify multiple endpoints for redundancy. (default: ${d.upstream.join(', ')}) [$TUNNEL_DNS_UPSTREAM]`,
      })
      .option('bootstrap', {
        type: 'string',
        array: true,
        alias: 'proxy-dns-bootstrap',
        describe: `Bootstrap endpoint URL (its host an IP address), asked once at start-up for the address of an --upstream given by name. (default: ${d.bootstrap.join(', ')}) [$TUNNEL_DNS_BOOTSTRAP]`,
      })
      .option('max-upstream-conns', {
        type: 'string',
        alias: 'proxy-dns-max-upstream-conns',
        describe: `Maximum concurrent connections to upstream, 0 means unlimited; dohd keeps one HTTP/2 connection per upstream. (default: ${d.maxUpstreamConns}) [$TUNNEL_DNS_MAX_UPSTREAM_CONNS]`,
      })
      .option('loglevel', { type: 'string', describe: `Log level: debug, info, warn, error, fatal. (default: ${d.loglevel}) [$TUNNEL_LOGLEVEL]` })
      .option('config', {
        type: 'string',
        describe: "cloudflared YAML config with proxy-dns-* keys (default: cloudflared's config.yml in ~/.cloudflared, ~/.cloudflare-warp, ~/cloudflare-warp, /etc/cloudflared, /usr/local/etc/cloudflared)",
      })
      .option('proxy-dns', { type: 'boolean', describe: "cloudflared tunnel's switch for the DNS proxy: accepted (it is what this command does)" })
      .option('autoupdate', { type: 'boolean', hidden: true, describe: '--no-autoupdate is accepted: dohd never updates itself' })
      .option('metrics', {
        type: 'string',
        describe:
          'Listen address for metrics reporting: dohd\'s admin listener (/metrics, /healthz, /readyz, /status) on ADDR:PORT ("localhost:" picks a port). Without it dohd proxy-dns opens no admin listener. [$TUNNEL_METRICS]',
      })
      .option('ca', { type: 'string', describe: "extra trusted CA file (PEM) for the --upstream and --bootstrap URLs (dohd's own flag; or NODE_EXTRA_CA_CERTS=FILE)" }) as never,
  handler: async (args) => {
    let settings: ProxyDnsSettings;
    try {
      settings = proxyDnsSettings({
        address: args.address,
        port: args.port,
        upstream: args.upstream,
        bootstrap: args.bootstrap,
        maxUpstreamConns: args['max-upstream-conns'],
        loglevel: args.loglevel,
        config: args.config,
        metrics: args.metrics,
        ...(args.ca !== undefined ? { ca: args.ca } : {}),
        proxyDns: args.proxyDns,
        autoupdate: args.autoupdate,
      });
    } catch (err) {
      if (err instanceof ConfigError) fail(`proxy-dns: ${err.message}`, 2);
      throw err;
    }
    const log = createLogger(settings.loglevel.value as 'info');
    const config = await proxyDnsConfig(settings, log);
    log.info(
      {
        config: settings.configFile?.path ?? null,
        address: settings.address,
        port: settings.port,
        upstream: settings.upstream,
        bootstrap: settings.bootstrap,
        maxUpstreamConns: settings.maxUpstreamConns,
        loglevel: settings.loglevel,
        metrics: settings.metrics,
      },
      'proxy-dns: cloudflared settings (value and where it came from); dohd keeps one HTTP/2 connection per upstream, within max-upstream-conns',
    );
    await serve(config);
  },
};

/**
 * dohd's configuration for the settings: listen on --address:--port, ask the --upstream
 * URLs. An upstream given by host name gets its addresses from the --bootstrap DoH
 * servers, asked once now; dohd never asks the system resolver (which may be dohd).
 */
export async function proxyDnsConfig(s: ProxyDnsSettings, log: Logger): Promise<Config> {
  const upstreams: { url: string; bootstrap?: string[]; ca?: string }[] = [];
  const ca = s.ca ? { ca: s.ca } : {};
  for (const url of s.upstream.value) {
    const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
    if (/^[\d.]+$/.test(host) || host.includes(':')) {
      upstreams.push({ url, ...ca });
      continue;
    }
    try {
      const addresses = await resolveThroughDoh(host, s.bootstrap.value, { log, ...ca });
      log.info({ upstream: url, addresses, bootstrap: s.bootstrap.value }, 'proxy-dns: upstream address found through the bootstrap servers');
      upstreams.push({ url, bootstrap: addresses, ...ca });
    } catch (err) {
      if (!(err instanceof BootstrapError)) throw err;
      const known = KNOWN_BOOTSTRAP[host.toLowerCase()];
      if (!known) fail(`proxy-dns: ${s.upstream.from} ${url}: ${err.message}`, 1);
      log.warn({ upstream: url, addresses: known, detail: err.message }, "proxy-dns: bootstrap servers did not answer; using dohd's built-in addresses for this provider");
      upstreams.push({ url, bootstrap: [...known], ...ca });
    }
  }
  const raw: ConfigInput = {
    listen: listenAddresses(s),
    upstreams,
    log: { level: s.loglevel.value as 'info' },
    // cloudflared served metrics only where --metrics said; without it, no admin listener at all.
    admin: s.metrics.value ? { listen: s.metrics.value } : false,
  };
  try {
    return validateConfig(raw);
  } catch (err) {
    if (err instanceof ConfigError) fail(`proxy-dns: ${err.message}`, 2);
    throw err;
  }
}
