/**
 * The built CLI's errors on stderr: marked <3> (error) for the journal (JOURNAL_STREAM names
 * stderr), as they are for a file or pipe. Moved from test/unit/log/format.test.ts: it spawns dist/.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, fstatSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

describe('errors on stderr', () => {
  it('the journal gets them marked <3> (error), every line; a file or pipe gets them as they are', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dohd-stderr-'));
    try {
      const cli = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));
      const run = (journal: boolean) => {
        const file = join(dir, `err-${journal}`);
        const fd = openSync(file, 'w');
        const st = fstatSync(fd, { bigint: true });
        const env = { ...process.env, JOURNAL_STREAM: journal ? `${st.dev}:${st.ino}` : '' };
        const r = spawnSync(process.execPath, [cli, 'check-config', '--config', join(dir, 'missing.yaml')], { stdio: ['ignore', 'ignore', fd], env });
        closeSync(fd);
        return { code: r.status, text: readFileSync(file, 'utf8') };
      };
      expect(run(true)).toEqual({ code: 2, text: `<3>dohd: cannot read config file ${join(dir, 'missing.yaml')}: ENOENT\n` });
      expect(run(false)).toEqual({ code: 2, text: `dohd: cannot read config file ${join(dir, 'missing.yaml')}: ENOENT\n` });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
