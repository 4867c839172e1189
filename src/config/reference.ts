/**
 * The configuration reference (docs/configuration.md), generated from the schema: every key,
 * its type, default, range and meaning (`.describe()` in schema.ts). `npm run config-doc`
 * writes it between the markers; a test fails when the file is not what this returns.
 */
import { z } from 'zod';
import { configSchema } from './schema.js';

export const REFERENCE_START = '<!-- config:start (generated from src/config/schema.ts by `npm run config-doc`: do not edit) -->';
export const REFERENCE_END = '<!-- config:end -->';

/** The part of a JSON Schema (draft 2020-12, as zod writes it) that the reference reads. */
interface Json {
  type?: string;
  description?: string;
  default?: unknown;
  enum?: unknown[];
  const?: unknown;
  anyOf?: Json[];
  items?: Json;
  properties?: Record<string, Json>;
  required?: string[];
  additionalProperties?: Json | boolean;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  minItems?: number;
}

interface Row {
  key: string;
  type: string;
  dflt: string;
  range: string;
  text: string;
}

const code = (s: string) => `\`${s}\``;

function typeOf(j: Json): string {
  if (j.anyOf) return j.anyOf.map(typeOf).join(' or ');
  if (j.const !== undefined) return code(JSON.stringify(j.const));
  if (j.enum) return j.enum.map((v) => code(String(v))).join(', ');
  if (j.type === 'array') return `list of ${j.items ? typeOf(j.items) : 'any'}`;
  if (j.type === 'object') return j.properties ? 'object' : 'map';
  if (j.type === 'integer') return 'integer';
  return j.type ?? 'any';
}

function rangeOf(j: Json): string {
  const parts: string[] = [];
  const lo = j.minimum !== undefined ? `${j.minimum} ≤` : j.exclusiveMinimum !== undefined ? `${j.exclusiveMinimum} <` : '';
  if (lo || j.maximum !== undefined) parts.push(`${lo}${lo ? ' ' : ''}x${j.maximum !== undefined ? ` ≤ ${j.maximum}` : ''}`.replace(/^x$/, ''));
  if (j.minItems) parts.push(`at least ${j.minItems}`);
  if (j.anyOf) parts.push(...j.anyOf.map(rangeOf).filter(Boolean));
  return parts.join('; ');
}

function defaultOf(j: Json, required: boolean): string {
  if (j.default === undefined) return required ? 'required' : '';
  const d = j.default;
  if (Array.isArray(d) && d.length > 0 && d.every((e) => typeof e === 'object' && e !== null && 'url' in e))
    return d.map((e) => code((e as { url: string }).url)).join(', ');
  // A section whose keys have their own defaults (below it in the table).
  if (j.properties && typeof d === 'object') return '';
  if (typeof d === 'object' && d !== null && Object.keys(d).length === 0) return Array.isArray(d) ? '`[]`' : '`{}`';
  if (typeof d === 'string') return code(d);
  return code(JSON.stringify(d).replace(/,/g, ', '));
}

/** The object schema among a union's branches, if one. */
const objectBranch = (j: Json): Json | undefined => j.anyOf?.find((b) => b.type === 'object' && b.properties);

function walk(j: Json, key: string, required: boolean, rows: Row[]): void {
  rows.push({ key, type: typeOf(j), dflt: defaultOf(j, required), range: rangeOf(j), text: j.description ?? '' });
  const obj = j.properties ? j : objectBranch(j);
  if (obj?.properties) {
    for (const [k, v] of Object.entries(obj.properties)) walk(v, `${key}.${k}`, obj.required?.includes(k) ?? false, rows);
    return;
  }
  if (j.type === 'array' && j.items?.properties) {
    for (const [k, v] of Object.entries(j.items.properties)) walk(v, `${key}[].${k}`, j.items.required?.includes(k) ?? false, rows);
    return;
  }
  // A map: its values' keys, under NAME.
  const values = typeof j.additionalProperties === 'object' ? j.additionalProperties : undefined;
  const vobj = values && (values.properties ? values : objectBranch(values));
  if (vobj?.properties) for (const [k, v] of Object.entries(vobj.properties)) walk(v, `${key}.NAME.${k}`, vobj.required?.includes(k) ?? false, rows);
}

const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** The generated part of docs/configuration.md, markers included. */
export function configReference(): string {
  const root = z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as Json;
  const rows: Row[] = [];
  for (const [k, v] of Object.entries(root.properties ?? {})) walk(v, k, root.required?.includes(k) ?? false, rows);
  return [
    REFERENCE_START,
    '',
    '| key | type | default | range | meaning |',
    '| --- | --- | --- | --- | --- |',
    ...rows.map((r) => `| ${code(r.key)} | ${cell(r.type)} | ${cell(r.dflt)} | ${cell(r.range)} | ${cell(r.text)} |`),
    '',
    REFERENCE_END,
  ].join('\n');
}

/** `text` with its generated part replaced by `configReference()`; null when the markers are missing. */
export function withReference(text: string): string | null {
  const i = text.indexOf(REFERENCE_START);
  const j = text.indexOf(REFERENCE_END);
  if (i < 0 || j < i) return null;
  return text.slice(0, i) + configReference() + text.slice(j + REFERENCE_END.length);
}
