// The desired ruleset as data, independent of nft or iptables syntax. Both renderers and both parsers speak this
// model, so "converged" is decided by comparing canonical rule keys, not text.
import type { FirewallParams } from './params';
import { type Cidr, type Family, type Interval, cidrInterval, intervalKey, minimalCidrs, parseCidr } from './net';

export type Match =
  | { kind: 'skuid'; values: number[] }
  | { kind: 'skgid'; values: number[] }
  | { kind: 'oifname'; values: string[] }
  | { kind: 'iifname'; values: string[] }
  | { kind: 'daddr'; family: Family; cidrs: Cidr[] }
  | { kind: 'saddr'; family: Family; cidrs: Cidr[] }
  | { kind: 'tcp-dport'; values: number[] }
  /** The connection's first packet only (`ct state new`): established flows are never picked up mid-stream. */
  | { kind: 'ct-new' }
  /** A bare SYN (`tcp flags & (fin|syn|rst|ack) == syn`): a loosely tracked mid-stream packet is never redirected. */
  | { kind: 'tcp-syn' };

export type Verdict = { kind: 'return' } | { kind: 'redirect'; port: number };

export interface Rule {
  matches: Match[];
  verdict: Verdict;
}

export type ChainName = 'output' | 'prerouting';

export interface Chain {
  name: ChainName;
  hook: ChainName;
  rules: Rule[];
}

export interface DesiredRuleset {
  chains: Chain[];
  /** Families the ruleset covers (IPv4 and/or IPv6). */
  families: Family[];
}

/** What gather resolved on the host, needed to render. */
export interface ResolvedIdentities {
  agentUid: number;
  agentGid: number;
  excludeUids: number[];
  /** The address the current SSH connection comes from (SSH_CONNECTION), if known. */
  controllerAddress: string | null;
}

export const LINK_LOCAL_V4 = '169.254.0.0/16';
export const LINK_LOCAL_V6 = 'fe80::/10';

const uniqSorted = <T extends number | string>(xs: readonly T[]): T[] =>
  [...new Set(xs)].sort((a, b) => (typeof a === 'number' && typeof b === 'number' ? a - b : String(a).localeCompare(String(b))));

/**
 * Redirects start only with a connection's first SYN. Together with the parked chains below this makes binding
 * transitions lossless: a connection that began while the rules were parked is tracked (not NATed) and its later
 * packets are never sent to the agent mid-stream, which would reset it.
 */
const NEW_SYN: Match[] = [{ kind: 'ct-new' }, { kind: 'tcp-syn' }];

/**
 * The "unloaded" state: the same chains (hooks stay registered) holding only a no-op conntrack rule. Deleting our
 * nat chains would leave nothing in the network namespace that needs conntrack, so the kernel would stop tracking:
 * redirected connections in flight would lose their NAT mapping, and connections started meanwhile would have no
 * entry when the rules come back. Parked, traffic flows directly and every connection keeps being tracked.
 */
export function parkedChains(chains: Chain[]): Chain[] {
  return chains.map((c) => ({ ...c, rules: [{ matches: [{ kind: 'ct-new' }], verdict: { kind: 'return' } }] }));
}

export function buildDesired(p: FirewallParams, ids: ResolvedIdentities): DesiredRuleset {
  const families: Family[] = [...(p.ipv4 ? [4 as const] : []), ...(p.ipv6 ? [6 as const] : [])];
  const controllers = [...p.controllerAddresses, ...(ids.controllerAddress ? [ids.controllerAddress] : [])].map((c) => parseCidr(c, true));
  const excluded = p.excludeCidrs.map((c) => parseCidr(c));
  const byFamily = (list: Cidr[], f: Family) => minimalCidrs(list.filter((c) => c.family === f));
  const loopback: Record<Family, Cidr> = { 4: parseCidr('127.0.0.0/8'), 6: parseCidr('::1') };
  const linkLocal: Record<Family, Cidr> = { 4: parseCidr(LINK_LOCAL_V4), 6: parseCidr(LINK_LOCAL_V6) };
  const skipPorts = uniqSorted([p.sshPort, ...p.excludePorts]);
  const chains: Chain[] = [];

  if (p.modes.includes('outgoing')) {
    const rules: Rule[] = [
      { matches: [{ kind: 'skuid', values: uniqSorted([ids.agentUid, ...ids.excludeUids]) }], verdict: { kind: 'return' } },
      { matches: [{ kind: 'skgid', values: [ids.agentGid] }], verdict: { kind: 'return' } },
      { matches: [{ kind: 'oifname', values: ['lo'] }], verdict: { kind: 'return' } },
    ];
    for (const f of families) {
      rules.push({ matches: [{ kind: 'daddr', family: f, cidrs: byFamily([loopback[f], linkLocal[f], ...controllers, ...excluded], f) }], verdict: { kind: 'return' } });
    }
    rules.push({ matches: [{ kind: 'tcp-dport', values: skipPorts }], verdict: { kind: 'return' } });
    rules.push({ matches: [...NEW_SYN, { kind: 'tcp-dport', values: uniqSorted(p.ports) }], verdict: { kind: 'redirect', port: p.agentPort } });
    chains.push({ name: 'output', hook: 'output', rules });
  }

  const incoming = p.modes.includes('incoming');
  if (incoming || p.containerInterfaces.length > 0) {
    const rules: Rule[] = [{ matches: [{ kind: 'iifname', values: ['lo'] }], verdict: { kind: 'return' } }];
    for (const f of families) {
      const sources = byFamily([...controllers, ...excluded], f);
      if (sources.length > 0) rules.push({ matches: [{ kind: 'saddr', family: f, cidrs: sources }], verdict: { kind: 'return' } });
      rules.push({ matches: [{ kind: 'daddr', family: f, cidrs: byFamily([linkLocal[f], ...excluded], f) }], verdict: { kind: 'return' } });
    }
    rules.push({ matches: [{ kind: 'tcp-dport', values: skipPorts }], verdict: { kind: 'return' } });
    if (p.containerInterfaces.length > 0) {
      rules.push({
        matches: [...NEW_SYN, { kind: 'iifname', values: uniqSorted(p.containerInterfaces) }, { kind: 'tcp-dport', values: uniqSorted(p.ports) }],
        verdict: { kind: 'redirect', port: p.agentPort },
      });
    }
    if (incoming && p.incomingPort !== undefined) {
      rules.push({ matches: [...NEW_SYN, { kind: 'tcp-dport', values: uniqSorted(p.incomingPorts ?? p.ports) }], verdict: { kind: 'redirect', port: p.incomingPort } });
    }
    chains.push({ name: 'prerouting', hook: 'prerouting', rules });
  }
  return { chains, families };
}

/** Keeps only what applies to one address family (for `ip`/`ip6` tables and for iptables/ip6tables). */
export function restrictToFamily(d: DesiredRuleset, f: Family): Chain[] {
  return d.chains.map((c) => ({
    ...c,
    rules: c.rules.filter((r) => r.matches.every((m) => (m.kind === 'daddr' || m.kind === 'saddr' ? m.family === f : true))),
  }));
}

// ---- canonical keys: what "semantically equal" means ----

function matchKey(m: Match): string {
  switch (m.kind) {
    case 'daddr':
    case 'saddr':
      return `${m.kind}${m.family}=${intervalKey(m.cidrs.map(cidrInterval))}`;
    case 'skuid':
    case 'skgid':
    case 'tcp-dport':
      return `${m.kind}=${uniqSorted(m.values).join(',')}`;
    case 'oifname':
    case 'iifname':
      return `${m.kind}=${uniqSorted(m.values).join(',')}`;
    case 'ct-new':
      return 'ct-state=new';
    case 'tcp-syn':
      return 'tcp-syn';
  }
}

export function ruleKey(r: Rule): string {
  const verdict = r.verdict.kind === 'return' ? 'return' : `redirect:${r.verdict.port}`;
  return `${r.matches.map(matchKey).sort().join(' ')} => ${verdict}`;
}

/** Address-set match built from already-merged intervals (the parsers produce these). */
export function intervalsKey(kind: 'daddr' | 'saddr', family: Family, intervals: Interval[]): string {
  return `${kind}${family}=${intervalKey(intervals)}`;
}
