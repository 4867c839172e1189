/**
 * dohd installs like a Node CLI: the README's first command puts `dohd` on the PATH (npm
 * install -g of the working tree), and `npm pack` makes a tarball (built by prepack, its
 * dependencies bundled) that `npm install -g --offline` installs with no registry at all.
 * Also: the man page is what the commands print, and `dohd completion` for bash and zsh.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { CLI } from '../fixtures/spawn.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string; dependencies: Record<string, string>; devDependencies: Record<string, string> };
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'dohd-install-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * A copy of the sources (npm pack runs prepack there: a fresh build, and this tree's dist is
 * left alone for the other tests), with the run-time dependencies (the ones npm bundles) and
 * what the build needs (typescript, @types).
 */
async function copyOfTree(): Promise<string> {
  const tree = join(dir, 'tree');
  for (const f of ['package.json', 'package-lock.json', 'tsconfig.json', 'README.md', 'dohd.example.yaml', 'src', 'man', 'systemd', 'scripts']) {
    cpSync(join(ROOT, f), join(tree, f), { recursive: true });
  }
  const ls = await run('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: ROOT, maxBuffer: 16 << 20 });
  const deps = ls.stdout.split('\n').filter((p) => p.startsWith(join(ROOT, 'node_modules')));
  for (const d of [...deps, join(ROOT, 'node_modules', 'typescript'), join(ROOT, 'node_modules', '@types')]) {
    cpSync(d, join(tree, relative(ROOT, d)), { recursive: true, verbatimSymlinks: true });
  }
  mkdirSync(join(tree, 'node_modules', '.bin'), { recursive: true });
  symlinkSync('../typescript/bin/tsc', join(tree, 'node_modules', '.bin', 'tsc'));
  return tree;
}

const npm = (args: string[], cwd: string) => run('npm', [...args, '--no-audit', '--no-fund', '--no-update-notifier'], { cwd, timeout: 170_000, maxBuffer: 64 << 20 });

describe('installing dohd', () => {
  it("the README's first command ends with dohd on the PATH", async () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const first = /```sh\n#[^\n]*\n([^\n]+)/.exec(readme)![1]!;
    expect(first).toMatch(/^npm ci && npm run build && npm install -g \. && dohd run$/);
    // `npm install -g .` of the tree (here into a prefix of its own): a link to the working tree.
    const prefix = join(dir, 'linked');
    await npm(['install', '-g', '--prefix', prefix, '--offline', ROOT], ROOT);
    const r = await run(join(prefix, 'bin', 'dohd'), ['--version']);
    expect(r.stdout.trim()).toBe(pkg.version);
  }, 60_000);

  it('npm pack builds a tarball that installs offline and runs: dohd --version, dohd check-config, man page, no dev dependencies', async () => {
    const tree = await copyOfTree();
    await npm(['pack', '--pack-destination', dir], tree);
    const tgz = readdirSync(dir).find((f) => /^dohd-.*\.tgz$/.test(f));
    expect(tgz).toBe(`dohd-${pkg.version}.tgz`);
    expect(existsSync(join(tree, 'dist', 'cli.js'))).toBe(true); // prepack built it
    const prefix = join(dir, 'prefix');
    await npm(['install', '-g', '--prefix', prefix, '--offline', join(dir, tgz!)], dir);
    const dohd = join(prefix, 'bin', 'dohd');
    expect((await run(dohd, ['--version'])).stdout.trim()).toBe(pkg.version);
    const ok = await run(dohd, ['check-config', '--listen', '127.0.0.1:0', '--upstream', 'https://127.0.0.1/dns-query']);
    expect(ok.stdout).toBe('configuration OK: listen 127.0.0.1:0; upstreams https://127.0.0.1/dns-query; 0 pins\n');
    const example = await run(dohd, ['check-config', '--config', join(prefix, 'lib', 'node_modules', 'dohd', 'dohd.example.yaml')]);
    expect(example.stdout).toMatch(/^configuration OK/);
    expect(existsSync(join(prefix, 'share', 'man', 'man1', 'dohd.1'))).toBe(true);
    const installed = readdirSync(join(prefix, 'lib', 'node_modules', 'dohd', 'node_modules'));
    for (const dep of Object.keys(pkg.dependencies)) expect(installed).toContain(dep.split('/')[0]);
    for (const dev of Object.keys(pkg.devDependencies)) expect(installed).not.toContain(dev.split('/')[0]);
  }, 180_000);
});

describe('man page and shell completion', () => {
  it('man/dohd.1 is what the command definitions print (npm run man regenerates it)', async () => {
    const r = await run(process.execPath, [join(ROOT, 'scripts', 'man.mjs'), '--check']).catch((e: { stderr: string; code: number }) => e);
    expect('code' in r ? r.stderr : '').toBe('');
    const page = readFileSync(join(ROOT, 'man', 'dohd.1'), 'utf8');
    for (const cmd of ['run', 'check\\-config', 'query', 'doctor', 'pins learn', 'proxy\\-dns', 'status']) expect(page).toContain(`.SS "dohd ${cmd}"`);
  }, 90_000);

  it('dohd completion prints the bash or zsh script, and the script asks dohd for the words', async () => {
    const bash = await run(process.execPath, [CLI, 'completion', 'bash'], { env: { PATH: process.env.PATH, SHELL: '/bin/zsh' } });
    expect(bash.stdout).toContain('complete -o bashdefault -o default -F _dohd_yargs_completions dohd');
    const zsh = await run(process.execPath, [CLI, 'completion', 'zsh'], { env: { PATH: process.env.PATH } });
    expect(zsh.stdout).toMatch(/^#compdef dohd\n/);
    const words = await run(process.execPath, [CLI, '--get-yargs-completions', 'dohd', 'run', '--li']);
    expect(words.stdout.split('\n')).toContain('--listen');
    // bash itself, with the script loaded, completes "dohd check-c" (dohd on the PATH: a wrapper around this build).
    const bin = join(dir, 'bin');
    mkdirSync(bin, { recursive: true });
    const wrapper = join(bin, 'dohd');
    writeFileSync(wrapper, `#!/bin/sh\nexec ${process.execPath} ${CLI} "$@"\n`, { mode: 0o755 });
    const script = `${bash.stdout}\nCOMP_WORDS=(dohd check-c); COMP_CWORD=1; _dohd_yargs_completions; echo "\${COMPREPLY[@]}"`;
    const r = await run('bash', ['-c', script], { env: { PATH: `${bin}:${process.env.PATH}` } });
    expect(r.stdout.trim()).toBe('check-config');
    const bad = await run(process.execPath, [CLI, 'completion', 'fish']).catch((e: { stderr: string; code: number }) => e);
    expect(bad).toMatchObject({ code: 2, stderr: 'dohd: completion: no script for "fish"; give one of bash, zsh\n' });
  }, 60_000);
});
