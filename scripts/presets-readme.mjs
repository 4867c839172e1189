#!/usr/bin/env node
// Rewrites the presets table in README.md from src/config/presets.ts (built: run `npm run build` first).
import { readFileSync, writeFileSync } from 'node:fs';
import { presetsTable } from '../dist/config/presets.js';

const file = new URL('../README.md', import.meta.url);
const readme = readFileSync(file, 'utf8');
const re = /(<!-- presets:start -->\n)[\s\S]*?(\n<!-- presets:end -->)/;
if (!re.test(readme)) {
  console.error('README.md has no <!-- presets:start --> ... <!-- presets:end --> markers');
  process.exit(1);
}
writeFileSync(file, readme.replace(re, (_m, a, b) => `${a}${presetsTable()}${b}`));
