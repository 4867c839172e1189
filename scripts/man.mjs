#!/usr/bin/env node
/**
 * Generates man/dohd.1 from the command definitions: the --help of dohd and of each of its
 * commands (as yargs prints them from src/cli/*), set in roff. `node scripts/man.mjs`
 * writes the page; `--check` exits 1 when the page in the tree is not what the code prints
 * (a test runs it, so the page cannot drift). Needs a build (dist/cli.js).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cli = join(root, 'dist', 'cli.js');
const page = join(root, 'man', 'dohd.1');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));

// A fixed environment: the help text must not depend on the terminal or the shell.
const env = { PATH: process.env.PATH, LANG: 'C', LC_ALL: 'C' };
const help = (args) => execFileSync(process.execPath, [cli, ...args, '--help'], { env, encoding: 'utf8' }).trimEnd();

/** roff-safe text: backslashes, leading dots and apostrophes, hyphens of options. */
const esc = (line) => line.replace(/\\/g, '\\e').replace(/^([.'])/, '\\&$1').replace(/-/g, '\\-');

function commandsOf(text) {
  const out = [];
  let inCommands = false;
  for (const line of text.split('\n')) {
    if (/^Commands:/.test(line)) inCommands = true;
    else if (/^\S/.test(line)) inCommands = false;
    else if (inCommands) {
      const m = /^\s+dohd (?:\S+ )*?([a-z][\w-]*)(?=\s|$)/.exec(line);
      const words = /^\s+dohd ((?:[a-z][\w-]*\s?)+)/.exec(line);
      if (m && words) out.push(words[1].trim().split(/\s+/));
    }
  }
  return out;
}

export function render() {
  const top = help([]);
  const sections = [];
  const seen = new Set();
  const walk = (path) => {
    for (const cmd of commandsOf(help(path))) {
      const key = cmd.join(' ');
      if (seen.has(key)) continue;
      // `completion` prints a script, not help: its line in the command list says how to use it.
      if (key === 'completion') continue;
      seen.add(key);
      sections.push({ name: key, text: help(cmd) });
      walk(cmd);
    }
  };
  walk([]);
  const lines = [
    `.TH DOHD 1 "" "dohd ${pkg.version}" "User Commands"`,
    '.SH NAME',
    `dohd \\- ${esc(pkg.description)}`,
    '.SH SYNOPSIS',
    '.B dohd',
    '.I command',
    '[\\fIoptions\\fR]',
    '.SH DESCRIPTION',
    'dohd answers DNS on UDP and TCP (127.0.0.1:53 and [::1]:53 by default) and resolves every query over DNS\\-over\\-HTTPS.',
    'Each command is listed below with the options it takes, as printed by',
    '.BR "dohd COMMAND \\-\\-help" .',
    '.PP',
    '.nf',
    ...top.split('\n').map(esc),
    '.fi',
    '.SH COMMANDS',
  ];
  for (const s of sections) {
    lines.push(`.SS "dohd ${esc(s.name)}"`, '.nf', ...s.text.split('\n').map(esc), '.fi');
  }
  lines.push(
    '.SH FILES',
    '.TP',
    '.I /etc/dohd/dohd.yaml',
    'the configuration, given with \\fB\\-\\-config\\fR (every option and its default: dohd.example.yaml)',
    '.SH EXIT STATUS',
    '0 success; 1 a failure at run time (an address in use, nothing healthy for \\fBstatus\\fR); 2 a configuration or usage error.',
    '.SH SEE ALSO',
    'README.md and docs/ in the dohd sources.',
  );
  return `${lines.join('\n')}\n`;
}

const text = render();
if (process.argv.includes('--check')) {
  let current = '';
  try {
    current = readFileSync(page, 'utf8');
  } catch {
    /* missing: not current */
  }
  if (current !== text) {
    process.stderr.write('man/dohd.1 is not current: run "npm run build && node scripts/man.mjs"\n');
    process.exit(1);
  }
} else {
  writeFileSync(page, text);
  process.stdout.write(`wrote ${page}\n`);
}
