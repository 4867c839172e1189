#!/usr/bin/env node
/** The `dohd` command line: run, check-config (and the tools built on them). */
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { ConfigError, loadConfig, type ConfigOverrides } from './config/load.js';
import type { Config } from './config/schema.js';
import { Daemon } from './daemon.js';
import { createLogger } from './log.js';
import { ListenError } from './server/bind-error.js';

/** Errors an operator can act on: print one line, no stack trace. */
export function fail(message: string, code = 1): never {
  process.stderr.write(`dohd: ${message}\n`);
  process.exit(code);
}

interface CommonArgs {
  config?: string;
  listen?: string[];
  upstream?: string[];
  ca?: string;
  'log-level'?: string;
}

function withConfigOptions<T>(y: Argv<T>) {
  return y
    .option('config', { alias: 'c', type: 'string', describe: 'YAML configuration file' })
    .option('listen', { alias: 'l', type: 'string', array: true, describe: 'ADDR:PORT to listen on, UDP and TCP (repeatable; replaces "listen")' })
    .option('upstream', { alias: 'u', type: 'string', array: true, describe: 'DoH URL (repeatable; replaces "upstreams")' })
    .option('ca', { type: 'string', describe: 'extra trusted CA file (PEM) for the --upstream URLs' })
    .option('log-level', { type: 'string', choices: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], describe: 'log level' });
}

export function configFrom(args: CommonArgs): Config {
  const overrides: ConfigOverrides = {};
  if (args.listen?.length) overrides.listen = args.listen;
  if (args.upstream?.length) overrides.upstream = args.upstream;
  if (args.ca) overrides.ca = args.ca;
  if (args['log-level']) overrides.logLevel = args['log-level'];
  try {
    return loadConfig(args.config, overrides);
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message, 2);
    throw err;
  }
}

async function run(args: CommonArgs): Promise<void> {
  const config = configFrom(args);
  const log = createLogger(config.log.level);
  let daemon: Daemon;
  try {
    daemon = await Daemon.start(config, log);
  } catch (err) {
    if (err instanceof ListenError) fail(err.message, 1);
    throw err;
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'dohd stopping');
    daemon.stop().then(
      () => {
        log.info('dohd stopped');
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ err }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

export async function main(argv = hideBin(process.argv)): Promise<void> {
  await yargs(argv)
    .scriptName('dohd')
    .usage('$0 <command> [options]')
    .command(
      'run',
      'start the resolver daemon',
      (y) => withConfigOptions(y),
      (args) => run(args as CommonArgs),
    )
    .command(
      'check-config',
      'validate the configuration and exit',
      (y) => withConfigOptions(y),
      (args) => {
        const c = configFrom(args as CommonArgs);
        process.stdout.write(`configuration OK: listen ${c.listen.join(', ')}; upstreams ${c.upstreams.map((u) => u.url).join(', ')}; ${Object.keys(c.pins).length} pins\n`);
      },
    )
    .demandCommand(1, 'name a command: run, check-config')
    .strict()
    .help()
    .version()
    .fail((msg, err) => {
      if (err) throw err;
      fail(`${msg} (see dohd --help)`, 2);
    })
    .parseAsync();
}

main().catch((err: unknown) => {
  process.stderr.write(`dohd: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(70);
});
