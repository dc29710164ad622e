// One REDIRECTed connection, from accept to close:
//   original destination → loop guard → peek ClientHello → passthrough, or: upstream TLS with the client's SNI and
//   exact ALPN offer → verify → forged (or user-provided, in incoming mode) cert with the upstream's ALPN → relay.
// All decisions live in proxy/ (sans-io); this file only moves bytes and owns the sockets' lifetimes.
import { createHash } from 'node:crypto';
import { type Socket, connect as netConnect } from 'node:net';
import { performance } from 'node:perf_hooks';
import { type PeerCertificate, type SecureContext, TLSSocket, checkServerIdentity, connect as tlsConnect } from 'node:tls';
import type { AgentCounterName } from '../observe/agent-counters';
import type { ConnectionObserver } from '../observe/observer';
import type { ClientHello } from '../proxy/client-hello';
import { parseClientHello } from '../proxy/client-hello';
import { type Destination, decide, isOwnListener } from '../proxy/decide';
import { clientRejectedCertificate, destinationKey } from '../proxy/learned';
import { unmapIp } from '../proxy/passthrough';
import type { ProxyShared } from './runtime';

export type ListenerMode = 'outgoing' | 'incoming';

const noop = (): void => {};

const alpnWire = (protocols: string[]): Buffer =>
  Buffer.concat(protocols.map((p) => Buffer.concat([Buffer.from([p.length]), Buffer.from(p, 'latin1')])));
/** After one side closes, how long the other may take to flush before it is destroyed. */
const FLUSH_GRACE_MS = 5000;

export function handleConnection(raw: Socket, shared: ProxyShared, mode: ListenerMode): void {
  new ProxyConnection(raw, shared, mode).start();
}

class ProxyConnection {
  private readonly startedAt = performance.now();
  private readonly chunks: Buffer[] = [];
  private buffered = 0;
  private destination: Destination = { address: '', port: 0 };
  private hello: ClientHello | null = null;
  private upstream: Socket | null = null;
  private client: TLSSocket | null = null;
  private handshakeTimer: NodeJS.Timeout | null = null;
  private clientClosed = false;
  private upstreamClosed = true;
  private relaying = false;
  private upstreamConnected = false;
  private failed = false;
  private finished = false;
  private secureAt = 0;
  private clientBytes = 0;
  private serverBytes = 0;
  private clientEndedFirst = false;
  /** The client got a leaf from the untrusted issuer: its rejection is expected, not a pin to learn. */
  private untrustedForge = false;
  private upstreamEnded = false;
  private observer: ConnectionObserver | null = null;
  private readonly log: Record<string, unknown> = {};
  private outcome = 'pending';
  private readonly src: string;
  /** How many loop relays this connection is: it relays our own upstream connection that came back (see decide()). */
  private loopRelays = 0;
  /** We are closing the sockets ourselves (failure, refusal, drain): their closing is not the client's doing. */
  private closing = false;

  constructor(
    private readonly raw: Socket,
    private readonly shared: ProxyShared,
    private readonly mode: ListenerMode,
  ) {
    this.src = `${unmapIp(raw.remoteAddress ?? '?')}:${raw.remotePort ?? 0}`;
  }

  start(): void {
    const { counters } = this.shared;
    const rt = this.shared.runtime();
    const raw = this.raw;
    raw.on('error', noop); // errors surface through 'close' and the TLS socket; never crash the agent
    counters.inc('connections_accepted');
    if (this.mode === 'incoming') counters.inc('connections_incoming');
    if (counters.activeConnections >= rt.config.limits.maxConnections) {
      counters.inc('connections_refused_limit');
      this.outcome = 'refused';
      this.log.reason = `connection limit ${rt.config.limits.maxConnections} reached`;
      this.connectLogLine();
      raw.destroy();
      return;
    }
    counters.activeConnections++;
    this.shared.active.add(this);
    raw.once('close', () => this.markClientClosed());
    raw.setNoDelay(true);
    this.handshakeTimer = setTimeout(() => this.fail('handshake_timeout', 'handshake did not complete in time'), rt.config.limits.handshakeTimeoutMs);
    try {
      const od = this.shared.originalDestination(raw);
      this.destination = { address: od.address, port: od.port };
    } catch (e) {
      this.fail('original_destination_failed', `no original destination: ${(e as Error).message}`);
      return;
    }
    if (isOwnListener(this.destination, this.shared.listeners, this.shared.localAddresses)) {
      this.fail('loop_refused', `original destination ${this.destination.address}:${this.destination.port} is our own listener`);
      return;
    }
    raw.on('data', this.onFirstBytes);
    raw.once('end', this.onEarlyEnd);
  }

  private readonly onEarlyEnd = (): void => {
    const counter: AgentCounterName = this.buffered === 0 ? 'client_closed_early' : 'client_hello_invalid';
    this.fail(counter, this.buffered === 0 ? 'client closed before sending anything' : `client closed after ${this.buffered} bytes of an incomplete ClientHello`);
  };

  private readonly onFirstBytes = (chunk: Buffer): void => {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const stream = this.chunks.length === 1 ? chunk : Buffer.concat(this.chunks);
    const rt = this.shared.runtime();
    const peerLoopRelays = this.shared.upstreamEndpoints.get(`${this.src}>${this.dstText()}`) ?? null;
    const decision = decide({
      parse: parseClientHello(stream),
      destination: this.destination,
      peerLoopRelays,
      staticPassthrough: rt.staticPassthrough,
      learned: this.mode === 'outgoing' ? rt.learned : null,
      now: new Date(),
    });
    if (decision.action === 'wait') return;
    this.raw.off('data', this.onFirstBytes);
    this.raw.off('end', this.onEarlyEnd);
    this.raw.pause();
    if (decision.action === 'refuse') {
      this.fail(decision.counter, decision.reason);
      return;
    }
    this.hello = decision.hello;
    if (this.hello) {
      this.log.sni = this.hello.sni;
      this.log.alpnOffered = this.hello.alpn;
    }
    if (decision.action === 'passthrough') {
      this.shared.counters.inc(decision.counter);
      this.log.reason = decision.reason;
      if (decision.counter === 'loop_relayed') this.loopRelays = (peerLoopRelays ?? 0) + 1;
      this.passthrough();
      return;
    }
    this.connectUpstreamTls(decision.hello);
  };

  // ---- passthrough: plain TCP to the original destination, bytes untouched ----

  private passthrough(): void {
    this.outcome = 'passthrough';
    const up = this.openUpstreamTcp();
    up.once('connect', () => {
      this.clearHandshakeTimer();
      up.write(this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks));
      this.chunks.length = 0;
      this.relay(this.raw, up);
      this.raw.resume();
    });
  }

  private openUpstreamTcp(): Socket {
    const rt = this.shared.runtime();
    const up = netConnect({ host: unmapIp(this.destination.address), port: this.destination.port, allowHalfOpen: true });
    this.upstream = up;
    this.upstreamClosed = false;
    up.setNoDelay(true);
    let endpoint = '';
    const connectTimer = setTimeout(
      () => this.fail('upstream_connect_failed', `upstream did not answer within ${rt.config.upstream.connectTimeoutMs} ms`),
      rt.config.upstream.connectTimeoutMs,
    );
    up.once('connect', () => {
      clearTimeout(connectTimer);
      this.upstreamConnected = true;
      // Remember our own connection (source endpoint and destination): if it comes back to our listener, see decide().
      // The destination is part of the key: a client may use the same source port towards another destination.
      endpoint = `${unmapIp(up.localAddress ?? '')}:${up.localPort}>${this.dstText()}`;
      this.shared.upstreamEndpoints.set(endpoint, this.loopRelays);
    });
    up.on('error', (e) => {
      clearTimeout(connectTimer);
      if (!this.relaying) this.fail('upstream_connect_failed', `upstream: ${e.message}`);
      else this.destroyAll();
    });
    up.once('close', () => {
      clearTimeout(connectTimer);
      if (endpoint) this.shared.upstreamEndpoints.delete(endpoint);
      this.markUpstreamClosed();
    });
    return up;
  }

  // ---- interception ----

  private connectUpstreamTls(hello: ClientHello): void {
    const rt = this.shared.runtime();
    const tcp = this.openUpstreamTcp();
    const ip = unmapIp(this.destination.address);
    const verify = this.mode === 'outgoing' && rt.config.upstream.verify;
    const sessionKey = this.sessionKey(hello);
    const cached = rt.sessions.get(sessionKey);
    const up = tlsConnect({
      socket: tcp,
      host: ip,
      servername: hello.sni ?? undefined,
      // Chain verification only; the name check below uses the SNI (or the IP without SNI) and is counted.
      checkServerIdentity: () => undefined,
      // The wire form (length-prefixed), so the offer goes upstream byte for byte.
      ALPNProtocols: hello.alpn.length > 0 ? alpnWire(hello.alpn) : undefined,
      secureContext: rt.upstreamContext,
      rejectUnauthorized: false, // decided below, so failures are counted and the policy applies
      session: cached?.session,
    });
    up.on('error', (e: NodeJS.ErrnoException) => {
      // A TLS-level failure with a reachable server (client certificate required, TLS < 1.2 only, no shared
      // cipher) will fail the same way every time: the client has seen nothing yet, so this connection is lost,
      // but the destination passes through from now on, where the client talks to the server itself.
      const tlsFailure = typeof e.code === 'string' && e.code.startsWith('ERR_SSL');
      const beforeServerData = !this.relaying || this.serverBytes === 0;
      if (tlsFailure && this.upstreamConnected && beforeServerData) this.learn(`upstream TLS failed: ${e.message}`);
      if (!this.relaying) this.fail(tlsFailure ? 'upstream_tls_failed' : 'upstream_connect_failed', `upstream TLS: ${e.message}`);
      else this.destroyAll();
    });
    up.once('close', () => this.markUpstreamClosed());
    let established: { certDer: Buffer; verifyError: string | null } | null = null;
    let ticket: Buffer | null = null;
    const remember = () => {
      if (established && ticket) rt.sessions.set(sessionKey, { session: ticket, ...established });
    };
    up.on('session', (s: Buffer) => {
      ticket = s;
      remember();
    });
    up.once('secureConnect', () => {
      if (up.isSessionReused() && cached) {
        established = { certDer: cached.certDer, verifyError: cached.verifyError };
      } else {
        // getPeerCertificate() must come first: after getPeerX509Certificate() Node 20 returns it without
        // subjectaltname, and checkServerIdentity then rejects every cert.
        const legacy = up.getPeerCertificate() as PeerCertificate;
        const peer = up.getPeerX509Certificate();
        if (!peer) {
          this.fail('upstream_connect_failed', 'upstream sent no certificate');
          return;
        }
        let verifyError: string | null = null;
        if (!up.authorized) verifyError = String(up.authorizationError);
        else {
          const idErr = checkServerIdentity(hello.sni ?? ip, legacy);
          if (idErr) verifyError = idErr.message;
        }
        established = { certDer: peer.raw, verifyError };
        remember();
      }
      const { certDer } = established;
      this.log.upstreamCertSha256 = createHash('sha256').update(certDer).digest('hex');
      this.log.upstreamTls = up.getProtocol();
      this.log.upstreamResumed = up.isSessionReused();
      let context: SecureContext;
      if (this.mode === 'incoming') {
        const picked = rt.incomingContext(hello.sni);
        if (!picked) {
          this.fail('client_hello_invalid', `no incoming certificate for ${hello.sni ?? '(no SNI)'}`);
          return;
        }
        context = picked;
      } else {
        const verifyError = verify ? established.verifyError : null;
        let forgeFrom = rt.contexts;
        if (verifyError) {
          this.shared.counters.inc('upstream_verify_failed');
          this.log.upstreamVerifyError = verifyError;
          if (this.shared.warnThrottle.allow(`verify:${this.destinationKey()}`)) {
            this.shared.log.warn('upstream verification failed (further failures for this destination are counted, logged once a minute)', { dst: this.dstText(), sni: hello.sni, error: verifyError, policy: rt.config.upstream.onVerifyFailure });
          }
          if (rt.config.upstream.onVerifyFailure === 'refuse') {
            this.outcome = 'refused';
            this.log.reason = `upstream verification failed: ${verifyError}`;
            this.destroyAll();
            return;
          }
          forgeFrom = rt.untrustedContexts;
          this.untrustedForge = true;
        }
        try {
          const t0 = performance.now();
          const hit = forgeFrom.lookup(certDer, hello.sni, ip);
          this.shared.counters.inc(hit.cacheHit ? 'forge_cache_hits' : 'forge_cache_misses');
          this.log.forgeCacheHit = hit.cacheHit;
          if (!hit.cacheHit) this.log.forgeMs = Math.round((performance.now() - t0) * 1000) / 1000;
          context = hit.context;
        } catch (e) {
          this.fail('forge_failed', `forging failed: ${(e as Error).message}`);
          return;
        }
      }
      this.upstream = up;
      this.startClientTls(context, up);
    });
  }

  private sessionKey(hello: ClientHello): string {
    return `${this.destination.address}:${this.destination.port}:${hello.sni ?? ''}:${hello.alpn.join(',')}`;
  }

  private startClientTls(context: SecureContext, up: TLSSocket): void {
    const raw = this.raw;
    raw.unshift(this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks));
    this.chunks.length = 0;
    const selected = typeof up.alpnProtocol === 'string' ? up.alpnProtocol : null;
    const client = new TLSSocket(raw, {
      isServer: true,
      secureContext: context,
      ALPNProtocols: selected ? [selected] : undefined,
    });
    this.client = client;
    client.once('close', () => this.markClientClosed());
    client.on('error', (e) => {
      if (!this.secureAt) this.clientHandshakeFailed(e);
      else this.destroyAll();
    });
    client.once('secure', () => {
      this.secureAt = performance.now();
      this.clearHandshakeTimer();
      this.outcome = 'intercepted';
      this.shared.counters.inc('connections_intercepted');
      this.log.alpn = client.alpnProtocol || null;
      this.log.clientTls = client.getProtocol();
      this.log.cipher = client.getCipher()?.name;
      this.openObserver(client);
      this.relay(client, up);
      raw.resume();
    });
  }

  private clientHandshakeFailed(e: Error): void {
    const rejected = clientRejectedCertificate({ handshakeCompleted: false, handshakeError: e.message, clientBytesAfterHandshake: 0, msSinceHandshake: 0 });
    if (rejected) this.learn(rejected.reason);
    this.fail('client_handshake_failed', `client TLS handshake: ${e.message}`);
  }

  private destinationKey(): string {
    return destinationKey(this.hello?.sni ?? null, unmapIp(this.destination.address), this.destination.port);
  }

  private learn(reason: string): void {
    const rt = this.shared.runtime();
    if (!rt.learned || !this.hello || this.mode !== 'outgoing' || this.untrustedForge) return;
    const key = this.destinationKey();
    if (rt.learned.add(key, reason, new Date())) {
      this.shared.counters.inc('passthrough_learned_added');
      this.shared.log.info('learned passthrough', { destination: key, reason });
      this.shared.onLearned();
    }
  }

  private openObserver(client: TLSSocket): void {
    const sink = this.shared.sink;
    if (!sink || !this.hello) return;
    try {
      this.observer = sink.openConnection({
        serverAddress: this.hello.sni ?? unmapIp(this.destination.address),
        serverPort: this.destination.port,
        alpn: client.alpnProtocol || null,
        tlsProtocol: client.getProtocol() ?? 'unknown',
        handshakeMs: this.secureAt - this.startedAt,
      });
    } catch (e) {
      this.observerFailed(e);
    }
  }

  private observerFailed(e: unknown): void {
    this.observer = null;
    this.shared.counters.inc('observe_parse_errors');
    this.shared.log.warn('observer threw; observation stopped for this connection', { error: (e as Error).message });
  }

  // ---- relay ----

  private relay(client: Socket, up: Socket): void {
    const rt = this.shared.runtime();
    const idle = rt.config.limits.idleTimeoutMs;
    this.relaying = true;
    // pipe() gives backpressure, and with allowHalfOpen it forwards each side's end as a half-close.
    client.pipe(up);
    up.pipe(client);
    // Registered after pipe(): each chunk is forwarded first and observed after, off the forwarding path.
    client.on('data', (chunk: Buffer) => {
      this.clientBytes += chunk.length;
      if (this.observer) {
        try {
          this.observer.onClientData(chunk, performance.now());
        } catch (e) {
          this.observerFailed(e);
        }
      }
    });
    up.on('data', (chunk: Buffer) => {
      this.serverBytes += chunk.length;
      if (this.observer) {
        try {
          this.observer.onServerData(chunk, performance.now());
        } catch (e) {
          this.observerFailed(e);
        }
      }
    });
    client.once('end', () => {
      if (!this.upstreamEnded) this.clientEndedFirst = true;
    });
    up.once('end', () => {
      this.upstreamEnded = true;
    });
    const onIdle = () => this.fail('idle_timeout', `no traffic for ${idle} ms`);
    client.setTimeout(idle, onIdle);
    up.setTimeout(idle, onIdle);
    client.once('close', () => this.sideClosed(up));
    up.once('close', () => this.sideClosed(client));
  }

  /** One side is fully closed: let the other flush what it has, then close it too. */
  private sideClosed(other: Socket): void {
    if (other.destroyed) return;
    other.end();
    const t = setTimeout(() => other.destroy(), FLUSH_GRACE_MS);
    t.unref();
    other.once('close', () => clearTimeout(t));
    other.once('finish', () => other.destroy());
  }

  // ---- teardown ----

  private clearHandshakeTimer(): void {
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = null;
  }

  fail(counter: AgentCounterName, reason: string): void {
    if (this.finished || this.failed) return;
    this.failed = true;
    this.shared.counters.inc(counter);
    if (this.outcome === 'pending' || (this.outcome === 'passthrough' && !this.relaying)) this.outcome = 'failed';
    this.log.error = counter;
    this.log.reason = reason;
    this.shared.log.debug('connection failed', { src: this.src, dst: this.dstText(), counter, reason });
    this.destroyAll();
  }

  destroyAll(): void {
    this.closing = true;
    this.clearHandshakeTimer();
    this.client?.destroy();
    this.upstream?.destroy();
    this.raw.destroy();
  }

  private markClientClosed(): void {
    if (this.clientClosed) return;
    this.clientClosed = true;
    // The client went away before the relay started (mid-handshake, e.g. a reset) without us closing it: counted,
    // and the upstream is not kept waiting.
    if (!this.relaying && !this.closing && this.outcome === 'pending') {
      this.fail('client_handshake_failed', 'the client went away before the handshake completed');
      return;
    }
    if (!this.relaying) this.upstream?.destroy();
    if (this.upstreamClosed) this.finish();
  }

  private markUpstreamClosed(): void {
    if (this.upstreamClosed) return;
    this.upstreamClosed = true;
    if (!this.relaying) {
      this.client?.destroy();
      this.raw.destroy();
    }
    if (this.clientClosed) this.finish();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.clearHandshakeTimer();
    this.shared.counters.activeConnections--;
    this.shared.active.delete(this);
    const learned = this.shared.runtime().learned;
    if (this.secureAt && learned && this.mode === 'outgoing') {
      const rejected = this.clientEndedFirst
        ? clientRejectedCertificate({
            handshakeCompleted: true,
            handshakeError: null,
            clientBytesAfterHandshake: this.clientBytes,
            msSinceHandshake: performance.now() - this.secureAt,
          })
        : null;
      if (rejected) {
        if (learned.noteQuietClose(this.destinationKey())) this.learn(rejected.reason);
      } else if (this.clientBytes > 0) learned.noteHealthy(this.destinationKey());
    }
    if (this.observer) {
      try {
        this.observer.onClose(performance.now());
      } catch (e) {
        this.observerFailed(e);
      }
    }
    this.connectLogLine();
  }

  private dstText(): string {
    const a = unmapIp(this.destination.address);
    return a.includes(':') ? `[${a}]:${this.destination.port}` : `${a}:${this.destination.port}`;
  }

  private connectLogLine(): void {
    this.shared.connectLog.record({
      mode: this.mode,
      src: this.src,
      dst: this.dstText(),
      outcome: this.outcome,
      ...this.log,
      bytesFromClient: this.clientBytes,
      bytesFromServer: this.serverBytes,
      durationMs: Math.round((performance.now() - this.startedAt) * 10) / 10,
    });
  }
}

export type { ProxyConnection };
