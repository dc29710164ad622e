// What the protocol framers report: one record per completed request/response exchange, and errors.
// Records hold the raw path in memory only; the aggregator templates it before anything is exported.

export interface ExchangeRecord {
  method: string;
  /** The raw request target (origin-form path + query, or absolute-form). Never exported as is. */
  target: string;
  /** Final status code; 0 when the exchange failed before a response. */
  status: number;
  /** `1.0`, `1.1` or `2` (OpenTelemetry network.protocol.version). */
  protocolVersion: string;
  /** performance.now() ms: first request byte, first response byte (NaN if none), last response byte. */
  requestStart: number;
  responseStart: number;
  end: number;
  requestBodyBytes: number;
  responseBodyBytes: number;
}

/** Why an exchange or a whole connection stopped being observed. Each value is a metric label. */
export type ObserveErrorKind =
  | 'malformed_request'
  | 'malformed_response'
  | 'header_too_large'
  | 'unexpected_response'
  | 'too_many_pending'
  | 'incomplete'
  | 'h2_protocol'
  | 'hpack'
  | 'stream_reset';

/** Errors that end observation of the whole connection (the relay is unaffected). */
export const fatalObserveErrors: ReadonlySet<ObserveErrorKind> = new Set([
  'malformed_request',
  'malformed_response',
  'header_too_large',
  'unexpected_response',
  'too_many_pending',
  'h2_protocol',
  'hpack',
]);

export interface ExchangeSink {
  exchange(record: ExchangeRecord): void;
  error(kind: ObserveErrorKind): void;
}
