/** Why one upstream exchange failed; these codes are stable (logs and metrics use them). */
export type UpstreamFailure =
  | 'timeout'
  | 'aborted'
  | 'connect'
  | 'tls'
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

export class UpstreamError extends Error {
  override name = 'UpstreamError';
  constructor(
    readonly reason: UpstreamFailure,
    message: string,
    readonly retryable = false,
  ) {
    super(message);
  }
}
