/**
 * Summarises a V8 heap snapshot (`node --heapsnapshot-signal`, `v8.writeHeapSnapshot()`) by
 * constructor: bytes and object counts, largest first. A development tool:
 *
 *   node --max-old-space-size=8000 .bench-dist/bench/heap-summary.js FILE.heapsnapshot [top]
 */
import { readFileSync } from 'node:fs';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
  nodes: number[];
  strings: string[];
}

const [file, top = '40'] = process.argv.slice(2);
if (!file) {
  process.stderr.write('usage: heap-summary FILE.heapsnapshot [top]\n');
  process.exit(2);
}
const snap = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
const fields = snap.snapshot.meta.node_fields;
const types = snap.snapshot.meta.node_types[0];
const width = fields.length;
const iType = fields.indexOf('type');
const iName = fields.indexOf('name');
const iSize = fields.indexOf('self_size');
const byKind = new Map<string, { count: number; bytes: number }>();
let total = 0;
for (let i = 0; i < snap.nodes.length; i += width) {
  const type = types[snap.nodes[i + iType]!]!;
  let name = snap.strings[snap.nodes[i + iName]!]!;
  if (type.includes('string')) name = '';
  else if (type === 'code') name = '';
  else if (type === 'array') name = name.slice(0, 30);
  const key = `${type} ${name}`.trim();
  const e = byKind.get(key) ?? { count: 0, bytes: 0 };
  e.count++;
  e.bytes += snap.nodes[i + iSize]!;
  total += snap.nodes[i + iSize]!;
  byKind.set(key, e);
}
console.log(`${(total / 1e6).toFixed(1)} MB in ${snap.nodes.length / width} objects`);
for (const [key, e] of [...byKind].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, Number(top))) {
  console.log(`${(e.bytes / 1e6).toFixed(2).padStart(9)} MB ${String(e.count).padStart(9)}  ${key}`);
}
