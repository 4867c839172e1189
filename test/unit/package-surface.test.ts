/** The package's public surface: the `dohd` command is the product; no module is importable from outside. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as Record<string, unknown>;

describe('package.json surface', () => {
  it('the bin is dist/cli.js and the exports map opens only package.json', () => {
    expect(pkg.bin).toEqual({ dohd: 'dist/cli.js' });
    expect(pkg.exports).toEqual({ './package.json': './package.json' });
    expect(pkg.main).toBeUndefined();
  });

  it('importing the package by name is refused (ERR_PACKAGE_PATH_NOT_EXPORTED); its package.json is not', () => {
    // In a node process of its own: vitest's resolver is not node's.
    const program =
      "import('dohd').then(() => console.log('imported'), (e) => console.log(e.code)); import('dohd/package.json', { with: { type: 'json' } }).then((m) => console.log(m.default.name));";
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', program], { cwd: ROOT, encoding: 'utf8' });
    expect(out.split('\n').filter(Boolean).sort()).toEqual(['ERR_PACKAGE_PATH_NOT_EXPORTED', 'dohd']);
  });
});
