/** Turns a failed bind into one line an operator can act on. */
import { formatHostPort, type HostPort } from '../config/address.js';
import { portOwner, ssCommand, type PortOwner } from './port-owner.js';

export class ListenError extends Error {
  override name = 'ListenError';
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

/** "by dnsmasq (pid 812)" when /proc names the holder, else "by another program". */
export function holder(owner: PortOwner | null): string {
  return owner ? `by ${owner.command} (pid ${owner.pid})` : 'by another program';
}

export function explainBindError(
  err: NodeJS.ErrnoException,
  addr: HostPort,
  proto: 'udp' | 'tcp',
  findOwner: (proto: 'udp' | 'tcp', host: string, port: number) => PortOwner | null = portOwner,
): ListenError {
  const where = `${formatHostPort(addr)}/${proto}`;
  switch (err.code) {
    case 'EACCES':
    case 'EPERM':
      return new ListenError(
        `cannot listen on ${where}: permission denied for a port below 1024. Run dohd as root, or grant the capability once with ` +
          `"sudo setcap cap_net_bind_service=+ep $(readlink -f $(command -v node))", or use an unprivileged port: --listen ${addr.family === 6 ? `[${addr.host}]` : addr.host}:5353`,
        'EACCES',
      );
    case 'EADDRINUSE': {
      const owner = findOwner(proto, addr.host, addr.port);
      return new ListenError(
        `cannot listen on ${where}: the address is already in use ${holder(owner)}` +
          (!owner && addr.port === 53 ? ' (often systemd-resolved or dnsmasq)' : '') +
          `. Stop it, or choose another address with --listen (see: ${ssCommand(proto, addr.port)})`,
        'EADDRINUSE',
      );
    }
    case 'EADDRNOTAVAIL':
      return new ListenError(`cannot listen on ${where}: no network interface has this address`, 'EADDRNOTAVAIL');
    case 'EAFNOSUPPORT':
      return new ListenError(`cannot listen on ${where}: IPv${addr.family} is not available on this machine`, 'EAFNOSUPPORT');
    default:
      return new ListenError(`cannot listen on ${where}: ${err.message}`, err.code ?? 'EUNKNOWN');
  }
}
