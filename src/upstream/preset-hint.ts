/**
 * The default upstreams never fall back to another country's resolvers on their own. When
 * every one of them is out (taken out by health) and the last failure looks like blocking, dohd
 * says once, in the log, that the `cn` preset exists and why it would help.
 */
import type { Logger } from 'pino';
import { CN_HINT, PRESETS } from '../config/presets.js';
import type { UpstreamError } from './errors.js';
import type { UpstreamObserver } from './strategies/strategy.js';
import type { Upstream } from './types.js';

/** Whether these upstreams are (a subset of) the `default` preset's providers. */
export function usesDefaultPreset(upstreams: readonly { url: string }[]): boolean {
  const urls = new Set(PRESETS.default!.providers.map((p) => p.url));
  return upstreams.length > 0 && upstreams.every((u) => urls.has(u.url));
}

export class PresetHint implements UpstreamObserver {
  private said = false;

  constructor(
    private readonly log: Logger,
    /** True while every default upstream is out. */
    private readonly allDown: () => boolean,
    /** Whether the configured upstreams are the default preset's (re-read on reload). */
    private readonly applies: () => boolean,
  ) {}

  success(): void {}

  failure(u: Upstream, err: UpstreamError): void {
    if (this.said || !this.applies() || !this.allDown()) return;
    this.said = true;
    this.log.warn({ upstream: u.name, reason: err.reason, hint: CN_HINT }, "every default upstream is out: if this network blocks Cloudflare and Google, the 'cn' preset may help");
  }
}
