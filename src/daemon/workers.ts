/**
 * `--workers N`: N daemon processes (node:cluster) answering on the same sockets, to use
 * every core. Node 20's dgram has no SO_REUSEPORT, so the sockets are the cluster's shared
 * handles: the primary binds each UDP and TCP address once and hands it to every worker
 * (UDP: the kernel gives each datagram to whichever worker reads first; TCP: the primary
 * accepts and deals connections out round robin).
 *
 * The primary does no DNS. It starts the first worker, then the others once the first one
 * listens (so a bind error is reported once), restarts a worker that dies (backing off
 * while they keep dying), relays cache entries between workers, and on SIGTERM/SIGINT stops
 * them all and exits 0. It owns the admin listener (the workers open none): /metrics adds up
 * every worker's registry (prom-client's AggregatorRegistry), /readyz is ready when every
 * worker is, /status merges the workers' reports; it asks them over IPC (`ask`).
 *
 * Cache: each worker has its own, shared with the others through the primary
 * (stages/cache/relay.ts).
 */
import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import type { Logger } from 'pino';
import { CacheRelay, CacheShare, isCacheMessage, type CacheMessage } from '../stages/cache/relay.js';

/** Messages between the primary and the workers (the `dohd` field tells them from others). */
export type WorkerMessage =
  | { dohd: 'ready'; listen: string[] }
  | CacheMessage
  | { dohd: 'ask'; id: number; what: Question }
  | { dohd: 'answer'; id: number; data?: unknown; error?: string };

/** What the primary asks every worker for its admin listener. */
export type Question = 'metrics' | 'readiness' | 'status';

/** A worker's answers (its Daemon's). */
export type Answers = Record<Question, () => Promise<unknown>>;

/** The running workers, as the primary sees them. */
export interface WorkerPool {
  /**
   * Asks every worker; rejects when one does not answer in `timeoutMs`, or when one is not
   * running (being restarted). `partial`: asks those that run, and rejects only when none does.
   */
  ask(what: Question, timeoutMs: number, opts?: { partial?: boolean }): Promise<unknown[]>;
  readonly count: number;
  /** The addresses the workers listen on. */
  readonly listen: string[];
  /** Stops every worker, then exits with `code`. */
  stop(code: number): void;
}

const RESTART_MIN_MS = 500;
const RESTART_MAX_MS = 30_000;
/** A worker up this long resets the restart backoff. */
const STABLE_MS = 60_000;
const STOP_GRACE_MS = 10_000;

/** A worker that exited before it listened (it said why on stderr when it could). */
export class WorkerStartError extends Error {
  constructor(
    readonly code: number | null,
    readonly signal: string | null,
  ) {
    super(`a worker exited before listening (${signal ?? `code ${code}`})`);
  }
}

export function workerCount(setting: number | 'auto'): number {
  return setting === 'auto' ? Math.max(1, availableParallelism()) : setting;
}

export function isWorker(): boolean {
  return cluster.isWorker;
}

/** This worker's number (1, 2...), or undefined in the primary or a single process. */
export function workerId(): number | undefined {
  return cluster.worker?.id;
}

/**
 * Runs the primary: forks `count` workers running the same command line, and returns once
 * they all listen (rejects with the reason when the first one cannot start).
 */
export async function runPrimary(count: number, log: Logger, opts: { execArgv?: string[] } = {}): Promise<WorkerPool> {
  cluster.setupPrimary({ execArgv: [...process.execArgv, ...(opts.execArgv ?? [])] });
  const relay = new CacheRelay();
  const listening = new Set<Worker>();
  const questions = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  const askOne = (w: Worker, what: Question, timeoutMs: number) =>
    new Promise<unknown>((resolve, reject) => {
      const id = nextId++;
      const timer = setTimeout(() => {
        questions.delete(id);
        reject(new Error(`worker ${w.id} did not answer within ${timeoutMs} ms`));
      }, timeoutMs);
      questions.set(id, {
        resolve: (v) => (clearTimeout(timer), resolve(v)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
      w.send({ dohd: 'ask', id, what } satisfies WorkerMessage);
    });
  let stopping = false;
  let backoff = RESTART_MIN_MS;
  let listen: string[] = [];

  const fork = (): Promise<Worker> =>
    new Promise((resolve, reject) => {
      const w = cluster.fork();
      const started = Date.now();
      let ready = false;
      w.on('message', (msg: WorkerMessage) => {
        if (msg?.dohd === 'ready' && !ready) {
          ready = true;
          listen = msg.listen;
          listening.add(w);
          resolve(w);
        } else if (isCacheMessage(msg)) relay.forward(w, msg, Object.values(cluster.workers ?? {}));
        else if (msg?.dohd === 'answer') {
          const q = questions.get(msg.id);
          questions.delete(msg.id);
          if (msg.error !== undefined) q?.reject(new Error(msg.error));
          else q?.resolve(msg.data);
        }
      });
      w.on('exit', (code, signal) => {
        relay.forget(w);
        listening.delete(w);
        if (!ready) {
          reject(new WorkerStartError(code, signal));
          return;
        }
        if (stopping) return;
        // A worker died: start another one, waiting longer while they keep dying.
        if (Date.now() - started > STABLE_MS) backoff = RESTART_MIN_MS;
        log.error({ worker: w.id, pid: w.process.pid, code, signal, restartInMs: backoff }, 'dohd worker died; restarting it');
        const delay = backoff;
        backoff = Math.min(backoff * 2, RESTART_MAX_MS);
        setTimeout(() => {
          if (!stopping) fork().catch((err: Error) => log.error({ err: err.message }, 'dohd worker could not restart'));
        }, delay).unref();
      });
    });

  const stop = (signal: string, exitCode = 0) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'dohd stopping');
    const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => !!w);
    if (workers.length === 0) process.exit(exitCode);
    let left = workers.length;
    const force = setTimeout(() => {
      log.error('dohd workers did not stop in time; killing them');
      for (const w of workers) w.process.kill('SIGKILL');
      process.exit(1);
    }, STOP_GRACE_MS);
    for (const w of workers) {
      w.once('exit', () => {
        if (--left > 0) return;
        clearTimeout(force);
        log.info('dohd stopped');
        process.exit(exitCode);
      });
      w.process.kill('SIGTERM');
    }
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // Reload: every worker re-reads the configuration file itself.
  process.on('SIGHUP', () => {
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGHUP');
  });

  try {
    await fork();
    await Promise.all(Array.from({ length: count - 1 }, () => fork()));
  } catch (err) {
    stopping = true;
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGTERM');
    throw err;
  }
  return {
    count,
    listen,
    stop: (code) => stop('start-up failed', code),
    ask: (what, timeoutMs, opts = {}) => {
      const ws = [...listening].filter((w) => w.isConnected());
      if (ws.length < count && !(opts.partial && ws.length > 0)) return Promise.reject(new Error(`${count - ws.length} of ${count} workers not running (restarting)`));
      return Promise.all(ws.map((w) => askOne(w, what, timeoutMs)));
    },
  };
}

/**
 * In a worker: answers the primary's questions, shares the cache with the other workers
 * (`share` gets the messages; the daemon attaches each cache it builds), and tells the
 * primary it listens.
 */
export function joinCluster(listen: string[], answers: Answers, share: (send: (msg: CacheMessage) => void) => CacheShare): void {
  const send = process.send?.bind(process);
  if (!send) return;
  const cache = share((msg) => send(msg satisfies WorkerMessage));
  process.on('message', (msg: WorkerMessage) => {
    if (msg?.dohd === 'cache') return cache.receive(msg);
    if (msg?.dohd !== 'ask' || typeof msg.id !== 'number' || !Object.hasOwn(answers, msg.what)) return;
    answers[msg.what]().then(
      (data) => send({ dohd: 'answer', id: msg.id, data } satisfies WorkerMessage),
      (err: unknown) => send({ dohd: 'answer', id: msg.id, error: String((err as Error)?.message ?? err) } satisfies WorkerMessage),
    );
  });
  send({ dohd: 'ready', listen } satisfies WorkerMessage);
}
