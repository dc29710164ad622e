// The ObservationSink the relay calls for each intercepted connection: picks the HTTP/1.x or HTTP/2 framer
// by ALPN (or by the h2 preface when there is no ALPN) and routes exchanges and errors to the aggregator.
import type { AgentCounters } from './agent-counters';
import { type Aggregator, newExchangeMemo } from './aggregator';
import { type ExchangeSink, fatalObserveErrors } from './exchange';
import { Http1Observer } from './http1';
import { Http2Observer } from './http2';
import type { ConnectionInfo, ConnectionObserver, ObservationSink } from './observer';

const h2Preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export class AggregatingSink implements ObservationSink {
  constructor(
    private readonly aggregator: Aggregator,
    private readonly counters: AgentCounters,
  ) {}

  openConnection(info: ConnectionInfo): ConnectionObserver | null {
    try {
      const alpn = info.alpn;
      if (alpn !== null && alpn !== 'h2' && alpn !== 'http/1.1' && alpn !== 'http/1.0') return null;
      this.aggregator.recordConnection(info);
      const memo = newExchangeMemo();
      const sink: ExchangeSink = {
        exchange: (record) => this.aggregator.recordExchange(info, record, memo),
        error: (kind) => {
          this.aggregator.recordError(info, kind);
          if (fatalObserveErrors.has(kind)) this.counters.inc('observe_parse_errors');
        },
      };
      if (alpn === 'h2') return new Http2Observer(sink);
      if (alpn === null) return new SniffingObserver(sink);
      return new Http1Observer(sink);
    } catch {
      return null; // observation must never break a connection
    }
  }
}

/** Without ALPN the client may still speak h2 with prior knowledge; decide on its first bytes. */
class SniffingObserver implements ConnectionObserver {
  private inner: ConnectionObserver | null = null;
  private seen = 0;
  private buffered: { chunk: Buffer; now: number }[] = [];

  constructor(private readonly sink: ExchangeSink) {}

  onClientData(chunk: Buffer, now: number): void {
    if (this.inner) {
      this.inner.onClientData(chunk, now);
      return;
    }
    // Compare against the preface as bytes arrive; decide as soon as it matches or diverges.
    let matches = true;
    for (let k = 0; k < chunk.length && this.seen + k < h2Preface.length; k++) {
      if (chunk[k] !== h2Preface[this.seen + k]) {
        matches = false;
        break;
      }
    }
    this.seen += chunk.length;
    if (matches && this.seen < h2Preface.length) {
      this.buffered.push({ chunk: Buffer.from(chunk), now }); // at most 23 bytes are ever held
      return;
    }
    this.inner = matches ? new Http2Observer(this.sink) : new Http1Observer(this.sink);
    for (const b of this.buffered) this.inner.onClientData(b.chunk, b.now);
    this.buffered = [];
    this.inner.onClientData(chunk, now);
  }

  onServerData(chunk: Buffer, now: number): void {
    // Servers speak second; if one speaks first, treat the connection as HTTP/1.x.
    if (!this.inner) {
      this.inner = new Http1Observer(this.sink);
      for (const b of this.buffered) this.inner.onClientData(b.chunk, b.now);
      this.buffered = [];
    }
    this.inner.onServerData(chunk, now);
  }

  onClose(now: number): void {
    this.inner?.onClose(now);
  }
}
