/** Options and helpers shared by the commands that read a configuration. */
import type { Argv } from 'yargs';
import { ConfigError, loadConfig, type ConfigOverrides } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { writeError } from '../log/log.js';

/** Errors an operator can act on: print one line, no stack trace. */
export function fail(message: string, code = 1): never {
  writeError(`dohd: ${message}`);
  process.exit(code);
}

export interface ConfigArgs {
  config?: string;
  listen?: string[];
  upstream?: string[];
  ca?: string;
  'log-level'?: string;
  admin?: string;
  workers?: string;
  preset?: string;
}

/** The options that choose the configuration and the upstreams (for commands that only ask upstreams). */
export function withUpstreamOptions<T>(y: Argv<T>) {
  return y
    .option('config', { alias: 'c', type: 'string', describe: 'YAML configuration file' })
    .option('upstream', { alias: 'u', type: 'string', array: true, describe: 'DoH (https://) or DoT (tls://) URL (repeatable; replaces "upstreams")' })
    .option('ca', { type: 'string', describe: 'extra trusted CA file (PEM) for the --upstream URLs' });
}

/** Every configuration option, daemon ones (listeners, admin, log level) included. */
export function withConfigOptions<T>(y: Argv<T>) {
  return withUpstreamOptions(y)
    .option('listen', { alias: 'l', type: 'string', array: true, describe: 'ADDR:PORT to listen on, UDP and TCP (repeatable; replaces "listen")' })
    .option('preset', { type: 'string', describe: 'named upstream set instead of "upstreams": default, cn (see the README)' })
    .option('admin', { type: 'string', describe: 'ADDR:PORT of the admin HTTP listener (/metrics, /healthz, /readyz), or "off"' })
    .option('log-level', { type: 'string', choices: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], describe: 'log level' });
}

/** Runs `load`; a configuration problem (ConfigError) exits with its message and code 2. */
export function orExit<T>(load: () => T): T {
  try {
    return load();
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message, 2);
    throw err;
  }
}

/** Loads the configuration or exits with the named problem (exit code 2). */
export function configFrom(args: ConfigArgs): Config {
  return orExit(() => loadConfig(args.config, overridesFrom(args))); // overridesFrom throws ConfigError too
}

/** The command-line flags that override the configuration file (applied again on reload). */
export function overridesFrom(args: ConfigArgs): ConfigOverrides {
  // A flag given with no value (`--listen` at the end, an empty variable in a unit file) is refused:
  // left to mean "not given", dohd would start on the defaults.
  for (const flag of ['listen', 'upstream'] as const) {
    const v = args[flag];
    if (v !== undefined && (v.length === 0 || v.some((x) => String(x).trim() === ''))) {
      throw new ConfigError(`--${flag}: no value given; give --${flag} ${flag === 'listen' ? 'ADDR:PORT' : 'URL'}, or leave --${flag} out`);
    }
  }
  for (const flag of ['ca', 'admin', 'log-level', 'workers'] as const) {
    if (args[flag] !== undefined && String(args[flag]).trim() === '') throw new ConfigError(`--${flag}: no value given`);
  }
  const overrides: ConfigOverrides = {};
  if (args.listen?.length) overrides.listen = args.listen;
  if (args.upstream?.length) overrides.upstream = args.upstream;
  if (args.preset) overrides.preset = args.preset;
  if (args.ca) overrides.ca = args.ca;
  if (args['log-level']) overrides.logLevel = args['log-level'];
  if (args.admin) overrides.admin = args.admin;
  // Not a number: passed on as it is, so the error shows what was typed ("abc", not NaN).
  if (args.workers !== undefined) overrides.workers = /^\s*\d+\s*$/.test(String(args.workers)) ? Number(args.workers) : String(args.workers);
  return overrides;
}
