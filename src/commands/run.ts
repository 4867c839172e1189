/** `dohd run`: start the daemon and keep it running until SIGTERM/SIGINT. */
import type { CommandModule } from 'yargs';
import { Daemon } from '../daemon.js';
import { createLogger } from '../log.js';
import { ListenError } from '../server/bind-error.js';
import { configFrom, fail, withConfigOptions, type ConfigArgs } from './common.js';

export async function runDaemon(args: ConfigArgs): Promise<Daemon> {
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
