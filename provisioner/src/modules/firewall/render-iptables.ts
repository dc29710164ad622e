// Desired model → iptables-restore input for `--noflush`: our chains only (declaring a chain under --noflush
// flushes it, so re-applying never duplicates), plus exactly one jump from the built-in chain.
// Lines are written in iptables-save's own canonical spelling so a converged host reads back identically.
import type { Chain, ChainName, DesiredRuleset, Match, Rule } from './model';
import { restrictToFamily } from './model';
import type { Family } from './net';
import { formatCidrWithPrefix } from './net';

export const IPT_COMMENT = 'epoch-provision';
export const IPT_CHAIN: Record<ChainName, string> = { output: 'EPOCH_OUTPUT', prerouting: 'EPOCH_PREROUTING' };
export const IPT_BUILTIN: Record<ChainName, string> = { output: 'OUTPUT', prerouting: 'PREROUTING' };
export const ALL_CHAINS: ChainName[] = ['output', 'prerouting'];

/** One iptables rule per combination of set members (iptables has no anonymous sets without ipset). */
function expand(r: Rule): Match[][] {
  let combos: Match[][] = [[]];
  for (const m of r.matches) {
    const singles: Match[] =
      m.kind === 'ct-new' || m.kind === 'tcp-syn' ? [m]
      : m.kind === 'daddr' || m.kind === 'saddr' ? m.cidrs.map((c) => ({ ...m, cidrs: [c] }))
      : (m.values as (number | string)[]).map((v) => ({ ...m, values: [v] }) as Match);
    combos = combos.flatMap((combo) => singles.map((s) => [...combo, s]));
  }
  return combos;
}

/** `-A EPOCH_OUTPUT ...` exactly as iptables-save prints it. */
export function renderIptablesRule(chain: string, matches: Match[], rule: Rule): string {
  const get = <K extends Match['kind']>(k: K) => matches.find((m) => m.kind === k) as Extract<Match, { kind: K }> | undefined;
  const parts = ['-A', chain];
  const saddr = get('saddr');
  const daddr = get('daddr');
  if (saddr) parts.push('-s', formatCidrWithPrefix(saddr.cidrs[0]!));
  if (daddr) parts.push('-d', formatCidrWithPrefix(daddr.cidrs[0]!));
  const iif = get('iifname');
  const oif = get('oifname');
  if (iif) parts.push('-i', iif.values[0]!);
  if (oif) parts.push('-o', oif.values[0]!);
  const dport = get('tcp-dport');
  const syn = get('tcp-syn');
  if (dport || syn) parts.push('-p', 'tcp', '-m', 'tcp');
  if (dport) parts.push('--dport', String(dport.values[0]));
  if (syn) parts.push('--tcp-flags', 'FIN,SYN,RST,ACK', 'SYN');
  const uid = get('skuid');
  const gid = get('skgid');
  if (uid) parts.push('-m', 'owner', '--uid-owner', String(uid.values[0]));
  if (gid) parts.push('-m', 'owner', '--gid-owner', String(gid.values[0]));
  if (get('ct-new')) parts.push('-m', 'conntrack', '--ctstate', 'NEW');
  parts.push('-m', 'comment', '--comment', IPT_COMMENT);
  if (rule.verdict.kind === 'return') parts.push('-j', 'RETURN');
  else parts.push('-j', 'REDIRECT', '--to-ports', String(rule.verdict.port));
  return parts.join(' ');
}

export function renderIptablesChainRules(c: Chain): string[] {
  return c.rules.flatMap((r) => expand(r).map((combo) => renderIptablesRule(IPT_CHAIN[c.name], combo, r)));
}

export function chainsForIptablesFamily(d: DesiredRuleset, f: Family): Chain[] {
  return restrictToFamily(d, f);
}

/** What is live now, per chain: how many jumps to our chain the built-in chain has, and whether our chain exists. */
export interface IptablesLiveChains {
  jumps: Record<ChainName, number>;
  exists: Record<ChainName, boolean>;
}

/**
 * The restore file that moves `live` to `chains`: declares (=flushes) and fills our wanted chains, leaves exactly
 * one jump to each, and removes our chains that are no longer wanted. Nothing else in the nat table is touched.
 */
export function renderIptablesApply(chains: Chain[], live: IptablesLiveChains): string {
  const wanted = new Set(chains.map((c) => c.name));
  const lines = ['# epoch-provision firewall chains (iptables-restore -w --noflush)', '*nat'];
  for (const c of chains) lines.push(`:${IPT_CHAIN[c.name]} - [0:0]`);
  for (const c of chains) lines.push(`-F ${IPT_CHAIN[c.name]}`, ...renderIptablesChainRules(c));
  for (const name of ALL_CHAINS) {
    const jump = `${IPT_BUILTIN[name]} -j ${IPT_CHAIN[name]}`;
    const keep = wanted.has(name) ? 1 : 0;
    for (let i = live.jumps[name]; i > keep; i--) lines.push(`-D ${jump}`);
    if (keep === 1 && live.jumps[name] === 0) lines.push(`-I ${IPT_BUILTIN[name]} 1 -j ${IPT_CHAIN[name]}`);
    if (!wanted.has(name) && live.exists[name]) lines.push(`-F ${IPT_CHAIN[name]}`, `-X ${IPT_CHAIN[name]}`);
  }
  lines.push('COMMIT');
  return `${lines.join('\n')}\n`;
}
