/**
 * yargs reports unknown flags by its parsed names ("Unknown arguments: such-flag, suchFlag" for
 * `--no-such-flag`). This rewrites them as the user typed them, with the closest known flag
 * or command: `unknown option --no-such-flag`, `unknown option --listn; did you mean --listen?`.
 */
import { closest } from '../config/messages.js';

const camel = (s: string) => s.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/**
 * @param msg yargs' message ("Unknown argument: x" / "Unknown arguments: x, y")
 * @param argv the command line as typed (without node and the script)
 * @param knownFlags the flags of the command that failed (yargs' option keys)
 * @param commands the command names, for an unknown word where a command belongs
 * @returns the rewritten message, or undefined when `msg` is not about unknown arguments
 */
export function explainUnknownArguments(msg: string, argv: readonly string[], knownFlags: readonly string[], commands: readonly string[]): string | undefined {
  const m = /^Unknown arguments?: (.*)$/.exec(msg);
  if (!m) return undefined;
  const unknown = new Set(m[1]!.split(', ').map((s) => s.trim()));
  const flags = knownFlags.filter((f) => f.length > 1 && !f.includes('$'));
  const out: string[] = [];
  const seen = new Set<string>();
  const endOfFlags = argv.indexOf('--');
  const typed = endOfFlags >= 0 ? argv.slice(0, endOfFlags) : argv;
  for (const tok of typed) {
    if (!tok.startsWith('-') || tok === '-') continue;
    const flag = tok.split('=')[0]!;
    const name = flag.replace(/^-+/, '');
    const forms = [name, camel(name)];
    if (name.startsWith('no-')) forms.push(name.slice(3), camel(name.slice(3)));
    // Single-dash groups (-xyz) are letters, each its own flag.
    if (!flag.startsWith('--') && name.length > 1) forms.push(...name.split(''));
    if (!forms.some((f) => unknown.has(f)) || seen.has(flag)) continue;
    seen.add(flag);
    forms.forEach((f) => unknown.delete(f));
    const guess = closest(name.replace(/^no-/, ''), flags);
    out.push(`unknown option ${flag}${guess ? `; did you mean --${guess}?` : ''}`);
  }
  // What is left was not typed as a flag: a word where a command (or nothing) belongs.
  for (const word of unknown) {
    if (word !== camel(word) && unknown.has(camel(word))) unknown.delete(camel(word));
  }
  for (const word of unknown) {
    if (!argv.includes(word)) continue;
    const guess = closest(word, commands);
    out.push(`unexpected argument "${word}"${guess ? `; did you mean the command "${guess}"?` : ''}`);
  }
  return out.length ? out.join('; ') : undefined;
}
