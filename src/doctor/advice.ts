/**
 * The doctor's last step: its advice must agree with its findings. Checks write their fixes
 * as they go (the Go check suggests a proxy before anything was probed); once every probe is
 * in, a GOPROXY suggestion naming a proxy that could not be reached from here is replaced by
 * a proxy that could, or, when none could, by what is in the way. Equal suggestions end up
 * worded the same, so the verdict lists each once.
 */
import { proxyHosts } from './go-env.js';
import type { DoctorContext, Section } from './types.js';

/** GOPROXY URLs of the well-known module proxies (GO_PROXY_NAMES less the checksum database). */
export const PROXY_URLS: Record<string, string> = {
  'goproxy.cn': 'https://goproxy.cn',
  'goproxy.io': 'https://goproxy.io',
  'proxy.golang.org': 'https://proxy.golang.org',
  'mirrors.aliyun.com': 'https://mirrors.aliyun.com/goproxy/',
};

/** The GOPROXY URL for a name that is a module proxy, or null. */
export function proxyUrl(ctx: DoctorContext, name: string): string | null {
  return PROXY_URLS[name] ?? (ctx.go?.proxyHosts.includes(name) ? `https://${name}` : null);
}

/** true: reached; false: tried at every address found and failed; null: not tried. */
export function reached(ctx: DoctorContext, name: string): boolean | null {
  const probes = ctx.probes.filter((p) => p.name === name);
  if (probes.length === 0) return null;
  return probes.some((p) => p.ok);
}

/** A module proxy that was reached from here, other than `except`; GOPROXY's own first. */
export function reachableProxy(ctx: DoctorContext, except: readonly string[] = []): string | undefined {
  const candidates = [...(ctx.go?.proxyHosts ?? []), ...Object.keys(PROXY_URLS)];
  return candidates.find((n) => !except.includes(n) && proxyUrl(ctx, n) && reached(ctx, n) === true);
}

export const NO_PROXY_REACHED =
  '# no module proxy could be reached from here: a firewall or a web proxy is in the way; with a web proxy: export HTTPS_PROXY=http://PROXY:PORT (go honours it)';

/** The one wording of "switch to this proxy". */
export function useProxy(ctx: DoctorContext, name: string): string {
  return `go env -w GOPROXY=${proxyUrl(ctx, name)},direct   # ${name} is reachable from here`;
}

const GOPROXY_FIX = /^go env -w GOPROXY=(\S+)/;

export function reconcileAdvice(ctx: DoctorContext, sections: Section[]): void {
  for (const s of sections) {
    for (const f of s.findings) {
      if (!f.fix) continue;
      const fix: string[] = [];
      for (const line of f.fix) {
        const m = GOPROXY_FIX.exec(line);
        if (!m) {
          fix.push(line);
          continue;
        }
        const hosts = proxyHosts(m[1]!);
        const failed = hosts.filter((h) => reached(ctx, h) === false);
        if (failed.length === 0) {
          // Tried and reached: the common wording; never tried: left as written.
          fix.push(hosts.length === 1 && reached(ctx, hosts[0]!) === true ? useProxy(ctx, hosts[0]!) : line);
          continue;
        }
        const other = reachableProxy(ctx, failed);
        fix.push(other ? useProxy(ctx, other) : NO_PROXY_REACHED);
      }
      f.fix = [...new Set(fix)];
    }
  }
}
