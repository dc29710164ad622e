// Desired model → an `nft -f` file that replaces only our own table(s) in one transaction:
// declare (so delete cannot fail on a fresh host), delete, re-create. Never `flush ruleset`.
import type { Chain, DesiredRuleset, Match, Rule } from './model';
import { restrictToFamily } from './model';
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
  }
}

export function renderNftRule(r: Rule): string {
  const verdict = r.verdict.kind === 'return' ? 'return' : `redirect to :${r.verdict.port}`;
  return [...r.matches.map(renderMatch), verdict].join(' ');
}

function renderChain(c: Chain): string[] {
  // Numeric -100 (dstnat): nft 1.0.6 rejects the `dstnat` keyword in a nat output chain.
  return [
    `\tchain ${c.name} {`,
    `\t\ttype nat hook ${c.hook} priority -100; policy accept;`,
    ...c.rules.map((r) => `\t\t${renderNftRule(r)}`),
    '\t}',
  ];
}

/** The whole replacement transaction for the given families. */
export function renderNftApply(d: DesiredRuleset, families: NftFamily[]): string {
  const lines: string[] = ['#!/usr/sbin/nft -f', '# epoch-provision firewall ruleset; replaced atomically, do not edit.'];
  for (const family of families) {
    lines.push(`table ${family} ${NFT_TABLE}`, `delete table ${family} ${NFT_TABLE}`, `table ${family} ${NFT_TABLE} {`, `\tcomment ${JSON.stringify(NFT_COMMENT)}`);
    chainsForNftFamily(d, family).forEach((c, i) => {
      if (i > 0) lines.push('');
      lines.push(...renderChain(c));
    });
    lines.push('}');
  }
  return `${lines.join('\n')}\n`;
}

/** Removes our tables (whichever families exist), in one transaction, without failing when they are absent. */
export function renderNftRemove(families: readonly NftFamily[] = ['inet', 'ip', 'ip6']): string {
  const lines = ['# epoch-provision: remove our tables only'];
  for (const f of families) lines.push(`table ${f} ${NFT_TABLE}`, `delete table ${f} ${NFT_TABLE}`);
  return `${lines.join('\n')}\n`;
}
