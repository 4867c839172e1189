#!/usr/bin/env node
/**
 * Writes the generated configuration reference into docs/configuration.md (between its
 * markers) from the schema: `node scripts/config-doc.mjs`; `--check` exits 1 when the file is
 * not what the schema gives (test/unit/config/reference.test.ts checks the same). Needs a
 * build (dist/config/reference.js).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { withReference } from '../dist/config/reference.js';

const file = join(dirname(fileURLToPath(import.meta.url)), '..', 'docs', 'configuration.md');
const text = readFileSync(file, 'utf8');
const next = withReference(text);
if (next === null) {
  process.stderr.write(`${file}: no config:start/config:end markers\n`);
  process.exit(1);
}
if (process.argv.includes('--check')) {
  if (next !== text) {
    process.stderr.write('docs/configuration.md is not what the schema gives: run npm run config-doc\n');
    process.exit(1);
  }
} else if (next !== text) writeFileSync(file, next);
