/**
 * `dohd run`: start the daemon and keep it running.
 * SIGHUP reloads the configuration file; SIGTERM/SIGINT drain (stop accepting, answer what is
 * in flight, run shutdown hooks such as saving the cache) and exit 0. A second signal exits at once.
 */
import type { CommandModule } from 'yargs';
import { formatHostPort } from '../config/address.js';
import { ConfigError, loadConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { Daemon } from '../daemon/daemon.js';
import { createLogger } from '../log/log.js';
import { ListenError } from '../server/bind-error.js';
import { ActivationError, takeListenFds, type InheritedSocket } from '../server/socket-activation.js';
import { notifyReady } from '../daemon/systemd-notify.js';
import { isWorker, joinCluster, runPrimary, WorkerStartError, workerCount, workerId, type WorkerPool } from '../daemon/workers.js';
import { AggregatorRegistry, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import { DEFAULT_ADMIN_LISTEN } from '../config/defaults.js';
import { openAdmin, type AdminHandlers, type Readiness } from '../server/admin.js';
import { mergeStatus, type StatusReport } from '../server/status.js';
import { configFrom, fail, overridesFrom, withConfigOptions, type ConfigArgs } from './common.js';

const startedAt = Date.now();

/**
 * The primary's admin listener: every worker asked, the answers added up. While a worker is
 * being restarted, /metrics and /status cover the others (a scrape must not fail for it; the
 * counters of the worker that died are gone, which Prometheus reads as a counter reset) and
 * /readyz says not ready.
 */
function primaryAdmin(pool: WorkerPool, config: Config): AdminHandlers {
  const askMs = config.timeoutMs + 2000;
  return {
    metrics: async () => {
      const lists = (await pool.ask('metrics', askMs, { partial: true })) as MetricObjectWithValues<MetricValue<string>>[][];
      const registry = AggregatorRegistry.aggregate(lists);
      return { body: await registry.metrics(), contentType: registry.contentType };
    },
    readiness: async () => {
      let answers: Readiness[];
      try {
        answers = (await pool.ask('readiness', askMs)) as Readiness[];
      } catch (err) {
        return { ready: false, detail: (err as Error).message };
      }
      const not = answers.filter((r) => !r.ready);
      if (not.length) return { ready: false, detail: `${not.length} of ${answers.length} workers not ready: ${not[0]!.detail}` };
      return { ready: true, detail: `${answers.length} workers ready; ${answers[0]!.detail}` };
    },
    status: async () => mergeStatus((await pool.ask('status', askMs, { partial: true })) as StatusReport[], { pid: process.pid, uptimeS: Math.round((Date.now() - startedAt) / 1000) }),
  };
}

/** Where a reload reads the configuration from; absent when there is no file to re-read. */
export interface ReloadSource {
  file: string;
  load(): Config;
}

/** Starts the daemon; with more than one worker, this process supervises them instead (and returns null). */
export async function runDaemon(args: ConfigArgs): Promise<Daemon | null> {
  const config = configFrom(args);
  const workers = workerCount(config.workers);
  if (workers > 1 && !isWorker()) {
    const log = createLogger(config.log.level, undefined, config.log.format);
    let pool: WorkerPool;
    try {
      pool = await runPrimary(workers, log);
    } catch (err) {
      // A worker that exited with a code said why on stderr already.
      if (err instanceof WorkerStartError && err.code) process.exit(err.code);
      fail(`could not start ${workers} workers: ${(err as Error).message}`, 1);
    }
    let admin;
    try {
      admin = await openAdmin(config.admin, primaryAdmin(pool, config), log, DEFAULT_ADMIN_LISTEN);
    } catch (err) {
      process.stderr.write(`dohd: ${(err as Error).message}\n`);
      pool.stop(1);
      return new Promise(() => {}); // exits once the workers have stopped
    }
    log.info({ workers, listen: pool.listen, admin: admin?.bound ?? null }, 'dohd workers ready');
    void notifyReady(`answering DNS with ${workers} workers`, log);
    return null;
  }
  const file = args.config;
  return serve(config, file ? { file, load: () => loadConfig(file, overridesFrom(args)) } : undefined);
}

/**
 * Starts the daemon from a validated config (on systemd's sockets when socket-activated)
 * and owns the signals.
 */
export async function serve(config: Config, source?: ReloadSource): Promise<Daemon> {
  let inherited: InheritedSocket[] | null = null;
  try {
    inherited = takeListenFds();
  } catch (err) {
    if (err instanceof ActivationError) fail(err.message, 1);
    throw err;
  }
  const log = isWorker() ? createLogger(config.log.level, undefined, config.log.format).child({ worker: workerId() }) : createLogger(config.log.level, undefined, config.log.format);
  // Signals are taken before the listeners open: one that arrives during start-up waits for it.
  let daemon: Daemon | undefined;
  let early: (() => void) | null = null;
  const on = (signal: NodeJS.Signals, act: () => void) =>
    process.on(signal, () => {
      if (daemon) act();
      else early ??= act;
    });
  on('SIGTERM', () => stop('SIGTERM'));
  on('SIGINT', () => stop('SIGINT'));
  on('SIGHUP', () => reload());
  try {
    daemon = await Daemon.start(config, log, { ...(inherited ? { inherited } : {}), noAdmin: isWorker() });
  } catch (err) {
    if (err instanceof ListenError || err instanceof ActivationError) fail(err.message, 1);
    if (err instanceof ConfigError) fail(err.message, 2);
    throw err;
  }
  const d: Daemon = daemon;
  // A worker tells the primary it listens, and shares its cache entries; the primary tells systemd.
  if (isWorker()) {
    joinCluster(
      d.addresses.map(formatHostPort),
      { metrics: () => d.metricsJson(), readiness: () => d.readiness(), status: () => d.status() },
      (send) => d.shareCache(send),
    );
  }
  else void notifyReady(`answering DNS on ${d.addresses.map((a) => formatHostPort(a)).join(', ')}`, log);

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting without waiting for queries in flight');
      process.exit(1);
    }
    stopping = true;
    log.info({ signal, inflight: d.handler.inflight }, 'dohd stopping: no new queries, answering those in flight');
    d.drain().then(
      ({ unfinished }) => {
        log.info(unfinished ? { unfinished } : {}, 'dohd stopped');
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ err }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  const reload = () => {
    if (stopping) return;
    if (!source) {
      log.warn('SIGHUP: dohd was started without --config, there is no configuration file to reload');
      return;
    }
    let next: Config;
    try {
      next = source.load();
    } catch (err) {
      d.metrics.reload(false);
      const error = err instanceof ConfigError ? err.message : String((err as Error)?.message ?? err);
      log.error({ file: source.file, error }, 'configuration reload failed: the running configuration stays');
      return;
    }
    const r = d.reload(next);
    if (!r.ok) {
      log.error({ file: source.file, error: r.error }, 'configuration reload failed: the running configuration stays');
      return;
    }
    log.info({ file: source.file, applied: r.live }, r.live.length ? 'configuration reloaded' : 'configuration reloaded: no live setting changed');
    if (r.restart.length) {
      log.warn(
        { file: source.file, keys: r.restart },
        `configuration change needs a restart to take effect: ${r.restart.join(', ')} (the running values stay until then)`,
      );
    }
  };
  (early as (() => void) | null)?.();
  return d;
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
