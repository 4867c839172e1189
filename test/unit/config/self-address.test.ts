/**
 * The self-loop check when the machine's interfaces cannot be listed: under systemd's
 * RestrictAddressFamilies= without AF_NETLINK, os.networkInterfaces() throws
 * (uv_interface_addresses, EAFNOSUPPORT). Start-up must go on with what it can check.
 * The real sandbox is exercised in test/e2e/systemd-nspawn.test.ts.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import type { HostPort } from '../../../src/config/address.js';
import { machineHasIpv6 } from '../../../src/config/cloudflared.js';
import { localAddresses, NO_INTERFACES_WARNING, selfTargetProblems, type QueryTarget } from '../../../src/config/self-address.js';

/** What node throws when libuv cannot open its netlink socket. */
function refused(): never {
  const err = new Error('A system error occurred: uv_interface_addresses returned Unknown system error 97') as Error & { code: string; info: object };
  err.code = 'ERR_SYSTEM_ERROR';
  err.info = { errno: -97, code: 'Unknown system error 97', message: 'Unknown system error 97', syscall: 'uv_interface_addresses' };
  throw err;
}

const lan = () => ({
  lo: [{ address: '127.0.0.1', family: 'IPv4' as const, netmask: '255.0.0.0', mac: '00:00:00:00:00:00', internal: true, cidr: '127.0.0.1/8' }],
  eth0: [{ address: '192.0.2.7', family: 'IPv4' as const, netmask: '255.255.255.0', mac: '02:00:00:00:00:07', internal: false, cidr: '192.0.2.7/24' }],
});

const target = (host: string, port = 53): QueryTarget => ({ key: 'upstreams[0].url', text: `${host}:${port}`, host, port });
const wildcard: HostPort = { host: '0.0.0.0', port: 53, family: 4 };

describe('listing interfaces in a sandbox that refuses netlink', () => {
  it('localAddresses returns the reason instead of throwing', () => {
    expect(localAddresses(refused)).toEqual({ error: 'EAFNOSUPPORT' });
    expect(localAddresses(lan)).toEqual({ addresses: new Set(['127.0.0.1', '192.0.2.7']) });
  });

  it('a wildcard listener: loopback and the listen addresses stand in for the interfaces, with one warning', () => {
    const warn = vi.fn();
    const listeners: HostPort[] = [wildcard, { host: '192.0.2.9', port: 53, family: 4 }];
    const problems = selfTargetProblems(listeners, [target('127.0.0.5'), target('192.0.2.9'), target('192.0.2.7'), target('192.0.2.9', 443)], { list: refused, warn });
    expect(problems).toHaveLength(2);
    expect(problems[0]).toContain('127.0.0.5:53 is dohd\'s own listening address 0.0.0.0:53');
    expect(problems[1]).toContain('192.0.2.9:53 is dohd\'s own listening address');
    // 192.0.2.7 is on an interface, but the interfaces could not be listed: not flagged.
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn).toHaveBeenCalledWith(NO_INTERFACES_WARNING, 'EAFNOSUPPORT');
    // With the interfaces listed, the same address is found.
    expect(selfTargetProblems(listeners, [target('192.0.2.7')], { list: lan, warn })).toHaveLength(1);
    expect(warn).toHaveBeenCalledTimes(1);
  });

  it('specific listen addresses never ask for the interfaces', () => {
    const list = vi.fn(refused);
    const warn = vi.fn();
    const problems = selfTargetProblems([{ host: '127.0.0.1', port: 53, family: 4 }, { host: '::1', port: 53, family: 6 }], [target('127.0.0.1'), target('::1', 443)], { list, warn });
    expect(problems).toHaveLength(1);
    expect(list).not.toHaveBeenCalled();
    expect(warn).not.toHaveBeenCalled();
  });

  it('proxy-dns --address 0.0.0.0: IPv6 is read from /proc/net/if_inet6 when interfaces cannot be listed', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dohd-inet6-'));
    try {
      const with6 = join(dir, 'with');
      const without6 = join(dir, 'without');
      writeFileSync(with6, '00000000000000000000000000000001 01 80 10 80       lo\n');
      writeFileSync(without6, '');
      expect(machineHasIpv6(refused, with6)).toBe(true);
      expect(machineHasIpv6(refused, without6)).toBe(false);
      expect(machineHasIpv6(refused, join(dir, 'missing'))).toBe(false);
      expect(machineHasIpv6(lan, without6)).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
