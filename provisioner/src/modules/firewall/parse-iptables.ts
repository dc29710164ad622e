// `iptables-save` (whole output; we never ask for `-t nat`, because on legacy that would create the table while
// merely looking) → our chains and the jumps into them, for a semantic comparison with the desired chains.
import type { Chain, ChainName } from './model';
import { type IptablesLiveChains, ALL_CHAINS, IPT_BUILTIN, IPT_CHAIN, IPT_COMMENT, renderIptablesChainRules } from './render-iptables';
import { formatCidrWithPrefix, parseCidr } from './net';

export interface IptablesNat {
  /** False when the save output has no `*nat` section at all. */
  natTablePresent: boolean;
  chains: Record<ChainName, { exists: boolean; rules: string[] }>;
  jumps: Record<ChainName, number>;
  /** Rules in our chains that do not carry our comment: someone else uses our chain names. */
  foreignRules: string[];
  /** Any rule or user chain anywhere in the output (to tell which iptables backend a host really uses). */
  ruleCount: number;
}

/** Splits an iptables-save rule line into words, honouring the double quotes iptables-save uses. */
export function tokenize(line: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (const m of line.matchAll(re)) out.push(m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2]!);
  return out;
}

/** Canonical rule text: quotes normalised, addresses canonical (so `-d 10.0.0.0/8` == `-d 10.0.0.0/255.0.0.0`). */
export function normaliseRule(line: string): string {
  const words = tokenize(line);
  for (let i = 0; i < words.length - 1; i++) {
    if (words[i] === '-d' || words[i] === '-s') {
      const value = words[i + 1]!;
      const [addr, mask] = value.split('/');
      if (mask?.includes('.')) {
        const len = mask.split('.').reduce((acc, o) => acc + Number(o).toString(2).replace(/0/g, '').length, 0);
        words[i + 1] = formatCidrWithPrefix(parseCidr(`${addr}/${len}`, true));
      } else {
        try { words[i + 1] = formatCidrWithPrefix(parseCidr(value, true)); } catch { /* keep as is: it will not compare equal */ }
      }
    }
  }
  return words.map((w) => (/^[A-Za-z0-9_.:/,=+-]+$/.test(w) ? w : JSON.stringify(w))).join(' ');
}

export function parseIptablesSave(text: string): IptablesNat {
  const result: IptablesNat = {
    natTablePresent: false,
    chains: { output: { exists: false, rules: [] }, prerouting: { exists: false, rules: [] } },
    jumps: { output: 0, prerouting: 0 },
    foreignRules: [],
    ruleCount: 0,
  };
  const ours = new Map<string, ChainName>(ALL_CHAINS.map((c) => [IPT_CHAIN[c], c]));
  let table = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('*')) { table = line.slice(1); if (table === 'nat') result.natTablePresent = true; continue; }
    if (line.startsWith(':')) {
      const [name, policy] = line.slice(1).split(/\s+/);
      if (policy === '-') result.ruleCount++;
      if (table === 'nat' && name && ours.has(name)) result.chains[ours.get(name)!].exists = true;
      continue;
    }
    if (!line.startsWith('-A ')) continue;
    result.ruleCount++;
    if (table !== 'nat') continue;
    const words = tokenize(line);
    const chainName = words[1] ?? '';
    const ourChain = ours.get(chainName);
    if (ourChain) {
      const normalised = normaliseRule(line);
      result.chains[ourChain].rules.push(normalised);
      if (!(words.includes('--comment') && words[words.indexOf('--comment') + 1] === IPT_COMMENT)) result.foreignRules.push(line);
      continue;
    }
    for (const c of ALL_CHAINS) {
      if (chainName === IPT_BUILTIN[c] && words.length === 4 && words[2] === '-j' && words[3] === IPT_CHAIN[c]) result.jumps[c]++;
    }
  }
  return result;
}

export function liveChains(nat: IptablesNat): IptablesLiveChains {
  return {
    jumps: nat.jumps,
    exists: { output: nat.chains.output.exists, prerouting: nat.chains.prerouting.exists },
  };
}

/** Converged: wanted chains exist with exactly the desired rules and one jump; unwanted ones are gone. */
export function iptablesConverged(nat: IptablesNat, desired: Chain[]): boolean {
  for (const name of ALL_CHAINS) {
    const want = desired.find((c) => c.name === name);
    const live = nat.chains[name];
    if (!want) {
      if (live.exists || nat.jumps[name] !== 0) return false;
      continue;
    }
    const rules = renderIptablesChainRules(want).map(normaliseRule);
    if (!live.exists || nat.jumps[name] !== 1) return false;
    if (rules.length !== live.rules.length || rules.some((r, i) => r !== live.rules[i])) return false;
  }
  return true;
}

/** Our part of the nat table as text, for --diff. */
export function describeIptablesOurs(nat: IptablesNat): string {
  const lines: string[] = [];
  for (const name of ALL_CHAINS) {
    if (nat.jumps[name] > 0) lines.push(`${nat.jumps[name]}× -A ${IPT_BUILTIN[name]} -j ${IPT_CHAIN[name]}`);
    if (nat.chains[name].exists) lines.push(`:${IPT_CHAIN[name]} - [0:0]`, ...nat.chains[name].rules);
  }
  return lines.length ? `${lines.join('\n')}\n` : '';
}

export function describeIptablesDesired(desired: Chain[]): string {
  const lines: string[] = [];
  for (const c of desired) lines.push(`1× -A ${IPT_BUILTIN[c.name]} -j ${IPT_CHAIN[c.name]}`);
  for (const c of desired) lines.push(`:${IPT_CHAIN[c.name]} - [0:0]`, ...renderIptablesChainRules(c).map(normaliseRule));
  return lines.length ? `${lines.join('\n')}\n` : '';
}
