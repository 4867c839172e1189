/**
 * Readiness for systemd (`Type=notify`): once the listeners are up, tell the service manager
 * through `$NOTIFY_SOCKET`. That socket is a unix *datagram* socket, which Node cannot open,
 * so dohd runs systemd's own `systemd-notify --ready` (with `NotifyAccess=all` in the unit).
 *
 * The race known from that tool (the helper exits before PID 1 reads its message, PID 1 can no
 * longer tell which unit sent it and drops it) is closed since systemd 246: systemd-notify
 * then waits by default until PID 1 has processed the message (sd_notify_barrier); only
 * `--no-block` brings the race back, and dohd never passes it. Without `$NOTIFY_SOCKET`
 * (not under systemd, or Type=simple) nothing happens.
 */
import { execFile } from 'node:child_process';
import type { Logger } from 'pino';

export interface NotifyResult {
  sent: boolean;
  error?: string;
}

/** Sends READY=1 (and a STATUS= line) when dohd runs under systemd with Type=notify. */
export function notifyReady(status: string, log?: Logger, env: NodeJS.ProcessEnv = process.env): Promise<NotifyResult> {
  return notify(['--ready', `--status=${status}`], log, env);
}

/** Updates the one-line status shown by `systemctl status dohd`. */
export function notifyStatus(status: string, log?: Logger, env: NodeJS.ProcessEnv = process.env): Promise<NotifyResult> {
  return notify([`--status=${status}`], log, env);
}

function notify(args: string[], log: Logger | undefined, env: NodeJS.ProcessEnv): Promise<NotifyResult> {
  if (!env.NOTIFY_SOCKET) return Promise.resolve({ sent: false });
  const bin = 'systemd-notify';
  return new Promise((resolve) => {
    execFile(bin, args, { env, timeout: 10_000 }, (err, _stdout, stderr) => {
      if (err) {
        const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? `${bin} not found` : stderr.trim() || err.message;
        log?.error({ notifySocket: env.NOTIFY_SOCKET, error: why }, 'could not notify systemd (Type=notify needs systemd-notify)');
        resolve({ sent: false, error: why });
      } else {
        log?.debug({ args }, 'notified systemd');
        resolve({ sent: true });
      }
    });
  });
}
