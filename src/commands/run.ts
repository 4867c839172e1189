/** `dohd run`: start the daemon and keep it running until SIGTERM/SIGINT. */
import type { CommandModule } from 'yargs';
import { formatHostPort } from '../config/address.js';
import type { Daemon } from '../daemon.js';
import { createLogger } from '../log.js';
import { ListenError } from '../server/bind-error.js';
import { isWorker, joinCluster, runPrimary, WorkerStartError, workerCount, workerId } from '../workers.js';
import { configFrom, fail, withConfigOptions, type ConfigArgs } from './common.js';

/** Starts the daemon; with more than one worker, this process supervises them instead (and returns null). */
export async function runDaemon(args: ConfigArgs): Promise<Daemon | null> {
  const config = configFrom(args);
  const workers = workerCount(config.workers);
  if (workers > 1 && !isWorker()) {
    const log = createLogger(config.log.level);
    try {
      await runPrimary(workers, log);
    } catch (err) {
      // A worker that exited with a code said why on stderr already.
      if (err instanceof WorkerStartError && err.code) process.exit(err.code);
      fail(`could not start ${workers} workers: ${(err as Error).message}`, 1);
    }
    return null;
  }
  const log = isWorker() ? createLogger(config.log.level).child({ worker: workerId() }) : createLogger(config.log.level);
  // Loaded here, not at the top: a primary supervising workers never needs it.
  const { Daemon } = await import('../daemon.js');
  let daemon: Daemon;
  try {
    daemon = await Daemon.start(config, log);
  } catch (err) {
    if (err instanceof ListenError) fail(err.message, 1);
    throw err;
  }
  if (isWorker()) joinCluster(daemon.cache, daemon.addresses.map(formatHostPort));
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
  builder: (y) =>
    withConfigOptions(y).option('workers', {
      alias: 'w',
      type: 'string',
      describe: 'processes answering on the same sockets, or "auto" (one per CPU); replaces "workers"',
    }) as never,
  handler: async (args) => {
    await runDaemon(args);
  },
};
