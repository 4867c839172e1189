import { isIP } from 'node:net';

/** A socket address written as `127.0.0.1:53`, `[::1]:53`, or a bare IP (port 53). */
export interface HostPort {
  host: string;
  port: number;
  family: 4 | 6;
}

/** Parses `ADDR:PORT`; returns an error message instead of throwing, so callers can name the key. */
export function parseHostPort(text: string, defaultPort = 53): HostPort | string {
  const s = text.trim();
  let host: string;
  let portText: string | undefined;
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(s);
  if (bracketed) {
    host = bracketed[1]!;
    portText = bracketed[2];
  } else if (isIP(s) === 6) {
    host = s;
  } else {
    const idx = s.lastIndexOf(':');
    if (idx === -1) {
      host = s;
    } else {
      host = s.slice(0, idx);
      portText = s.slice(idx + 1);
    }
  }
  const family = isIP(host);
  if (family === 0) return `"${text}" is not an IP address with an optional port (like 127.0.0.1:53 or [::1]:53)`;
  let port = defaultPort;
  if (portText !== undefined) {
    if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) return `"${text}" has an invalid port`;
    port = Number(portText);
  }
  return { host, port, family: family as 4 | 6 };
}

export function formatHostPort(a: { host: string; port: number }): string {
  return isIP(a.host) === 6 ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}
