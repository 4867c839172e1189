import { configProblems } from '../../fixtures/config-defaults.js';
import { describe, expect, it } from 'vitest';
import { closest, levenshtein } from '../../../src/config/messages.js';
import { explainUnknownArguments } from '../../../src/cli/unknown-args.js';
import { socketInodes } from '../../../src/server/port-owner.js';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

describe('did you mean', () => {
  it('counts edits, a swap of neighbours as one', () => {
    expect(levenshtein('timeoutms', 'timeoutMs')).toBe(1);
    expect(levenshtein('rnu', 'run')).toBe(1);
    expect(levenshtein('abc', 'xyz')).toBe(3);
  });
  it('suggests only what is close enough to be a typo', () => {
    expect(closest('timeoutms', ['listen', 'timeoutMs', 'cache'])).toBe('timeoutMs');
    expect(closest('colour', ['maxEntries', 'maxBytes', 'file'])).toBeUndefined();
  });
});

describe('unknown flags as typed', () => {
  it('--no-X is reported as typed, once, with the closest flag', () => {
    expect(explainUnknownArguments('Unknown arguments: such-flag, suchFlag', ['run', '--no-such-flag'], ['listen', 'upstream'], ['run'])).toBe('unknown option --no-such-flag');
    expect(explainUnknownArguments('Unknown argument: listn', ['run', '--listn=x'], ['listen', 'upstream'], ['run'])).toBe('unknown option --listn; did you mean --listen?');
    expect(explainUnknownArguments('Not enough non-option arguments', ['query'], [], [])).toBeUndefined();
  });
});

describe('port owner', () => {
  it('finds the inode of a socket on the port in /proc/net (IPv4, wildcard IPv6, TCP only when listening)', () => {
    const root = mkdtempSync(join(tmpdir(), 'dohd-proc-'));
    mkdirSync(join(root, 'net'));
    const head = '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n';
    writeFileSync(join(root, 'net/udp'), `${head}   1: 0100007F:14E9 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1111 2 0\n   2: 0200007F:14E9 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 2222 2 0\n`);
    writeFileSync(join(root, 'net/udp6'), `${head}   3: 00000000000000000000000000000000:14E9 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 3333 2 0\n`);
    writeFileSync(join(root, 'net/tcp'), `${head}   1: 0100007F:14E9 00000000:0000 01 00000000:00000000 00:00000000 00000000     0        0 4444 2 0\n`);
    expect(socketInodes('udp', '127.0.0.1', 5353, root)).toEqual([1111, 3333]);
    expect(socketInodes('tcp', '127.0.0.1', 5353, root)).toEqual([]); // established, not listening
    expect(socketInodes('udp', '127.0.0.1', 53, root)).toEqual([]);
  });
});

describe('configuration problems in words', () => {
  const problems = configProblems;
  it('names key, found, expected and the fix, never zod\'s own wording', () => {
    expect(problems({ workers: 0 })).toEqual(['workers: found 0; expected a whole number from 1 to 256 (the default: workers: 1)']);
    expect(problems({ pins: { 'a.test': '192.0.2.1' } })).toEqual(['pins.a.test: found the text "192.0.2.1"; expected a list, or a mapping with addresses, ttl, verify']);
    expect(problems({ upstreams: [] })).toEqual(['upstreams: found an empty list; expected at least 1 entry (leave the key out for the default)']);
    expect(problems({ upstreams: [{ url: 'https://127.0.0.1/dns-query', bootstrap: '127.0.0.1' }] })).toEqual([
      'upstreams[0].bootstrap: found the text "127.0.0.1"; expected a list; write it as a list: bootstrap: ["127.0.0.1"]',
    ]);
    expect(problems({ groups: { corp: { upstreams: [{ url: 'https://192.0.2.1' }] } } })).toEqual([
      'groups.corp.upstreams[0].url: "https://192.0.2.1" has no path; DoH servers answer on a path, usually /dns-query: write "https://192.0.2.1/dns-query"',
    ]);
    expect(problems({ any: 'hinf', loopProbe: 'yes' })).toEqual([
      'loopProbe: found the text "yes"; expected true or false (the default: loopProbe: true)',
      'any: found the text "hinf"; expected one of hinfo, refuse, forward; did you mean "hinfo"?',
    ]);
    for (const p of problems({ workers: 'x', timeoutMs: -1, cache: { maxEntrie: 1 }, log: { level: 'loud' } })) expect(p).not.toMatch(/Invalid|Too (small|big)|expected number/);
  });
});
