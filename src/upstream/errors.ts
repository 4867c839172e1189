/** Why one upstream exchange failed; these codes are stable (logs and metrics use them). */
export type UpstreamFailure =
  | 'timeout'
  | 'aborted'
  | 'connect'
  | 'tls'
  /** Every bootstrap IP dropped the connection attempt silently (a black hole). */
  | 'unreachable'
  /** One bootstrap IP gave nothing while another connected (counted in metrics; the query itself went on). */
  | 'ip_unreachable'
  /** TCP connected, then the handshake naming the server was reset (an SNI filter). */
  | 'blocked_sni'
  /** The certificate does not chain to a trusted CA, or names someone else. */
  | 'intercepted'
  | 'reset'
  | 'goaway'
  | 'http_status'
  | 'content_type'
  | 'oversized'
  | 'malformed'
  | 'wrong_question'
  | 'servfail'
  | 'refused'
  | 'overloaded'
  | 'loop'
  | 'other';

/** Socket errors that say the address cannot be reached at all (no route, nothing listening): a `connect` failure. */
export const UNREACHABLE_CODES: ReadonlySet<string> = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);

/**
 * An upstream exchange's outcome, not a bug: it carries no stack trace. Capturing one cost
 * more than the rest of a cancelled request (every race cancels its losers), and logs and
 * metrics only ever use `reason` and `message`.
 */
export class UpstreamError extends Error {
  override readonly name = 'UpstreamError';
  readonly reason: UpstreamFailure;
  readonly retryable: boolean;
  constructor(reason: UpstreamFailure, message: string, retryable = false) {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(message);
    Error.stackTraceLimit = limit;
    this.reason = reason;
    this.retryable = retryable;
  }
}

/** What an exchange failed with, as an UpstreamError (anything else thrown is `other`). */
export function asUpstreamError(err: unknown): UpstreamError {
  return err instanceof UpstreamError ? err : new UpstreamError('other', String(err));
}

/**
 * Every upstream of a group failed: the last failure, named after its upstream, and whether
 * all of them timed out (for the Extended DNS Error of dohd's SERVFAIL, dns/ede.ts).
 */
export class GroupFailure extends UpstreamError {
  constructor(
    last: UpstreamError,
    readonly upstream: string,
    readonly allTimedOut: boolean,
  ) {
    super(last.reason, last.message, last.retryable);
  }
}

/** What a request cancelled by dohd itself (a race won elsewhere, the deadline) fails with. */
export const CANCELLED_EXCHANGE = new UpstreamError('aborted', 'cancelled');
