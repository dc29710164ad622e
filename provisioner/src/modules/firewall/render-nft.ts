// Desired model → an `nft -f` file that replaces only our own table(s) in one transaction: declare the table and
// every chain (so nothing fails on a fresh host), flush the table's rules, delete chains no longer wanted, add the
// rules. The table and its nat base chains are never deleted between loaded and parked, so conntrack keeps tracking
// (see parkedChains in model.ts). Never `flush ruleset`.
import type { Chain, ChainName, DesiredRuleset, Match, Rule } from './model';
import { parkedChains, restrictToFamily } from './model';
import { formatCidr } from './net';

export const NFT_TABLE = 'epoch_provision';
export const NFT_COMMENT = 'managed by epoch-provision: traffic redirection into epoch-agent';

export type NftFamily = 'inet' | 'ip' | 'ip6';

/** inet-family nat exists since Linux 5.2; older kernels get one `ip` and one `ip6` table. */
export function nftFamiliesFor(d: DesiredRuleset, kernelSupportsInetNat: boolean): NftFamily[] {
  const v4 = d.families.includes(4);
  const v6 = d.families.includes(6);
  if (v4 && v6 && kernelSupportsInetNat) return ['inet'];
  return [...(v4 ? ['ip' as const] : []), ...(v6 ? ['ip6' as const] : [])];
}

export function chainsForNftFamily(d: DesiredRuleset, family: NftFamily): Chain[] {
  return family === 'inet' ? d.chains : restrictToFamily(d, family === 'ip' ? 4 : 6);
}

const set = (items: string[]) => (items.length === 1 ? items[0]! : `{ ${items.join(', ')} }`);

function renderMatch(m: Match): string {
  switch (m.kind) {
    case 'skuid':
    case 'skgid':
      return `meta ${m.kind} ${set(m.values.map(String))}`;
    case 'oifname':
    case 'iifname':
      return `${m.kind} ${set(m.values.map((v) => JSON.stringify(v)))}`;
    case 'daddr':
    case 'saddr':
      return `${m.family === 4 ? 'ip' : 'ip6'} ${m.kind} ${set(m.cidrs.map(formatCidr))}`;
    case 'tcp-dport':
      return `tcp dport ${set(m.values.map(String))}`;
    case 'ct-new':
      return 'ct state new';
    case 'tcp-syn':
      return 'tcp flags & (fin|syn|rst|ack) == syn';
  }
}

export function renderNftRule(r: Rule): string {
  const verdict = r.verdict.kind === 'return' ? 'return' : `redirect to :${r.verdict.port}`;
  return [...r.matches.map(renderMatch), verdict].join(' ');
}

const ALL_NFT_CHAINS: ChainName[] = ['output', 'prerouting'];
// Numeric -100 (dstnat): nft 1.0.6 rejects the `dstnat` keyword in a nat output chain.
const chainHead = (name: ChainName) => `\t\ttype nat hook ${name} priority -100; policy accept;`;

function renderTable(family: NftFamily, chains: Chain[], withRules: boolean): string[] {
  const lines = [`table ${family} ${NFT_TABLE} {`, `\tcomment ${JSON.stringify(NFT_COMMENT)}`];
  chains.forEach((c, i) => {
    if (i > 0) lines.push('');
    lines.push(`\tchain ${c.name} {`, chainHead(c.hook), ...(withRules ? c.rules.map((r) => `\t\t${renderNftRule(r)}`) : []), '\t}');
  });
  lines.push('}');
  return lines;
}

export type NftRulesetState = 'loaded' | 'parked';

/**
 * The whole replacement transaction for the given families: `loaded` redirects, `parked` keeps the same chains with
 * only a no-op conntrack rule (traffic flows directly).
 */
export function renderNftApply(d: DesiredRuleset, families: NftFamily[], state: NftRulesetState = 'loaded'): string {
  const lines: string[] = ['#!/usr/sbin/nft -f', `# epoch-provision firewall ruleset (${state}); replaced atomically, do not edit.`];
  for (const family of families) {
    const wanted = chainsForNftFamily(d, family);
    const chains = state === 'loaded' ? wanted : parkedChains(wanted);
    const unwanted = ALL_NFT_CHAINS.filter((name) => !wanted.some((c) => c.name === name));
    const declared = ALL_NFT_CHAINS.map((name) => chains.find((c) => c.name === name) ?? { name, hook: name, rules: [] });
    lines.push(...renderTable(family, declared, false), `flush table ${family} ${NFT_TABLE}`);
    for (const name of unwanted) lines.push(`delete chain ${family} ${NFT_TABLE} ${name}`);
    lines.push(...renderTable(family, chains, true));
  }
  return `${lines.join('\n')}\n`;
}

/** The tables as they read once loaded (for --diff). */
export function describeNft(d: DesiredRuleset, families: NftFamily[], state: NftRulesetState = 'loaded'): string {
  const lines = families.flatMap((family) => {
    const wanted = chainsForNftFamily(d, family);
    return renderTable(family, state === 'loaded' ? wanted : parkedChains(wanted), true);
  });
  return `${lines.join('\n')}\n`;
}

/** Removes our tables (whichever families exist), in one transaction, without failing when they are absent. */
export function renderNftRemove(families: readonly NftFamily[] = ['inet', 'ip', 'ip6']): string {
  const lines = ['# epoch-provision: remove our tables only'];
  for (const f of families) lines.push(`table ${f} ${NFT_TABLE}`, `delete table ${f} ${NFT_TABLE}`);
  return `${lines.join('\n')}\n`;
}
