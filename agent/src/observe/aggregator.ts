// In-memory aggregation of exchanges into Prometheus-style cumulative series, with bounded cardinality:
// at most `maxRoutesPerServer` distinct routes per server (then `{overflow}`) and `maxServers` servers.
// Exporters read `families()`; the raw target never enters a label, only the templated route.
import type { ExchangeRecord, ObserveErrorKind } from './exchange';
import type { ConnectionInfo } from './observer';
import { RouteTemplater, type RouteRule } from './route';

export const overflowLabel = '{overflow}';

/** OpenTelemetry's recommended duration buckets (seconds). */
export const durationBuckets: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];
export const sizeBuckets: readonly number[] = [100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000];

export class Histogram {
  readonly counts: Float64Array; // per bucket, not cumulative
  sum = 0;
  count = 0;

  constructor(readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length);
  }

  observe(v: number): void {
    this.sum += v;
    this.count++;
    const b = this.bounds;
    for (let k = 0; k < b.length; k++) {
      if (v <= b[k]!) {
        this.counts[k]!++;
        return;
      }
    }
  }
}

export interface Series<V> {
  labels: readonly string[];
  value: V;
}

export interface CounterFamily {
  type: 'counter';
  name: string;
  help: string;
  labelNames: readonly string[];
  series: Map<string, Series<number>>;
}

export interface HistogramFamily {
  type: 'histogram';
  name: string;
  help: string;
  labelNames: readonly string[];
  bounds: readonly number[];
  series: Map<string, Series<Histogram>>;
}

export type MetricFamily = CounterFamily | HistogramFamily;

export interface ExchangeSeries {
  duration: Histogram;
  timeToFirstByte: Histogram;
  requestBodySize: Histogram;
  responseBodySize: Histogram;
  byClass: Series<number>;
}

export interface AggregatorOptions {
  routeRules?: readonly RouteRule[];
  maxRoutesPerServer: number;
  maxServers?: number;
  /** Label combinations of the per-exchange histograms; beyond it server and route fold into `{overflow}`. */
  maxExchangeSeries?: number;
}

const exchangeLabels = [
  'server_address',
  'server_port',
  'http_request_method',
  'http_response_status_code',
  'http_route',
  'network_protocol_version',
] as const;

// Methods outside this list are reported as `_OTHER`, as the semantic conventions say.
const knownMethods = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH', 'QUERY']);

export class Aggregator {
  readonly templater: RouteTemplater;
  private readonly maxRoutesPerServer: number;
  private readonly maxServers: number;
  private readonly maxExchangeSeries: number;
  private readonly routesByServer = new Map<string, Set<string>>();
  /** All series one exchange updates, by its label key: one lookup per exchange on the hot path. */
  private readonly exchangeSeries = new Map<string, ExchangeSeries>();

  readonly duration = histogramFamily('http_client_request_duration_seconds',
    'Duration of HTTP client requests observed by the agent (first request byte to last response byte).', exchangeLabels, durationBuckets);
  readonly timeToFirstByte = histogramFamily('epoch_agent_http_client_time_to_first_byte_seconds',
    'Time from the first request byte to the first response byte.', exchangeLabels, durationBuckets);
  readonly requestBodySize = histogramFamily('http_client_request_body_size_bytes',
    'Size of HTTP client request bodies (payload bytes, excluding headers and chunk framing).', exchangeLabels, sizeBuckets);
  readonly responseBodySize = histogramFamily('http_client_response_body_size_bytes',
    'Size of HTTP client response bodies (payload bytes, excluding headers and chunk framing).', exchangeLabels, sizeBuckets);
  readonly requestsByClass = counterFamily('epoch_agent_http_client_requests_total',
    'Completed HTTP exchanges by server and response status class.', ['server_address', 'http_response_status_class']);
  readonly errors = counterFamily('epoch_agent_http_client_errors_total',
    'Exchanges or connections that could not be observed to completion, by error type.', ['server_address', 'error_type']);
  readonly handshake = histogramFamily('epoch_agent_tls_handshake_duration_seconds',
    'Client-side TLS handshake time of intercepted connections.', ['server_address', 'tls_protocol_version'], durationBuckets);
  readonly overflowed = counterFamily('epoch_agent_observe_route_overflow_total',
    'Exchanges whose route was replaced by {overflow} because a server reached its distinct-route cap.', ['server_address']);

  constructor(options: AggregatorOptions) {
    this.templater = new RouteTemplater(options.routeRules ?? []);
    this.maxRoutesPerServer = options.maxRoutesPerServer;
    this.maxServers = options.maxServers ?? 1000;
    this.maxExchangeSeries = options.maxExchangeSeries ?? 2500;
  }

  families(): MetricFamily[] {
    return [this.duration, this.timeToFirstByte, this.requestBodySize, this.responseBodySize, this.requestsByClass, this.errors,
      this.handshake, this.overflowed];
  }

  recordConnection(info: ConnectionInfo): void {
    const server = this.server(info.serverAddress);
    const tls = info.tlsProtocol.replace(/^TLSv/, '');
    histogramSeries(this.handshake, [server, tls]).observe(info.handshakeMs / 1000);
  }

  recordExchange(info: ConnectionInfo, rec: ExchangeRecord, memo?: ExchangeMemo): void {
    // Keep-alive connections repeat the same exchange shape: reuse the series found last time on this connection.
    // Safe because series, admitted routes and servers are only ever added, so the same inputs give the same series.
    if (memo?.series && memo.target === rec.target && memo.method === rec.method && memo.status === rec.status && memo.version === rec.protocolVersion) {
      if (memo.overflowed) memo.overflowed.value++;
      observeExchange(memo.series, rec);
      return;
    }
    let overflowed: Series<number> | null = null;
    let server = this.server(info.serverAddress);
    let route = this.templater.route(rec.target);
    let routes = this.routesByServer.get(server);
    if (!routes) {
      routes = new Set();
      this.routesByServer.set(server, routes);
    }
    if (!routes.has(route)) {
      if (routes.size >= this.maxRoutesPerServer) {
        route = overflowLabel;
        overflowed = counterSeries(this.overflowed, [server]);
        overflowed.value++;
      } else {
        routes.add(route);
      }
    }
    const method = knownMethods.has(rec.method) ? rec.method : '_OTHER';
    let key = `${server}\u0000${info.serverPort}\u0000${method}\u0000${rec.status}\u0000${route}\u0000${rec.protocolVersion}`;
    let s = this.exchangeSeries.get(key);
    if (!s && this.exchangeSeries.size >= this.maxExchangeSeries) {
      // Memory bound across all servers: fold into one overflow server/route (method, status, version stay).
      if (route !== overflowLabel) {
        overflowed = counterSeries(this.overflowed, [server]);
        overflowed.value++;
      }
      server = overflowLabel;
      route = overflowLabel;
      key = `${server}\u0000${info.serverPort}\u0000${method}\u0000${rec.status}\u0000${route}\u0000${rec.protocolVersion}`;
      s = this.exchangeSeries.get(key);
    }
    if (!s) {
      const labels = [server, String(info.serverPort), method, String(rec.status), route, rec.protocolVersion];
      s = {
        duration: histogramSeries(this.duration, labels),
        timeToFirstByte: histogramSeries(this.timeToFirstByte, labels),
        requestBodySize: histogramSeries(this.requestBodySize, labels),
        responseBodySize: histogramSeries(this.responseBodySize, labels),
        byClass: counterSeries(this.requestsByClass, [server, `${Math.floor(rec.status / 100)}xx`]),
      };
      this.exchangeSeries.set(key, s);
    }
    observeExchange(s, rec);
    if (memo) {
      memo.target = rec.target;
      memo.method = rec.method;
      memo.status = rec.status;
      memo.version = rec.protocolVersion;
      memo.series = s;
      memo.overflowed = overflowed;
    }
  }

  recordError(info: ConnectionInfo, kind: ObserveErrorKind): void {
    counterSeries(this.errors, [this.server(info.serverAddress), kind]).value++;
  }

  private server(address: string): string {
    if (this.routesByServer.has(address) || this.routesByServer.size < this.maxServers) {
      if (!this.routesByServer.has(address)) this.routesByServer.set(address, new Set());
      return address;
    }
    return overflowLabel;
  }
}

/** Per-connection memo of the last exchange's series (see recordExchange). */
export interface ExchangeMemo {
  target: string;
  method: string;
  status: number;
  version: string;
  series: ExchangeSeries | null;
  /** The overflow counter that exchange incremented, if any: a repeat increments it again. */
  overflowed: Series<number> | null;
}

export function newExchangeMemo(): ExchangeMemo {
  return { target: '', method: '', status: 0, version: '', series: null, overflowed: null };
}

function observeExchange(s: ExchangeSeries, rec: ExchangeRecord): void {
  s.duration.observe(Math.max(0, (rec.end - rec.requestStart) / 1000));
  if (!Number.isNaN(rec.responseStart)) s.timeToFirstByte.observe(Math.max(0, (rec.responseStart - rec.requestStart) / 1000));
  s.requestBodySize.observe(rec.requestBodyBytes);
  s.responseBodySize.observe(rec.responseBodyBytes);
  s.byClass.value++;
}

function histogramFamily(name: string, help: string, labelNames: readonly string[], bounds: readonly number[]): HistogramFamily {
  return { type: 'histogram', name, help, labelNames, bounds, series: new Map() };
}

function counterFamily(name: string, help: string, labelNames: readonly string[]): CounterFamily {
  return { type: 'counter', name, help, labelNames, series: new Map() };
}

function histogramSeries(family: HistogramFamily, labels: string[]): Histogram {
  const key = labels.join('\u0000');
  let s = family.series.get(key);
  if (!s) {
    s = { labels, value: new Histogram(family.bounds) };
    family.series.set(key, s);
  }
  return s.value;
}

function counterSeries(family: CounterFamily, labels: string[]): Series<number> {
  const key = labels.join('\u0000');
  let s = family.series.get(key);
  if (!s) {
    s = { labels, value: 0 };
    family.series.set(key, s);
  }
  return s;
}
