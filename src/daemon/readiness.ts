/**
 * Whether the daemon is ready (`/readyz`, the systemd READY=1 wait of `dohd`): listening, able
 * to answer, no forwarding loop.
 */
import dnsPacket from 'dns-packet';
import { formatHostPort } from '../config/address.js';
import { decodeQuery } from '../dns/message.js';
import { buildUpstreamQuery } from '../dns/upstream-query.js';
import type { Readiness } from '../server/admin.js';
import type { Daemon } from './daemon.js';

export class ReadinessCheck {
  private probing: Promise<void> | null = null;

  constructor(private readonly d: Daemon) {}

  /**
   * Ready when listening and able to answer: an upstream has answered, or pins are loaded,
   * and no forwarding loop was found. When no upstream has answered yet, one probe query
   * (". NS") is sent through the upstreams and awaited (bounded by timeoutMs), so readiness
   * does not wait for client traffic.
   */
  async check(): Promise<Readiness> {
    const d = this.d;
    if (d.draining || d.stopped) return { ready: false, detail: 'shutting down' };
    const pending = d.pending;
    if (d.listeners.length === 0) return { ready: false, detail: pending.size ? `waiting for ${[...pending.keys()].join(', ')} to appear` : 'not listening' };
    const listening =
      `listening on ${d.listeners.map((l) => formatHostPort(l.address)).join(', ')}` +
      (pending.size ? ` (waiting for ${[...pending.keys()].join(', ')} to appear)` : '');
    const loop = d.loopGuard.status();
    if (!d.loopGuard.ok) {
      return { ready: false, detail: `${listening}; forwarding loop through ${loop.loops.map((l) => l.upstream).join(', ')} (see the log)` };
    }
    const pins = Object.keys(d.config.pins).length;
    const answeredNow = () => d.upstreams.filter((u) => d.reporter.answered.has(u.name)).map((u) => u.name);
    let answered = answeredNow();
    if (answered.length === 0) {
      // With pins loaded dohd can answer already: probe in the background, do not wait.
      const probe = this.probeUpstreams();
      if (pins === 0) {
        await probe;
        answered = answeredNow();
      }
    }
    if (answered.length > 0) return { ready: true, detail: `${listening}; upstream ${answered.join(', ')} answering` };
    if (pins > 0) return { ready: true, detail: `${listening}; no upstream has answered yet, ${pins} pins loaded` };
    return { ready: false, detail: `${listening}; no upstream has answered yet (see the log for why)` };
  }

  /** One ". NS" query through the default group; concurrent callers share it. */
  private probeUpstreams(): Promise<void> {
    this.probing ??= (async () => {
      const decoded = decodeQuery(
        dnsPacket.encode({ type: 'query', id: 0, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name: '.', type: 'NS', class: 'IN' }] }),
      );
      if (!decoded.ok) return;
      const ac = new AbortController();
      const timer = setTimeout(() => ac.abort(), this.d.config.timeoutMs);
      try {
        await this.d.groups.defaultStrategy.resolve(buildUpstreamQuery(decoded.query), decoded.query, ac.signal);
      } catch {
        /* the reporter has logged why */
      } finally {
        clearTimeout(timer);
        this.probing = null;
      }
    })();
    return this.probing;
  }
}
