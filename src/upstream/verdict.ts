/**
 * "Blocked", not "failed": what an upstream failure means for the user, and what to do about
 * it. The reasons come from the connection race (connect-race.ts); the words and fixes are
 * shared by the log, `dohd query --doh/--dot` and `dohd doctor`.
 */
import type { UpstreamError, UpstreamFailure } from './errors.js';

export interface Verdict {
  /** Short label: "blocked by SNI", "IP unreachable", "intercepted", ... */
  label: string;
  /** What to do. */
  fix: string;
}

const VERDICTS: Partial<Record<UpstreamFailure, Verdict>> = {
  ip_unreachable: {
    label: 'IP unreachable (this bootstrap IP drops packets while another of the provider connects)',
    fix: 'nothing urgent: dohd races the bootstrap IPs, so it costs 250 ms once per connection; leave the IP out of bootstrap to save that',
  },
  unreachable: {
    label: 'IP unreachable (packets dropped: no answer, no error)',
    fix: "another path to the same provider (an IP-literal DoH URL or DoT on 853: the 'alternates' of the presets), or the 'cn' preset in mainland China (upstreams: cn)",
  },
  blocked_sni: {
    label: 'blocked by SNI (the TLS handshake naming the provider was reset)',
    fix: "a path with no server name to filter (an IP-literal DoH URL such as https://1.1.1.1/dns-query), DoT on 853, or the 'cn' preset in mainland China (upstreams: cn)",
  },
  intercepted: {
    label: 'intercepted (the certificate is not the provider’s)',
    fix: "do not trust that certificate; use DoT on 853 or another provider (the 'cn' preset in mainland China); if it is your company's TLS inspection, add its CA with 'ca:'",
  },
  connect: {
    label: 'cannot connect (refused or no route)',
    fix: 'check the bootstrap IPs and the route to them (ip route get IP); try another path or provider',
  },
};

/** The verdict of a failure, or null for failures that are not about the path (timeouts, bad answers). */
export function verdictOf(reason: UpstreamFailure): Verdict | null {
  return VERDICTS[reason] ?? null;
}

/** One line: the verdict and its detail (for logs). */
export function describeFailure(err: UpstreamError): string {
  const v = verdictOf(err.reason);
  return v ? `${v.label}: ${err.message}` : `${err.reason}: ${err.message}`;
}
