// What every connection needs: the parts rebuilt on SIGHUP (ProxyRuntime) and the parts that live as long as the
// process (ProxyShared: counters, logs, learned list, loop-guard state).
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { type SecureContext, createSecureContext } from 'node:tls';
import type { AgentConfig } from '../../../contracts/agent-config';
import { type CertificateAuthority, loadCa, untrustedCa } from '../certs/ca';
import { ForgedContextCache } from '../certs/context-cache';
import { Lru } from '../certs/lru';
import type { ConnectLog, LogThrottle, Logger } from '../log/logger';
import type { OriginalDestination } from '../native/origdst';
import type { AgentCounters } from '../observe/agent-counters';
import type { ObservationSink } from '../observe/observer';
import type { Destination } from '../proxy/decide';
import type { LearnedPassthrough } from '../proxy/learned';
import { StaticPassthrough } from '../proxy/passthrough';
import { type UpstreamTrust, loadUpstreamTrust } from './trust-store';

export interface ProxyRuntime {
  config: AgentConfig;
  ca: CertificateAuthority;
  contexts: ForgedContextCache;
  /** Forges from an issuer nobody trusts, for upstream.onVerifyFailure = forge-untrusted. */
  untrustedContexts: ForgedContextCache;
  /** Client-side context for upstream connections: verification roots (system store minus our CA). */
  upstreamContext: SecureContext;
  trust: UpstreamTrust | null;
  staticPassthrough: StaticPassthrough;
  learned: LearnedPassthrough | null;
  /** Upstream TLS sessions, so repeat connections to one server resume instead of a full handshake. */
  sessions: Lru<string, UpstreamSession>;
  incomingContext: (sni: string | null) => SecureContext | null;
}

/**
 * A resumable upstream session plus what the full handshake established: on a resumed TLS 1.3 session Node has
 * no peer certificate, so the cert and its verification result are kept with the ticket.
 */
export interface UpstreamSession {
  session: Buffer;
  certDer: Buffer;
  verifyError: string | null;
}

export interface ProxyShared {
  counters: AgentCounters;
  log: Logger;
  warnThrottle: LogThrottle;
  connectLog: ConnectLog;
  sink: ObservationSink | null;
  originalDestination: (socket: Socket) => OriginalDestination;
  /** `addr:port>dst` of our own live upstream connections → how many loop relays its connection is (see decide()). */
  upstreamEndpoints: Map<string, number>;
  /** Addresses our listeners are bound to (the loop guard refuses connections whose original destination is one). */
  listeners: Destination[];
  localAddresses: Set<string>;
  /** Connections in flight (for drain). */
  active: Set<{ destroyAll(): void }>;
  onLearned: () => void;
  runtime: () => ProxyRuntime;
}

const readText = (path: string, what: string): string => {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`${what} ${path}: ${(e as Error).message}`);
  }
};

function incomingSelector(config: AgentConfig): (sni: string | null) => SecureContext | null {
  const entries = (config.incoming?.certificates ?? []).map((c) => ({
    names: c.serverNames.map((n) => n.toLowerCase()),
    context: createSecureContext({
      cert: readText(c.certFile, 'incoming certFile'),
      key: readText(c.keyFile, 'incoming keyFile'),
      minVersion: 'TLSv1.2',
    }),
  }));
  const matches = (pattern: string, host: string) =>
    pattern === host || pattern === '*' || (pattern.startsWith('*.') && host.endsWith(pattern.slice(1)) && host.length > pattern.length - 1);
  return (sni) => {
    if (entries.length === 0) return null;
    if (sni) for (const e of entries) if (e.names.some((n) => matches(n, sni))) return e.context;
    // No SNI (or no match): the first certificate is the default, as a plain TLS server would do.
    return entries[0]!.context;
  };
}

export function buildRuntime(config: AgentConfig, learned: LearnedPassthrough | null, previous?: ProxyRuntime): ProxyRuntime {
  const ca = loadCa(readText(config.ca.certFile, 'ca.certFile'), readText(config.ca.keyFile, 'ca.keyFile'), config.ca.certFile);
  const sameCa = previous && previous.ca.fingerprintSha256 === ca.fingerprintSha256;
  const trust = config.upstream.verify ? loadUpstreamTrust(config.upstream.caBundleFile, [ca.fingerprintSha256]) : null;
  return {
    config,
    ca,
    contexts: sameCa ? previous.contexts : new ForgedContextCache(ca),
    untrustedContexts: previous?.untrustedContexts ?? new ForgedContextCache(untrustedCa()),
    upstreamContext: createSecureContext({ ca: trust?.certificates, minVersion: 'TLSv1.2' }),
    trust,
    staticPassthrough: new StaticPassthrough(config.passthrough.static),
    learned: config.passthrough.learned.enabled ? learned : null,
    sessions: previous?.sessions ?? new Lru(1024),
    incomingContext: incomingSelector(config),
  };
}
