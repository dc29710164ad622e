// The seam between the relay (proxy/io) and passive observation. The relay hands every decrypted chunk to an
// observer and never waits for it: observers must not keep, copy or change the bytes, and must never throw.

export interface ConnectionInfo {
  /** The SNI, or the original destination IP when the client sent none. */
  serverAddress: string;
  serverPort: number;
  /** ALPN the upstream selected (and the client got). */
  alpn: string | null;
  /** `TLSv1.3`, `TLSv1.2`, ... on the client side. */
  tlsProtocol: string;
  /** Client-side handshake time, from accept to secure. */
  handshakeMs: number;
}

export interface ConnectionObserver {
  /** Plaintext the client sent, in order. `now` is performance.now() in ms. */
  onClientData(chunk: Buffer, now: number): void;
  /** Plaintext the server sent, in order. */
  onServerData(chunk: Buffer, now: number): void;
  /** The connection closed (either side). */
  onClose(now: number): void;
}

export interface ObservationSink {
  /** Called once per intercepted connection after both handshakes; null means "do not observe". */
  openConnection(info: ConnectionInfo): ConnectionObserver | null;
}
