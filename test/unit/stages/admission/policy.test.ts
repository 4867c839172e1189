/** Unit tests of the policy helpers: CIDR parsing, access control, rate-limit buckets. */
import { describe, expect, it } from 'vitest';
import ipaddr from 'ipaddr.js';
import { parseCidr } from '../../../../src/config/cidr.js';
import { DEFAULT_ACL_ALLOW } from '../../../../src/config/defaults.js';
import { loadConfig, validateConfig, ConfigError } from '../../../../src/config/load.js';
import { Acl } from '../../../../src/stages/admission/acl.js';
import { PolicyStage } from '../../../../src/stages/admission/stage.js';
import { clientPrefix, RateLimiter } from '../../../../src/stages/admission/ratelimit.js';
import { policyOptions } from '../../../fixtures/config-defaults.js';

describe('CIDR ranges in the configuration', () => {
  it('accepts ranges and bare addresses, rejects the rest with a reason', () => {
    expect(parseCidr('10.0.0.0/8')).not.toBeTypeOf('string');
    expect(parseCidr('fc00::/7')).not.toBeTypeOf('string');
    const host = parseCidr('192.0.2.7');
    expect(typeof host !== 'string' && host[1]).toBe(32);
    expect(parseCidr('10.0.0.0/33')).toMatch(/invalid prefix length \(0 to 32\)/);
    expect(parseCidr('::/129')).toMatch(/0 to 128/);
    expect(parseCidr('127.1/8')).toMatch(/not an IP address or CIDR/);
    expect(parseCidr('example.com/8')).toMatch(/not an IP address or CIDR/);
    expect(parseCidr('10.0.0.0/x')).toMatch(/invalid prefix length/);
  });

  it('config errors name the key', () => {
    expect(() => validateConfig({ acl: { allow: ['10.0.0.0/8', 'bogus'] } })).toThrow(/acl\.allow\[1\]: "bogus" is not an IP address/);
    expect(() => validateConfig({ rateLimit: { qps: -1 } })).toThrow(/rateLimit\.qps/);
    expect(() => validateConfig({ any: 'drop' })).toThrow(/any: /);
    expect(() => validateConfig({ tcp: { idleTimeoutMs: 10 } })).toThrow(/tcp\.idleTimeoutMs/);
    expect(() => validateConfig({ ecs: { keep: 'yes' } })).toThrow(ConfigError);
    expect(() => validateConfig({ tcp: { bogus: 1 } })).toThrow(/tcp.bogus: unknown key; known keys here: idleTimeoutMs/);
  });

  it('defaults: private sources, rate limit on with loopback exempt, ECS stripped, ANY minimal, RFC 7766 TCP limits', () => {
    const c = validateConfig({ upstreams: [{ url: 'https://127.0.0.1/dns-query' }] });
    expect(c.acl.allow).toEqual(DEFAULT_ACL_ALLOW);
    expect(c.rateLimit).toEqual({ qps: 1000, maxClients: 10_000, exempt: ['127.0.0.0/8', '::1/128'] });
    expect(c.ecs.keep).toBe(false);
    expect(c.any).toBe('hinfo');
    expect(c.tcp).toEqual({ idleTimeoutMs: 10_000, maxConnections: 1000, maxInflightPerConnection: 64, frameTimeoutMs: 5000, maxBufferedBytes: 262_144 });
    // Setting one key of a section keeps the other defaults.
    const d = validateConfig({ upstreams: [{ url: 'https://127.0.0.1/dns-query' }], tcp: { idleTimeoutMs: 500 } });
    expect(d.tcp.maxConnections).toBe(1000);
    expect(d.tcp.idleTimeoutMs).toBe(500);
  });
});

it('dohd.example.yaml documents exactly the defaults of these sections', () => {
  const example = loadConfig(new URL('../../../../dohd.example.yaml', import.meta.url).pathname);
  const defaults = validateConfig({ upstreams: [{ url: 'https://127.0.0.1/dns-query' }] });
  for (const key of ['acl', 'rateLimit', 'ecs', 'any', 'tcp'] as const) expect({ key, value: example[key] }).toEqual({ key, value: defaults[key] });
});

describe('access control', () => {
  const acl = new Acl(DEFAULT_ACL_ALLOW);
  it.each([
    ['127.0.0.1', true],
    ['127.255.0.9', true],
    ['::1', true],
    ['10.1.2.3', true],
    ['172.16.0.1', true],
    ['172.31.255.255', true],
    ['172.32.0.1', false],
    ['192.168.1.1', true],
    ['169.254.10.10', true],
    ['fd12:3456::1', true],
    ['fc00::1', true],
    ['fe80::1', true],
    ['fe80::1%eth0', true],
    ['::ffff:192.168.0.1', true],
    ['::ffff:8.8.8.8', false],
    ['8.8.8.8', false],
    ['100.64.0.1', false],
    ['2001:db8::1', false],
    ['', false],
    ['not-an-ip', false],
  ])('%s → %s', (addr, allowed) => {
    expect(acl.allows(addr)).toBe(allowed);
  });

  it('a configured list replaces the default', () => {
    const only = new Acl(['203.0.113.0/24', '2001:db8::/32']);
    expect(only.allows('203.0.113.200')).toBe(true);
    expect(only.allows('2001:db8:1::5')).toBe(true);
    expect(only.allows('127.0.0.1')).toBe(false);
    expect(new Acl([]).allows('127.0.0.1')).toBe(false);
  });
});

describe('policy stage options', () => {
  it('update() swaps the allow list and limits, keeping the counters', () => {
    const p = new PolicyStage(policyOptions({ acl: ['10.0.0.0/8'], rateLimit: { qps: 0, maxClients: 10 } }));
    expect(p.screenReject('udp', { address: '127.0.0.1' }, 'malformed', true)).toBe(false);
    expect(p.counters.dropped.acl).toBe(1);
    p.update(policyOptions({ acl: ['127.0.0.0/8'], rateLimit: { qps: 1, burst: 1, maxClients: 10 } }));
    expect(p.screenReject('udp', { address: '127.0.0.1' }, 'malformed', true)).toBe(true);
    expect(p.screenReject('udp', { address: '127.0.0.1' }, 'malformed', true)).toBe(false);
    expect(p.counters.dropped).toMatchObject({ acl: 1, ratelimit: 1 });
    expect(p.counters.rejected.malformed).toBe(3);
  });
});

describe('rate limit', () => {
  it('keys IPv4 by /24 and IPv6 by /56', () => {
    expect(clientPrefix(ipaddr.parse('192.0.2.1'))).toBe(clientPrefix(ipaddr.parse('192.0.2.254')));
    expect(clientPrefix(ipaddr.parse('192.0.2.1'))).not.toBe(clientPrefix(ipaddr.parse('192.0.3.1')));
    expect(clientPrefix(ipaddr.parse('2001:db8:0:ff::1'))).toBe(clientPrefix(ipaddr.parse('2001:db8:0:aa:1::2')));
    expect(clientPrefix(ipaddr.parse('2001:db8:0:1ff::1'))).not.toBe(clientPrefix(ipaddr.parse('2001:db8:0:ff::1')));
  });

  it('token bucket: burst at once, then qps per second; prefixes are independent', () => {
    let now = 0;
    const rl = new RateLimiter({ qps: 10, burst: 5, maxClients: 100, now: () => now });
    const take = (a: string, n: number) => Array.from({ length: n }, () => rl.take(a)).filter(Boolean).length;
    expect(take('192.0.2.1', 8)).toBe(5);
    expect(take('192.0.2.77', 1)).toBe(0); // same /24
    expect(take('198.51.100.1', 5)).toBe(5); // another prefix has its own bucket
    now += 300; // 3 tokens back
    expect(take('192.0.2.1', 5)).toBe(3);
    now += 10_000; // refilled, but never above burst
    expect(take('192.0.2.1', 10)).toBe(5);
  });

  it('burst defaults to twice qps; qps 0 is off; exempt ranges are never limited', () => {
    const rl = new RateLimiter({ qps: 3, maxClients: 10, now: () => 0 });
    expect(rl.burst).toBe(6);
    const off = new RateLimiter({ qps: 0, maxClients: 10 });
    expect(Array.from({ length: 1000 }, () => off.take('192.0.2.1')).every(Boolean)).toBe(true);
    expect(off.size).toBe(0);
    const ex = new RateLimiter({ qps: 1, burst: 1, maxClients: 10, exempt: ['127.0.0.0/8'], now: () => 0 });
    expect(Array.from({ length: 50 }, () => ex.take('127.0.0.1')).every(Boolean)).toBe(true);
    expect(ex.take('192.0.2.1')).toBe(true);
    expect(ex.take('192.0.2.1')).toBe(false);
    expect(ex.take('garbage')).toBe(false);
  });

  it('the bucket map is bounded: a flood from many prefixes keeps at most maxClients', () => {
    const rl = new RateLimiter({ qps: 1, burst: 1, maxClients: 100, now: () => 0 });
    for (let i = 0; i < 5000; i++) rl.take(`10.${(i >> 8) & 255}.${i & 255}.1`);
    for (let i = 0; i < 5000; i++) rl.take(`2001:db8:${i.toString(16)}::1`);
    expect(rl.size).toBe(100);
  });
});
