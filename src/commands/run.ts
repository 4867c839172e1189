/** `dohd run`: start the daemon and keep it running until SIGTERM/SIGINT. */
import type { CommandModule } from 'yargs';
import { ConfigError } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { Daemon } from '../daemon.js';
import { createLogger } from '../log.js';
import { ListenError } from '../server/bind-error.js';
import { ActivationError, takeListenFds, type InheritedSocket } from '../server/socket-activation.js';
import { configFrom, fail, withConfigOptions, type ConfigArgs } from './common.js';

export async function runDaemon(args: ConfigArgs): Promise<Daemon> {
  return serve(configFrom(args));
}

/** Starts the daemon from a validated config (on systemd's sockets when socket-activated) and owns the signals. */
export async function serve(config: Config): Promise<Daemon> {
  let inherited: InheritedSocket[] | null = null;
  try {
    inherited = takeListenFds();
  } catch (err) {
    if (err instanceof ActivationError) fail(err.message, 1);
    throw err;
  }
  const log = createLogger(config.log.level);
  let daemon: Daemon;
  try {
    daemon = await Daemon.start(config, log, inherited ? { inherited } : {});
  } catch (err) {
    if (err instanceof ListenError || err instanceof ActivationError) fail(err.message, 1);
    if (err instanceof ConfigError) fail(err.message, 2);
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
  return daemon;
}

export const runCommand: CommandModule<object, ConfigArgs> = {
  command: 'run',
  describe: 'start the resolver daemon',
  builder: (y) => withConfigOptions(y) as never,
  handler: async (args) => {
    await runDaemon(args);
  },
};
