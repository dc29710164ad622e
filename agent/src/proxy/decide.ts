// What to do with a connection once its first bytes are in: pure, so every branch is unit-testable without sockets.
import type { AgentCounterName } from '../observe/agent-counters';
import type { ClientHello, HelloParse } from './client-hello';
import { type LearnedPassthrough, destinationKey } from './learned';
import { type StaticPassthrough, unmapIp } from './passthrough';

export interface Destination {
  address: string;
  port: number;
}

export type Decision =
  | { action: 'wait' }
  | { action: 'intercept'; hello: ClientHello; destinationKey: string }
  | { action: 'passthrough'; counter: AgentCounterName; reason: string; hello: ClientHello | null }
  | { action: 'refuse'; counter: AgentCounterName; reason: string };

export interface DecideInput {
  parse: HelloParse;
  destination: Destination;
  /**
   * When the peer is one of our own upstream sockets: how many loop relays its connection already is (0: a client's
   * connection); otherwise null. Our upstream SYN normally bypasses the redirect (owner match), but conntrack applies
   * an existing entry's NAT before any rule is consulted: an entry of a redirected connection that closed while
   * nothing tracked (it stays ESTABLISHED for days) sends our SYN from the same source port back to us. That is
   * relayed to the original destination, up to MAX_LOOP_RELAYS deep; beyond, it is a real loop (the owner-match
   * exclusion is missing) and refused, so it cannot exhaust file descriptors.
   */
  peerLoopRelays: number | null;
  staticPassthrough: StaticPassthrough;
  learned: LearnedPassthrough | null;
  now: Date;
}

/** How many times one client connection's upstream may come back to us before it counts as a redirect loop. */
export const MAX_LOOP_RELAYS = 2;

export function decide(input: DecideInput): Decision {
  if (input.peerLoopRelays !== null && input.peerLoopRelays >= MAX_LOOP_RELAYS) {
    return { action: 'refuse', counter: 'loop_refused', reason: `our own upstream connection came back ${MAX_LOOP_RELAYS + 1} times (a redirect loop: is the owner-match exclusion missing?)` };
  }
  if (input.peerLoopRelays !== null) {
    return { action: 'passthrough', counter: 'loop_relayed', reason: 'our own upstream connection came back to us (a stale conntrack NAT entry): relayed to the original destination', hello: null };
  }
  const { parse } = input;
  if (parse.kind === 'incomplete') return { action: 'wait' };
  if (parse.kind === 'invalid') return { action: 'refuse', counter: 'client_hello_invalid', reason: parse.reason };
  if (parse.kind === 'not-tls') return { action: 'passthrough', counter: 'passthrough_not_tls', reason: 'not TLS', hello: null };
  const { hello } = parse;
  // We speak TLS 1.2+ on both sides; an older client could still reach an old server directly, so let it.
  if (hello.maxVersion < 0x0303) {
    return { action: 'passthrough', counter: 'passthrough_old_tls', reason: `client offers at most TLS version 0x${hello.maxVersion.toString(16)}`, hello };
  }
  const ip = unmapIp(input.destination.address);
  const hit = input.staticPassthrough.match(hello.sni, ip);
  if (hit) return { action: 'passthrough', counter: 'passthrough_static', reason: `static rule ${hit.rule}`, hello };
  const key = destinationKey(hello.sni, ip, input.destination.port);
  if (input.learned?.has(key, input.now)) {
    return { action: 'passthrough', counter: 'passthrough_learned', reason: `learned ${key}`, hello };
  }
  return { action: 'intercept', hello, destinationKey: key };
}

/** A connection whose original destination is one of our own listeners (or its port on a wildcard listener). */
export function isOwnListener(
  destination: Destination,
  listeners: readonly Destination[],
  localAddresses: ReadonlySet<string>,
): boolean {
  const ip = unmapIp(destination.address);
  return listeners.some((l) => {
    if (l.port !== destination.port) return false;
    const host = unmapIp(l.address);
    if (host === ip) return true;
    return (host === '0.0.0.0' || host === '::') && (localAddresses.has(ip) || ip.startsWith('127.') || ip === '::1');
  });
}
