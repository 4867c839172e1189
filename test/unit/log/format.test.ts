/**
 * The log formats: JSON lines for files and pipes, one human line with its syslog priority
 * for the journal. `journalctl -p` filtering on the real journal: test/e2e/systemd-nspawn.test.ts.
 */
import { closeSync, fstatSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../../src/config/load.js';
import { createLogger, isJournalStream, resolveFormat, setLogFormat, textLine, type LogFormat } from '../../../src/log/log.js';

function capture(format: LogFormat, level = 'debug') {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(...chunk.toString().split('\n').filter(Boolean));
      cb();
    },
  });
  return { lines, log: createLogger(level as 'debug', stream, format) };
}

describe('log.format', () => {
  it('text: one line per event with the syslog priority of its level', () => {
    const { lines, log } = capture('text');
    log.error({ file: '/etc/dohd/dohd.yaml', error: 'x: expected number' }, 'configuration reload failed');
    log.warn({ keys: ['listen'] }, 'configuration change needs a restart');
    log.info({ listen: ['127.0.0.1:53', '[::1]:53'], admin: null }, 'dohd listening');
    log.debug({ n: 3 }, 'debug line');
    log.fatal('fatal line');
    log.child({ worker: 2 }).info({ err: new Error('boom\nsecond line') }, 'child');
    expect(lines).toEqual([
      '<3>configuration reload failed file=/etc/dohd/dohd.yaml error="x: expected number"',
      '<4>configuration change needs a restart keys=["listen"]',
      '<6>dohd listening listen=["127.0.0.1:53","[::1]:53"] admin=null',
      '<7>debug line n=3',
      '<2>fatal line',
      '<6>child worker=2 err="boom\\nsecond line"',
    ]);
  });

  it('json (and auto on a pipe or file): JSON lines, unchanged', () => {
    for (const f of ['json', 'auto'] as const) {
      const { lines, log } = capture(f);
      log.warn({ a: 1 }, 'hello');
      expect(lines).toHaveLength(1);
      expect(JSON.parse(lines[0]!)).toMatchObject({ level: 'warn', msg: 'hello', a: 1, name: 'dohd' });
    }
  });

  it('a reload switches the format of the logger and its children', () => {
    const { lines, log } = capture('json');
    const child = log.child({ worker: 1 });
    setLogFormat(child, 'text');
    log.info('now text');
    setLogFormat(log, 'json');
    child.info('json again');
    expect(lines[0]).toBe('<6>now text');
    expect(JSON.parse(lines[1]!)).toMatchObject({ msg: 'json again', worker: 1 });
  });

  it('auto is text only when stdout is the stream $JOURNAL_STREAM names (device:inode)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dohd-journal-'));
    const fd = openSync(join(dir, 'out'), 'w');
    try {
      const st = fstatSync(fd, { bigint: true });
      const env = { JOURNAL_STREAM: `${st.dev}:${st.ino}` };
      expect(isJournalStream(env, fd)).toBe(true);
      expect(isJournalStream({ JOURNAL_STREAM: `${st.dev}:${st.ino + 1n}` }, fd)).toBe(false);
      expect(isJournalStream({}, fd)).toBe(false);
      // stdout of this test process is not that file.
      expect(resolveFormat('auto', true, env)).toBe('json');
      expect(resolveFormat('auto', false, env)).toBe('json');
      expect(resolveFormat('text', false, {})).toBe('text');
      expect(resolveFormat('json', true, env)).toBe('json');
    } finally {
      closeSync(fd);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a line that is not JSON passes through as it is', () => {
    expect(textLine('plain words')).toBe('plain words\n');
  });

  it('the schema: auto by default, json|text|auto only', () => {
    expect(validateConfig({ upstreams: [{ url: 'https://127.0.0.1:8443/dns-query' }] }).log.format).toBe('auto');
    expect(validateConfig({ upstreams: [{ url: 'https://127.0.0.1:8443/dns-query' }], log: { format: 'text' } }).log).toEqual({ level: 'info', queries: false, format: 'text' });
    expect(() => validateConfig({ upstreams: [{ url: 'https://127.0.0.1:8443/dns-query' }], log: { format: 'xml' } })).toThrow(/log\.format/);
  });
});

// Errors on stderr, marked for the journal, from the built CLI: test/e2e/stderr-journal.test.ts.
