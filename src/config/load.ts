import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { checkConfig, completeDohUpstream } from './check.js';
import { parseHostPort, type HostPort } from './address.js';
import { describeIssue, yamlErrorMessage } from './messages.js';
import { configTargets, selfTargetProblems } from './self-address.js';
import { PRESETS, presetUpstreams } from './presets.js';
import { configSchema, type Config } from './schema.js';

/** A configuration problem, worded for the operator: which key, what is wrong. */
export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(
    message: string,
    readonly problems: string[] = [message],
  ) {
    super(message);
  }
}

/** Overrides from the command line; each replaces the file's value when given. */
export interface ConfigOverrides {
  listen?: string[];
  upstream?: string[];
  ca?: string;
  logLevel?: string;
  /** `ADDR:PORT` for the admin listener, or `off`. */
  admin?: string;
  /** A number, or `auto`; anything else is refused by the schema with what was typed. */
  workers?: number | string;
  /** `--preset NAME`: the named upstream set (src/config/presets.ts) instead of "upstreams". */
  preset?: string;
}

/** Validates an already-parsed object (YAML document plus overrides). */
export function validateConfig(raw: unknown, baseDir = process.cwd()): Config {
  raw = expandPreset(raw);
  const result = configSchema.safeParse(raw ?? {}, { reportInput: true });
  if (!result.success) {
    const problems = result.error.issues.map((i) => describeIssue(configSchema, i));
    throw new ConfigError(`invalid configuration: ${problems.join('; ')}`, problems);
  }
  const config = result.data;
  const problems: string[] = [];
  config.upstreams.forEach((u, i) => {
    problems.push(...completeDohUpstream(u, `upstreams[${i}]`, baseDir));
    u.alternates?.forEach((a, j) => problems.push(...completeDohUpstream(a, `upstreams[${i}].alternates[${j}]`, baseDir)));
  });
  problems.push(...checkConfig(config, baseDir));
  // The loop guard's static half: no upstream may be one of dohd's own listeners.
  const listeners = config.listen.map((l) => parseHostPort(l)).filter((l): l is HostPort => typeof l !== 'string');
  problems.push(...selfTargetProblems(listeners, configTargets(config)));
  if (problems.length) throw new ConfigError(`invalid configuration: ${problems.join('; ')}`, problems);
  return config;
}

/** Reads the YAML file (if any), applies CLI overrides, validates, fills defaults. */
export function loadConfig(file: string | undefined, overrides: ConfigOverrides = {}): Config {
  let raw: Record<string, unknown> = {};
  let baseDir = process.cwd();
  if (file !== undefined) {
    // An empty value (`--config ""`, `--config` with nothing after it, an unset variable in a unit file)
    // would otherwise mean "no file": dohd would run on the public defaults without a word.
    if (file.trim() === '') throw new ConfigError('--config: no file named; give --config FILE, or leave --config out to run on the built-in defaults');
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError(`cannot read config file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    let doc: unknown;
    try {
      doc = parseYaml(text, { prettyErrors: true, uniqueKeys: true });
    } catch (err) {
      if (err instanceof YAMLParseError) {
        const pos = err.linePos?.[0];
        throw new ConfigError(yamlErrorMessage(file, text, err.message, pos?.line, pos?.col));
      }
      throw new ConfigError(`${file}: not valid YAML: ${(err as Error).message}`);
    }
    if (doc != null && (typeof doc !== 'object' || Array.isArray(doc))) {
      throw new ConfigError(`${file}: the top level must be a mapping of option names to values`);
    }
    raw = (doc as Record<string, unknown>) ?? {};
    baseDir = dirname(resolve(file));
  }
  raw = applyOverrides(raw, overrides);
  try {
    return validateConfig(raw, baseDir);
  } catch (err) {
    if (err instanceof ConfigError && file) throw new ConfigError(`${file}: ${err.message}`, err.problems);
    throw err;
  }
}

/** `upstreams: NAME` is a preset: replaced by its upstream list before validation. */
function expandPreset(raw: unknown): unknown {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return raw;
  const name = (raw as Record<string, unknown>).upstreams;
  if (typeof name !== 'string') return raw;
  const list = presetUpstreams(name);
  if (!list) {
    const known = Object.keys(PRESETS).map((p) => `"${p}"`).join(', ');
    throw new ConfigError(`upstreams: no preset "${name}" (presets: ${known}; or give a list of upstreams)`);
  }
  return { ...raw, upstreams: list };
}

function applyOverrides(raw: Record<string, unknown>, o: ConfigOverrides): Record<string, unknown> {
  const out: Record<string, unknown> = { ...raw };
  if (o.preset && o.upstream?.length) throw new ConfigError('--preset and --upstream both replace "upstreams"; give one of them');
  if (o.preset) out.upstreams = o.preset;
  if (o.listen?.length) out.listen = o.listen;
  if (o.upstream?.length) out.upstreams = o.upstream.map((url) => (o.ca ? { url, ca: resolve(o.ca) } : { url }));
  else if (o.ca) throw new ConfigError('--ca applies to --upstream URLs; give --upstream too, or set "ca" on the upstream in the config file');
  if (o.admin) out.admin = o.admin === 'off' ? false : { listen: o.admin };
  if (o.workers !== undefined) out.workers = o.workers;
  if (o.logLevel) {
    const log = (typeof out.log === 'object' && out.log) || {};
    out.log = { ...(log as object), level: o.logLevel };
  }
  return out;
}
