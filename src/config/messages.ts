/**
 * Configuration errors in human words. Each names the key, what was found, what is expected,
 * and, where one exists, the fix: the closest known key or value ("did you mean"), or the
 * default written as a config line. zod's own wording ("Invalid input", "Too small: expected
 * number to be >=1") never reaches the operator.
 */
import type { z } from 'zod';

/** Edit distance: insert, delete, substitute, or swap two neighbours (optimal string alignment). */
export function levenshtein(a: string, b: string): number {
  if (a === b) return 0;
  const rows: number[][] = [Array.from({ length: b.length + 1 }, (_, j) => j)];
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    const prev = rows[i - 1]!;
    for (let j = 1; j <= b.length; j++) {
      let d = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, rows[i - 2]![j - 2]! + 1);
      cur[j] = d;
    }
    rows.push(cur);
  }
  return rows[a.length]![b.length]!;
}

/** The candidate closest to `word` (case-insensitive), when it is close enough to be a typo. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  const w = word.toLowerCase();
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = levenshtein(w, c.toLowerCase());
    if (d < bestD) {
      best = c;
      bestD = d;
    }
  }
  // A typo: at most a third of the word wrong (and always allow one edit).
  return best !== undefined && bestD <= Math.max(1, Math.floor(word.length / 3)) ? best : undefined;
}

export function didYouMean(word: string, candidates: readonly string[], quote = (s: string) => `"${s}"`): string {
  const c = closest(word, candidates);
  return c ? `; did you mean ${quote(c)}?` : '';
}

/** A value as an operator would call it in their file. */
export function describeValue(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'an empty value (null)';
  if (Array.isArray(v)) return v.length ? 'a list' : 'an empty list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return v === '' ? 'an empty text ""' : `the text "${v}"`;
  if (typeof v === 'number') return Number.isInteger(v) ? `${v}` : `the fraction ${v}`;
  return `${typeof v} ${JSON.stringify(v)}`;
}

export function keyPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) {
    if (typeof p === 'number') out += `[${p}]`;
    else out += out ? `.${String(p)}` : String(p);
  }
  return out || '(top level)';
}

type AnySchema = z.core.$ZodType;

function def(s: AnySchema): { type: string; [k: string]: unknown } {
  return (s as unknown as { _zod: { def: { type: string } } })._zod.def;
}

/** Strips defaults, optionals and pipes: the schema that checks the value itself. */
function unwrap(s: AnySchema): AnySchema {
  for (;;) {
    const d = def(s);
    if (d.type === 'default' || d.type === 'prefault' || d.type === 'optional' || d.type === 'nullable' || d.type === 'readonly') s = d.innerType as AnySchema;
    else if (d.type === 'pipe') s = d.in as AnySchema;
    else return s;
  }
}

/** The schema that checks the value at `path`, when the path can be followed. */
export function schemaAt(root: AnySchema, path: readonly PropertyKey[]): AnySchema | undefined {
  let s: AnySchema | undefined = root;
  for (const p of path) {
    if (!s) return undefined;
    const u = unwrap(s);
    const d = def(u);
    if (d.type === 'object') s = (d.shape as Record<string, AnySchema>)[String(p)];
    else if (d.type === 'array') s = d.element as AnySchema;
    else if (d.type === 'record') s = d.valueType as AnySchema;
    else if (d.type === 'union') {
      // The first alternative the path leads into (a pin: a list, or a mapping with addresses).
      s = (d.options as AnySchema[]).map((o) => schemaAt(o, [p])).find(Boolean);
    } else return undefined;
  }
  return s;
}

/** The keys a mapping at `path` accepts. */
function knownKeys(root: AnySchema, path: readonly PropertyKey[]): string[] {
  const s = schemaAt(root, path);
  if (!s) return [];
  const u = unwrap(s);
  const d = def(u);
  if (d.type === 'object') return Object.keys(d.shape as object);
  if (d.type === 'union') return (d.options as AnySchema[]).flatMap((o) => (def(unwrap(o)).type === 'object' ? Object.keys(def(unwrap(o)).shape as object) : []));
  return [];
}

/** The default value at `path`, when the schema has one. */
function defaultAt(root: AnySchema, path: readonly PropertyKey[]): unknown {
  let s = schemaAt(root, path);
  while (s) {
    const d = def(s);
    if (d.type === 'default') return typeof d.defaultValue === 'function' ? (d.defaultValue as () => unknown)() : d.defaultValue;
    if (d.type === 'optional' || d.type === 'prefault' || d.type === 'nullable') s = d.innerType as AnySchema;
    else return undefined;
  }
  return undefined;
}

/** A number's bounds and whether it must be whole, as written in the schema. */
function numberShape(root: AnySchema, path: readonly PropertyKey[]): { int: boolean; min: number | null; max: number | null } | undefined {
  const s = schemaAt(root, path);
  if (!s) return undefined;
  let w = unwrap(s);
  // A number or a word (workers: N or "auto"): the number's bounds.
  if (def(w).type === 'union') w = (def(w).options as AnySchema[]).map(unwrap).find((o) => def(o).type === 'number') ?? w;
  const u = w as unknown as { minValue?: number | null; maxValue?: number | null; isInt?: boolean; _zod: { def: { type: string } } };
  if (u._zod.def.type !== 'number') return undefined;
  const min = u.minValue ?? null;
  const max = u.maxValue ?? null;
  return { int: !!u.isInt, min: Number.isFinite(min) ? min : null, max: Number.isFinite(max) ? max : null };
}

function expectedNumber(n: { int: boolean; min: number | null; max: number | null }): string {
  const what = n.int ? 'a whole number' : 'a number';
  if (n.min !== null && n.max !== null) return `${what} from ${n.min} to ${n.max}`;
  if (n.min !== null) return `${what} of at least ${n.min}`;
  if (n.max !== null) return `${what} of at most ${n.max}`;
  return what;
}

/** zod's type names, in the words of a config file. */
const MAPPING = 'a mapping (key: value)';
const TYPE_WORDS: Record<string, string> = { number: 'a number', int: 'a whole number', string: 'a text', boolean: 'true or false', array: 'a list', object: MAPPING, record: MAPPING };

function example(path: readonly PropertyKey[], value: unknown): string {
  if (value === undefined || (typeof value === 'object' && value !== null && !Array.isArray(value))) return '';
  const last = path[path.length - 1];
  if (typeof last !== 'string') return '';
  return ` (the default: ${last}: ${JSON.stringify(value)})`;
}

/** One configuration problem in words: key, found, expected, fix. */
export function describeIssue(root: AnySchema, issue: z.core.$ZodIssue): string {
  const where = keyPath(issue.path);
  const input = (issue as { input?: unknown }).input;
  switch (issue.code) {
    case 'unrecognized_keys': {
      const keys = knownKeys(root, issue.path);
      return issue.keys
        .map((k) => {
          const at = keyPath([...issue.path, k]);
          const guess = closest(k, keys);
          const fix = guess ? `did you mean "${guess}"?` : keys.length ? `known keys here: ${keys.join(', ')}` : 'remove it';
          return `${at}: unknown key; ${fix}`;
        })
        .join('; ');
    }
    case 'invalid_type': {
      const num = numberShape(root, issue.path);
      const expected = num ? expectedNumber(num) : (TYPE_WORDS[issue.expected] ?? issue.expected);
      if (input === undefined) return `${where}: missing; expected ${expected}`;
      let fix = example(issue.path, defaultAt(root, issue.path));
      if (issue.expected === 'array' && typeof input === 'string') fix = `; write it as a list: ${keyName(issue.path)}: ["${input}"]`;
      return `${where}: found ${describeValue(input)}; expected ${expected}${fix}`;
    }
    case 'too_small':
    case 'too_big': {
      const num = numberShape(root, issue.path);
      if (num) return `${where}: found ${describeValue(input)}; expected ${expectedNumber(num)}${example(issue.path, defaultAt(root, issue.path))}`;
      if (issue.origin === 'array') {
        const n = Number(issue.code === 'too_small' ? (issue as { minimum: number | bigint }).minimum : (issue as { maximum: number | bigint }).maximum);
        return `${where}: found ${describeValue(input)}; expected ${issue.code === 'too_small' ? 'at least' : 'at most'} ${n} entr${n === 1 ? 'y' : 'ies'}${issue.code === 'too_small' ? ' (leave the key out for the default)' : ''}`;
      }
      if (issue.origin === 'string') {
        const n = Number(issue.code === 'too_small' ? (issue as { minimum: number | bigint }).minimum : (issue as { maximum: number | bigint }).maximum);
        return `${where}: found ${describeValue(input)}; expected ${issue.code === 'too_small' ? (n === 1 ? 'a text that is not empty' : `at least ${n} characters`) : `at most ${n} characters`}`;
      }
      const bound = Number(issue.code === 'too_small' ? (issue as { minimum: number | bigint }).minimum : (issue as { maximum: number | bigint }).maximum);
      return `${where}: found ${describeValue(input)}; expected ${issue.code === 'too_small' ? 'at least' : 'at most'} ${bound}`;
    }
    case 'invalid_value': {
      const values = issue.values.map(String);
      const guess = typeof input === 'string' ? closest(input, values) : undefined;
      return `${where}: found ${describeValue(input)}; expected one of ${values.join(', ')}${guess ? `; did you mean "${guess}"?` : ''}`;
    }
    case 'invalid_union': {
      // The schema words what the alternatives are (its `error`); else list what each wanted.
      const custom = issue.message && !/^Invalid input/.test(issue.message) ? issue.message.replace(/^expected /, '') : undefined;
      const expected = custom ?? alternatives(root, issue.path) ?? 'another form of value';
      return `${where}: found ${describeValue(input)}; expected ${expected}`;
    }
    case 'invalid_key':
      // A bad key of a mapping (a pin's or a forward rule's domain, a group name): say why.
      return `${where}: ${issue.issues.map((i) => i.message).join('; ') || issue.message}`;
    case 'invalid_format':
      return `${where}: found ${describeValue(input)}; expected ${issue.format}`;
    default: {
      // Our own checks (superRefine): the message says what is wrong; put the value in front when it does not.
      const msg = issue.message;
      if (typeof input === 'string' && /^(is|must|has) /.test(msg)) return `${where}: "${input}" ${msg}`;
      return `${where}: ${msg}`;
    }
  }
}

/** "a list, or a mapping with addresses, ttl, verify": what each alternative of a union at `path` takes. */
function alternatives(root: AnySchema, path: readonly PropertyKey[]): string | undefined {
  const s = schemaAt(root, path);
  if (!s) return undefined;
  const u = unwrap(s);
  if (def(u).type !== 'union') return undefined;
  const words = (def(u).options as AnySchema[]).map((o) => {
    const d = def(unwrap(o));
    if (d.type === 'object') return `a mapping with ${Object.keys(d.shape as object).join(', ')}`;
    if (d.type === 'array') return 'a list';
    if (d.type === 'literal') return (d.values as unknown[]).map((v) => JSON.stringify(v)).join(' or ');
    return TYPE_WORDS[d.type] ?? d.type;
  });
  return words.join(', or ');
}

function keyName(path: readonly PropertyKey[]): string {
  const last = path[path.length - 1];
  return typeof last === 'string' ? last : keyPath(path);
}

/**
 * A YAML syntax error: the reason, the line (after the one before it) and a caret under the column, e.g.
 *   dohd.yaml: not valid YAML at line 2, column 1: Flow sequence in block collection must be ... end with a ]
 *     1 | listen: [127.0.0.1:53
 *     2 |
 *       | ^
 */
export function yamlErrorMessage(file: string, text: string, reason: string, line: number | undefined, col: number | undefined): string {
  // yaml's own message carries "at line L, column C:" plus its context; keep only the reason.
  const why = reason.split('\n')[0]!.replace(/ at line \d+, column \d+:?\s*$/, '').trim();
  if (!line) return `${file}: not valid YAML: ${why}`;
  const lines = text.split(/\r?\n/);
  const width = String(line).length;
  const show = (n: number) => `  ${String(n).padStart(width)} | ${lines[n - 1] ?? ''}`;
  const caret = `  ${' '.repeat(width)} | ${' '.repeat(Math.max(0, (col ?? 1) - 1))}^`;
  // The line before gives context (YAML often notices a problem only on the next line).
  const context = line > 1 ? [show(line - 1), show(line)] : [show(line)];
  return [`${file}: not valid YAML at line ${line}, column ${col ?? 1}: ${why}`, ...context, caret].join('\n');
}
