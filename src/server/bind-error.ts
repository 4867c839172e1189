/** Turns a failed bind into one line an operator can act on. */
import { formatHostPort, type HostPort } from '../config/address.js';

export class ListenError extends Error {
  override name = 'ListenError';
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
  }
}

export function explainBindError(err: NodeJS.ErrnoException, addr: HostPort, proto: 'udp' | 'tcp'): ListenError {
  const where = `${formatHostPort(addr)}/${proto}`;
  switch (err.code) {
    case 'EACCES':
    case 'EPERM':
      return new ListenError(
        `cannot listen on ${where}: permission denied for a port below 1024. Run dohd as root, or grant the capability once with ` +
          `"sudo setcap cap_net_bind_service=+ep $(readlink -f $(command -v node))", or use an unprivileged port: --listen ${addr.family === 6 ? `[${addr.host}]` : addr.host}:5353`,
        'EACCES',
      );
    case 'EADDRINUSE':
      return new ListenError(
        `cannot listen on ${where}: the address is already in use by another program` +
          (addr.port === 53 ? ' (often systemd-resolved or dnsmasq: see "ss -lunp sport = :53")' : '') +
          `. Stop it, or choose another address with --listen`,
        'EADDRINUSE',
      );
    case 'EADDRNOTAVAIL':
      return new ListenError(`cannot listen on ${where}: no network interface has this address`, 'EADDRNOTAVAIL');
    case 'EAFNOSUPPORT':
      return new ListenError(`cannot listen on ${where}: IPv${addr.family} is not available on this machine`, 'EAFNOSUPPORT');
    default:
      return new ListenError(`cannot listen on ${where}: ${err.message}`, err.code ?? 'EUNKNOWN');
  }
}
