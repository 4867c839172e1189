/**
 * The admin HTTP listener: `/metrics` (Prometheus text format), `/healthz` (the process
 * answers), `/readyz` (it serves DNS and can answer: an upstream has answered, or pins are
 * loaded), `/status` (JSON, what `dohd status` prints; see docs/admin-api.md). GET and HEAD
 * only; small, bounded, and off the resolve path. With `--workers N` the primary owns it and
 * asks the workers (workers.ts).
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from 'pino';
import { formatHostPort, parseHostPort, type HostPort } from '../config/address.js';
import { isLoopback } from '../dns/explain.js';
import { explainBindError, holder, ListenError } from './bind-error.js';
import { portOwner, ssCommand } from './port-owner.js';

export interface Readiness {
  ready: boolean;
  /** One line for people: why it is (not) ready. */
  detail: string;
}

export interface AdminHandlers {
  metrics(): Promise<{ body: string; contentType: string }>;
  readiness(): Promise<Readiness>;
  /** The JSON of `/status` (server/status.ts). */
  status?(): Promise<unknown>;
}

export class AdminServer {
  private server: http.Server | null = null;
  private readonly sockets = new Set<Socket>();

  constructor(
    private readonly handlers: AdminHandlers,
    readonly address: HostPort,
  ) {}

  async listen(): Promise<HostPort> {
    const server = http.createServer({ requestTimeout: 10_000, headersTimeout: 5_000, keepAliveTimeout: 5_000 }, (req, res) => {
      this.route(req, res).catch(() => {
        if (!res.headersSent) send(res, 500, 'internal error\n');
        else res.destroy();
      });
    });
    server.maxConnections = 64;
    server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => reject(adminBindError(err, this.address));
      server.once('error', onError);
      server.listen({ host: this.address.host, port: this.address.port, ipv6Only: this.address.family === 6, exclusive: true }, () => {
        server.off('error', onError);
        resolve();
      });
    });
    server.on('error', () => {});
    server.on('clientError', (_err, socket) => socket.destroy());
    this.server = server;
    const a = server.address() as AddressInfo;
    return { host: a.address, port: a.port, family: this.address.family };
  }

  get bound(): string | null {
    const a = this.server?.address() as AddressInfo | null | undefined;
    return a ? formatHostPort({ host: a.address, port: a.port }) : null;
  }

  private async route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      return send(res, 405, 'method not allowed\n');
    }
    const path = (req.url ?? '/').split('?')[0];
    switch (path) {
      case '/metrics': {
        const m = await this.handlers.metrics();
        return send(res, 200, m.body, m.contentType);
      }
      case '/healthz':
        return send(res, 200, 'ok\n');
      case '/readyz': {
        const r = await this.handlers.readiness();
        return send(res, r.ready ? 200 : 503, `${r.ready ? 'ready' : 'not ready'}: ${r.detail}\n`);
      }
      case '/status':
        if (this.handlers.status) return send(res, 200, `${JSON.stringify(await this.handlers.status(), null, 2)}\n`, 'application/json');
        return send(res, 404, 'not found: try /metrics, /healthz or /readyz\n');
      default:
        return send(res, 404, 'not found: try /metrics, /healthz, /readyz or /status\n');
    }
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (!s) return;
    const closed = new Promise<void>((resolve) => s.close(() => resolve()));
    for (const sock of this.sockets) sock.destroy();
    await closed;
  }
}

/** A bind failure of the admin listener, pointing at the admin settings (not --listen). */
function adminBindError(err: NodeJS.ErrnoException, addr: HostPort): ListenError {
  const where = `${formatHostPort(addr)}/tcp`;
  if (err.code === 'EADDRINUSE') {
    return new ListenError(
      `admin listener: cannot listen on ${where}: the address is already in use ${holder(portOwner('tcp', addr.host, addr.port))}. ` +
        `Choose another with admin.listen (or --admin ADDR:PORT), or turn it off with admin: false (--admin off) (see: ${ssCommand('tcp', addr.port)})`,
      'EADDRINUSE',
    );
  }
  const e = explainBindError(err, addr, 'tcp');
  return new ListenError(`admin listener: ${e.message}`, e.code);
}

function send(res: http.ServerResponse, status: number, body: string, contentType = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

/**
 * Opens the admin listener for `admin` (the config's value). Configured explicitly, a failure
 * to listen is thrown (start-up stops); left at its default, a taken port is logged and dohd
 * goes on without it (null).
 */
export async function openAdmin(
  cfg: false | { listen: string } | undefined,
  handlers: AdminHandlers,
  log: Logger,
  defaultListen: string,
): Promise<AdminServer | null> {
  if (cfg === false) return null;
  const text = cfg?.listen ?? defaultListen;
  const addr = parseHostPort(text, 9153);
  if (typeof addr === 'string') throw new ListenError(`admin.listen: ${addr}`, 'EINVAL');
  const server = new AdminServer(handlers, addr);
  try {
    await server.listen();
  } catch (err) {
    if (cfg) throw err;
    log.warn(
      { admin: text, error: (err as Error).message },
      'admin listener (metrics, health) not started: its default address is taken; set admin.listen, or admin: false',
    );
    return null;
  }
  if (!isLoopback(addr.host)) log.warn({ admin: server.bound }, 'admin listener (metrics, health) is reachable from other machines');
  return server;
}
