/**
 * Check: the Go settings that decide which hosts `go mod download` talks to: GOPROXY, GOSUMDB,
 * GOPRIVATE, GONOPROXY, GONOSUMDB, from the environment and, when Go is installed, `go env`
 * (which also sees what `go env -w` wrote).
 */
import { execFile } from 'node:child_process';
import type { DoctorContext, GoEnv, Section } from './types.js';

export const GO_KEYS = ['GOPROXY', 'GOSUMDB', 'GOPRIVATE', 'GONOPROXY', 'GONOSUMDB', 'GOFLAGS'] as const;
export const GO_DEFAULT_PROXY = 'https://proxy.golang.org,direct';
const GO_DEFAULT_SUMDB = 'sum.golang.org';

/** The proxy URLs of a GOPROXY list ("," and "|" separated; "direct" and "off" are not hosts). */
export function proxyHosts(goproxy: string): string[] {
  const hosts: string[] = [];
  for (const part of goproxy.split(/[,|]/)) {
    const p = part.trim();
    if (!p || p === 'direct' || p === 'off') continue;
    try {
      const u = new URL(p.includes('://') ? p : `https://${p}`);
      if (u.hostname && !hosts.includes(u.hostname.toLowerCase())) hosts.push(u.hostname.toLowerCase());
    } catch {
      /* not a URL: go reports it itself */
    }
  }
  return hosts;
}

/** The host of a GOSUMDB setting ("sum.golang.org", "name+key https://host/path", "off"). */
export function sumdbHost(gosumdb: string): string | null {
  const v = gosumdb.trim();
  if (!v || v === 'off') return null;
  const fields = v.split(/\s+/);
  const target = fields.length > 1 ? fields[1]! : fields[0]!.split('+')[0]!;
  try {
    return new URL(target.includes('://') ? target : `https://${target}`).hostname.toLowerCase();
  } catch {
    return null;
  }
}

function goEnv(bin: string, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<Record<string, string>> {
  return new Promise((resolve, reject) => {
    execFile(bin, ['env', '-json', ...GO_KEYS], { env, timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err) return reject(new Error((err as NodeJS.ErrnoException).code === 'ENOENT' ? `${bin} not found` : stderr.trim() || err.message));
      try {
        resolve(JSON.parse(stdout) as Record<string, string>);
      } catch {
        reject(new Error(`${bin} env -json printed something that is not JSON`));
      }
    });
  });
}

export async function checkGoEnv(ctx: DoctorContext): Promise<Section> {
  const s: Section = { check: 'go', title: 'Go environment', lines: [], findings: [] };
  const env = ctx.opts.env;
  const fromEnv: Record<string, string> = {};
  for (const k of GO_KEYS) if (env[k] !== undefined && env[k] !== '') fromEnv[k] = env[k]!;
  let values: Record<string, string> = { ...fromEnv };
  let goFound = false;
  let goError: string | undefined;
  if (ctx.opts.goBin) {
    try {
      values = { ...values, ...(await goEnv(ctx.opts.goBin, env, Math.max(ctx.opts.timeoutMs, 5000))) };
      goFound = true;
    } catch (err) {
      goError = (err as Error).message;
    }
  }
  // `go env` prints the defaults for unset keys; without Go, fill them in the same way.
  const proxyUnset = !fromEnv.GOPROXY && (!values.GOPROXY || values.GOPROXY === GO_DEFAULT_PROXY);
  values.GOPROXY ||= GO_DEFAULT_PROXY;
  values.GOSUMDB ||= GO_DEFAULT_SUMDB;
  const go: GoEnv = { values, fromEnv, goFound, goError, proxyHosts: proxyHosts(values.GOPROXY), sumdbHost: sumdbHost(values.GOSUMDB), proxyUnset };
  if (goError) go.goError = goError;
  ctx.go = go;

  s.lines.push(goFound ? `from "${ctx.opts.goBin} env" (environment and go env -w)` : `from the environment${goError ? ` (go env: ${goError})` : ctx.opts.goBin ? '' : ' (go env not asked)'}`);
  for (const k of GO_KEYS) {
    if (k === 'GOFLAGS' && !values[k]) continue;
    s.lines.push(`${k}=${values[k] ?? ''}${k === 'GOPROXY' && proxyUnset ? '   (not set: Go\'s default)' : ''}`);
  }
  const fixProxy = 'go env -w GOPROXY=https://goproxy.cn,direct   # or another proxy you can reach; Go\'s default is https://proxy.golang.org,direct';
  if (proxyUnset) {
    s.findings.push({
      check: s.check,
      level: 'warn',
      message: `GOPROXY is not set: Go fetches modules through ${GO_DEFAULT_PROXY.split(',')[0]}, which is blocked on some networks (mainland China among them)`,
      fix: [fixProxy],
    });
  }
  const list = values.GOPROXY.split(/[,|]/).map((p) => p.trim());
  if (list.includes('off') && list[0] === 'off') {
    s.findings.push({ check: s.check, level: 'fault', message: 'GOPROXY=off: Go may not download any module', fix: [fixProxy] });
  } else if (go.proxyHosts.length === 0) {
    s.findings.push({ check: s.check, level: 'warn', message: 'GOPROXY uses no proxy ("direct"): every module is fetched from its origin (github.com, golang.org, ...)', fix: [fixProxy] });
  }
  if (values.GOSUMDB === 'off') {
    s.findings.push({ check: s.check, level: 'warn', message: 'GOSUMDB=off: downloaded modules are not checked against the checksum database', fix: ['go env -u GOSUMDB'] });
  }
  if (values.GOFLAGS && /-insecure/.test(values.GOFLAGS)) s.findings.push({ check: s.check, level: 'warn', message: `GOFLAGS=${values.GOFLAGS} turns off TLS checks` });
  return s;
}
