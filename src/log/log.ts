/**
 * Logs on stdout: start-up, upstream trouble, shutdown. Nothing per query at info.
 *
 * Two formats (`log.format`): `json`, pino's JSON lines, for files and pipes; `text`, one
 * line per event for people, prefixed with its syslog priority (`<3>` error, `<4>` warning,
 * `<6>` info, `<7>` debug), which journald reads as the line's priority, so that
 * `journalctl -u dohd -p warning` filters. `auto` is `text` when stdout is the journal
 * (`$JOURNAL_STREAM` names stdout's device and inode, as systemd sets it), `json` otherwise.
 */
import { fstatSync } from 'node:fs';
import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

export type LogFormat = 'json' | 'text' | 'auto';

/** syslog priority per pino level (sd-daemon(3) prefixes). */
const PRIORITY: Record<string, number> = { fatal: 2, error: 3, warn: 4, info: 6, debug: 7, trace: 7 };

/** Fields every line has in JSON; the text line carries them otherwise (priority) or not at all (the journal stamps time and pid). */
const SKIP = new Set(['level', 'time', 'pid', 'name', 'msg']);

function textValue(v: unknown): string {
  if (typeof v === 'string') return v !== '' && !/[\s"=\\]/.test(v) ? v : JSON.stringify(v);
  if (v && typeof v === 'object' && 'message' in v && typeof (v as { message: unknown }).message === 'string') {
    // An error (pino's err serializer): its message; the stack is for `log.format: json`.
    return JSON.stringify((v as { message: string }).message);
  }
  return JSON.stringify(v) ?? String(v);
}

/** One JSON log line as one human line: `<PRIORITY>message key=value ...`. */
export function textLine(json: string): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith('\n') ? json : `${json}\n`;
  }
  const prio = PRIORITY[String(o.level)] ?? 6;
  let line = `<${prio}>${typeof o.msg === 'string' ? o.msg.replace(/\n/g, ' ') : ''}`;
  for (const [k, v] of Object.entries(o)) {
    if (SKIP.has(k) || v === undefined) continue;
    line += ` ${k}=${textValue(v)}`;
  }
  return `${line}\n`;
}

/** Is file descriptor `fd` the journal stream systemd connected (`$JOURNAL_STREAM` = "DEVICE:INODE")? */
export function isJournalStream(env: NodeJS.ProcessEnv = process.env, fd = 1): boolean {
  const js = env.JOURNAL_STREAM;
  if (!js) return false;
  const [dev, ino] = js.split(':');
  try {
    const st = fstatSync(fd, { bigint: true });
    return String(st.dev) === dev && String(st.ino) === ino;
  } catch {
    return false;
  }
}

/** `auto` made concrete for a destination: text only when it is stdout and stdout is the journal. */
export function resolveFormat(format: LogFormat, toStdout: boolean, env: NodeJS.ProcessEnv = process.env): 'json' | 'text' {
  if (format !== 'auto') return format;
  return toStdout && isJournalStream(env) ? 'text' : 'json';
}

/** pino writes JSON lines here; in text mode they are rewritten on the way out. */
class FormatSink {
  constructor(
    private readonly out: { write(s: string): unknown },
    readonly toStdout: boolean,
    public mode: 'json' | 'text',
  ) {}

  write(s: string): void {
    this.out.write(this.mode === 'text' ? textLine(s) : s);
  }
}

export function createLogger(level: LevelWithSilent = 'info', destination?: NodeJS.WritableStream, format: LogFormat = 'auto'): Logger {
  const out = destination ?? pino.destination({ dest: 1, sync: true });
  const sink = new FormatSink(out, !destination, resolveFormat(format, !destination));
  return pino(
    {
      name: 'dohd',
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    sink,
  );
}

/** Switches the format of a logger made by createLogger (and its children), e.g. on reload. */
export function setLogFormat(log: Logger, format: LogFormat): void {
  // Children share their parent's stream.
  const sink = (log as unknown as Record<symbol, unknown>)[pino.symbols.streamSym];
  if (sink instanceof FormatSink) sink.mode = resolveFormat(format, sink.toStdout);
}

/**
 * Writes an error for people to stderr (a one-line reason, or a stack). When stderr is the
 * journal, every line is marked `<3>` (error), so `journalctl -p err` shows why dohd stopped.
 */
export function writeError(text: string, env: NodeJS.ProcessEnv = process.env): void {
  const mark = isJournalStream(env, 2) ? '<3>' : '';
  process.stderr.write(`${text.split('\n').map((l) => mark + l).join('\n')}\n`);
}
