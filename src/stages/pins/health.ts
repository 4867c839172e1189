/**
 * Pins that heal: for every pin marked `verify: true`, each address is probed every
 * `intervalMs` with a TLS handshake for the pinned name (stages/pins/verify.ts). An address that
 * fails is withheld from answers until a probe succeeds again; when every address of a
 * name fails, the name is answered from the upstreams instead. Transitions are logged;
 * `state()` exposes every probe's result (metrics, doctor).
 */
import type { Logger } from 'pino';
import type { Pin } from './stage.js';
import { probeCa, probeTls, type TlsProbeOptions } from './verify.js';

export interface PinProbeState {
  name: string;
  address: string;
  up: boolean;
  checks: number;
  consecutiveFailures: number;
  /** Date.now() of the last finished probe. */
  lastCheck?: number;
  lastError?: string;
  lastMs?: number;
}

export interface PinHealthOptions {
  port: number;
  intervalMs: number;
  timeoutMs: number;
  ca?: string;
  log?: Logger;
}

export class PinHealth {
  private readonly probes = new Map<string, PinProbeState[]>();
  private readonly namesDown = new Set<string>();
  private readonly tlsOpts: TlsProbeOptions;
  private timer: NodeJS.Timeout | null = null;
  private round: Promise<void> | null = null;
  private closed = false;
  rounds = 0;

  constructor(
    pins: Map<string, Pin>,
    private readonly opts: PinHealthOptions,
  ) {
    for (const [name, pin] of pins) {
      if (!pin.verify) continue;
      this.probes.set(
        name,
        [...pin.v4, ...pin.v6].map((address) => ({ name, address, up: true, checks: 0, consecutiveFailures: 0 })),
      );
    }
    const ca = probeCa(opts.ca);
    this.tlsOpts = { port: opts.port, timeoutMs: opts.timeoutMs, ...(ca ? { ca } : {}) };
  }

  /** Names being verified. */
  get names(): string[] {
    return [...this.probes.keys()];
  }

  /** Probes now and then every interval. */
  start(): void {
    if (this.probes.size === 0 || this.closed) return;
    void this.probeAll();
    this.timer = setInterval(() => void this.probeAll(), this.opts.intervalMs);
    this.timer.unref();
  }

  /** One round over every verified address (a round still running is not doubled). */
  probeAll(): Promise<void> {
    this.round ??= (async () => {
      const all = [...this.probes.values()].flat();
      await Promise.all(all.map((s) => this.probeOne(s)));
      this.rounds++;
      for (const name of this.probes.keys()) this.updateName(name);
    })().finally(() => {
      this.round = null;
    });
    return this.round;
  }

  private async probeOne(s: PinProbeState): Promise<void> {
    const r = await probeTls(s.address, s.name, this.tlsOpts);
    if (this.closed) return;
    s.checks++;
    s.lastCheck = Date.now();
    if (r.ok) {
      s.lastMs = Math.round(r.ms);
      s.consecutiveFailures = 0;
      delete s.lastError;
      if (!s.up) {
        s.up = true;
        this.opts.log?.info({ name: s.name, address: s.address }, 'pinned address verified again');
      }
    } else {
      s.consecutiveFailures++;
      s.lastError = r.error;
      if (s.up) {
        s.up = false;
        this.opts.log?.warn({ name: s.name, address: s.address, port: this.opts.port, err: r.error }, 'pinned address fails verification; withheld');
      }
    }
  }

  private updateName(name: string): void {
    const list = this.probes.get(name)!;
    const down = list.every((s) => !s.up);
    if (down && !this.namesDown.has(name)) {
      this.namesDown.add(name);
      this.opts.log?.warn({ name, addresses: list.map((s) => s.address) }, 'every pinned address fails verification; answering from the upstreams');
    } else if (!down && this.namesDown.delete(name)) {
      this.opts.log?.info({ name, addresses: list.filter((s) => s.up).map((s) => s.address) }, 'pinned addresses verified again; answering from the pin');
    }
  }

  /** The pin with failed addresses withheld; null when every address failed (ask upstream). */
  live(lname: string, pin: Pin): Pin | null {
    const list = this.probes.get(lname);
    if (!list) return pin;
    const down = new Set(list.filter((s) => !s.up).map((s) => s.address));
    if (down.size === 0) return pin;
    if (down.size === list.length) return null;
    return { ...pin, v4: pin.v4.filter((a) => !down.has(a)), v6: pin.v6.filter((a) => !down.has(a)) };
  }

  state(): PinProbeState[] {
    return [...this.probes.values()].flat().map((s) => ({ ...s }));
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
