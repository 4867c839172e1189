/**
 * An /etc/hosts-style file (`IP name [alias...]`, `#` comments), kept in memory and reloaded
 * when it changes. The directory is watched (editors replace the file by renaming a new
 * one over it, which a watch on the file itself would miss) and the file is also polled,
 * in case the watch misses something (network file systems, bind mounts, ConfigMaps).
 */
import { readFileSync, statSync, watch, type FSWatcher } from 'node:fs';
import { isIP } from 'node:net';
import { dirname } from 'node:path';
import ipaddr from 'ipaddr.js';
import type { Logger } from 'pino';

/** One line of a hosts file: its address (a scoped one without its `%zone`), its names lower-cased without a final dot. */
export interface HostsLine {
  address: string;
  /** The `%zone` of a scoped address (fe80::1%eth0), which DNS cannot say. */
  zone?: string;
  names: string[];
  /** 1-based. */
  line: number;
}

/** The one hosts-file parser: the lines with an IP address and at least one name; comments and junk skipped. */
export function parseHosts(text: string): HostsLine[] {
  const out: HostsLine[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*$/, '').trim();
    if (!line) return;
    const [written, ...names] = line.split(/\s+/);
    if (!written || names.length === 0) return;
    const pct = written.indexOf('%');
    const address = pct < 0 ? written : written.slice(0, pct);
    if (isIP(address) === 0) return;
    const entry: HostsLine = { address, names: names.map((n) => n.toLowerCase().replace(/\.$/, '')), line: i + 1 };
    if (pct >= 0) entry.zone = written.slice(pct + 1);
    out.push(entry);
  });
  return out;
}

/** A name's addresses in the table. */
export interface HostAddresses {
  v4: string[];
  v6: string[];
}

export interface HostsTable {
  names: Map<string, HostAddresses>;
  /** Reverse name (`4.3.2.1.in-addr.arpa`) → host names, first one canonical. */
  reverse: Map<string, string[]>;
}

const MAX_FILE_BYTES = 64 * 2 ** 20;

export function reverseName(ip: string): string {
  const a = ipaddr.parse(ip);
  if (a.kind() === 'ipv4') return `${a.toByteArray().reverse().join('.')}.in-addr.arpa`;
  const nibbles: string[] = [];
  for (const b of a.toByteArray()) nibbles.push((b >> 4).toString(16), (b & 15).toString(16));
  return `${nibbles.reverse().join('.')}.ip6.arpa`;
}

/** The in-memory table the hosts stage answers from. */
export function hostsTable(text: string): HostsTable {
  const names = new Map<string, HostAddresses>();
  const reverse = new Map<string, string[]>();
  for (const { address: ip, zone, names: hosts } of parseHosts(text)) {
    // A scoped address (fe80::1%eth0) cannot be said in DNS.
    if (zone !== undefined) continue;
    const family = isIP(ip);
    const addr = family === 6 ? ipaddr.parse(ip).toString() : ip;
    for (const name of hosts) {
      if (!name || name.length > 253) continue;
      let e = names.get(name);
      if (!e) names.set(name, (e = { v4: [], v6: [] }));
      const list = family === 4 ? e.v4 : e.v6;
      if (!list.includes(addr)) list.push(addr);
      const rev = reverseName(addr);
      let r = reverse.get(rev);
      if (!r) reverse.set(rev, (r = []));
      if (!r.includes(name)) r.push(name);
    }
  }
  return { names, reverse };
}

export interface HostsFileOptions {
  pollMs: number;
  log?: Logger;
}

export class HostsFile {
  table: HostsTable = { names: new Map(), reverse: new Map() };
  /** Times the file was (re)loaded. */
  loads = 0;
  private stamp = '';
  private watcher: FSWatcher | null = null;
  private poll: NodeJS.Timeout | null = null;
  private debounce: NodeJS.Timeout | null = null;

  constructor(
    readonly file: string,
    private readonly opts: HostsFileOptions,
  ) {}

  /** Loads the file and starts watching it. */
  start(): void {
    this.check();
    try {
      // Any event in the directory, not only the file's name: a Kubernetes ConfigMap swaps a
      // `..data` symlink instead. A check is one stat; `soon` coalesces bursts.
      this.watcher = watch(dirname(this.file), { persistent: false }, () => this.soon());
      this.watcher.on('error', () => {
        this.watcher?.close();
        this.watcher = null;
      });
    } catch {
      this.watcher = null; // polling still works
    }
    this.poll = setInterval(() => this.check(), this.opts.pollMs);
    this.poll.unref();
  }

  private soon(): void {
    if (this.debounce) return;
    this.debounce = setTimeout(() => {
      this.debounce = null;
      this.check();
    }, 50);
    this.debounce.unref();
  }

  /** Reloads when the file's identity, size or modification time changed. */
  check(): void {
    let stamp: string;
    let size: number;
    try {
      const st = statSync(this.file);
      stamp = `${st.ino}:${st.size}:${st.mtimeMs}`;
      size = st.size;
    } catch (err) {
      if (this.stamp !== 'missing') {
        this.stamp = 'missing';
        this.table = { names: new Map(), reverse: new Map() };
        this.opts.log?.warn({ file: this.file, err: (err as NodeJS.ErrnoException).code }, 'hosts file unreadable; answering without it');
      }
      return;
    }
    if (stamp === this.stamp) return;
    try {
      if (size > MAX_FILE_BYTES) throw new Error(`larger than ${MAX_FILE_BYTES} bytes`);
      this.table = hostsTable(readFileSync(this.file, 'utf8'));
      this.stamp = stamp;
      this.loads++;
      this.opts.log?.info({ file: this.file, names: this.table.names.size }, 'hosts file loaded');
    } catch (err) {
      this.stamp = stamp;
      this.opts.log?.warn({ file: this.file, err: (err as Error).message }, 'hosts file unreadable; keeping the previous contents');
    }
  }

  close(): void {
    this.watcher?.close();
    this.watcher = null;
    if (this.poll) clearInterval(this.poll);
    if (this.debounce) clearTimeout(this.debounce);
    this.poll = this.debounce = null;
  }
}
