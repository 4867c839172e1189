import { describe, expect, it } from 'vitest';
import { hostsTable, parseHosts, reverseName } from '../../../src/stages/hosts/hosts-file.js';
import { RouteStage } from '../../../src/stages/forward/route.js';

describe('forward rules', () => {
  const r = new RouteStage({ 'cluster.local': 'cluster', 'svc.cluster.local.': 'svc', '10.in-addr.arpa': 'cluster', 'Corp.Example': 'office' });
  it('the most specific rule wins; a name is covered by its own rule and everything under it', () => {
    expect(r.groupFor('cluster.local')).toBe('cluster');
    expect(r.groupFor('a.b.cluster.local')).toBe('cluster');
    expect(r.groupFor('kubernetes.default.svc.cluster.local')).toBe('svc');
    expect(r.groupFor('svc.cluster.local')).toBe('svc');
    expect(r.groupFor('1.0.96.10.in-addr.arpa')).toBe('cluster');
    expect(r.groupFor('mail.corp.example')).toBe('office');
  });
  it('names no rule covers, and look-alikes, go to the default group', () => {
    expect(r.groupFor('example.com')).toBeUndefined();
    expect(r.groupFor('local')).toBeUndefined();
    expect(r.groupFor('xcluster.local')).toBeUndefined();
    expect(r.groupFor('1.0.0.11.in-addr.arpa')).toBeUndefined();
    expect(new RouteStage({}).groupFor('cluster.local')).toBeUndefined();
  });
});

describe('hosts file parsing', () => {
  it('one parser for the stage and the doctor: lines with an address and names; a scoped address keeps its zone apart', () => {
    expect(parseHosts('fe80::1%eth0 Scoped.\n# 1.2.3.4 x\n10.0.0.9 a b\nnot-an-ip c\n10.0.0.8\n')).toEqual([
      { address: 'fe80::1', zone: 'eth0', names: ['scoped'], line: 1 },
      { address: '10.0.0.9', names: ['a', 'b'], line: 3 },
    ]);
  });

  it('reads addresses, names and aliases; skips comments, blanks and bad lines', () => {
    const t = hostsTable(
      [
        '# static entries',
        '127.0.0.1\tlocalhost',
        '::1 localhost ip6-localhost',
        '10.0.0.5 build.lan build # trailing comment',
        '10.0.0.6 Build.Lan.',
        'fd00:0:0::5 build.lan',
        'not-an-ip name',
        '10.0.0.7',
        'fe80::1%eth0 scoped',
        '',
      ].join('\n'),
    );
    expect(t.names.get('localhost')).toEqual({ v4: ['127.0.0.1'], v6: ['::1'] });
    expect(t.names.get('build.lan')).toEqual({ v4: ['10.0.0.5', '10.0.0.6'], v6: ['fd00::5'] });
    expect(t.names.get('build')).toEqual({ v4: ['10.0.0.5'], v6: [] });
    expect(t.names.has('name')).toBe(false);
    expect(t.names.has('scoped')).toBe(false);
    expect(t.reverse.get('5.0.0.10.in-addr.arpa')).toEqual(['build.lan', 'build']);
  });
  it('builds reverse names for IPv4 and IPv6', () => {
    expect(reverseName('192.0.2.1')).toBe('1.2.0.192.in-addr.arpa');
    expect(reverseName('2001:db8::1')).toBe('1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa');
  });
});
