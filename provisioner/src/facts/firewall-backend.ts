// Which netfilter front end a host uses, decided like iptables-wrappers: `iptables -V` says which binary the
// `iptables` alternative is, and rule counts in both backends say which one is really in use.

export type FirewallBackend = 'nft' | 'iptables-nft' | 'iptables-legacy';

export interface FirewallProbe {
  /** Output of `iptables -V`, or null when iptables is not installed. */
  iptablesVersion: string | null;
  /** Where nft is (`command -v nft`), or null when it is not installed. */
  nftVersion: string | null;
  /** `iptables-legacy-save` output (both families concatenated), or null when the tool is missing. */
  legacySave: string | null;
  /** `iptables-nft-save` output, or null when the tool is missing. */
  nftSave: string | null;
}

export interface FirewallFacts {
  /** null when neither iptables nor nft is installed. */
  backend: FirewallBackend | null;
  iptablesMode: 'nf_tables' | 'legacy' | null;
  nftAvailable: boolean;
  legacyRules: number;
  nftRules: number;
  /** Set when the evidence disagrees (rules in both backends, or in the one `iptables` does not use). */
  ambiguous: string | null;
}

/** Rules (`-A` lines) in an iptables-save dump. */
export function countSaveRules(save: string | null): number {
  if (!save) return 0;
  return save.split('\n').filter((l) => l.startsWith('-A ')).length;
}

export function parseIptablesMode(version: string | null): FirewallFacts['iptablesMode'] {
  if (!version) return null;
  if (version.includes('(nf_tables)')) return 'nf_tables';
  if (version.includes('(legacy)')) return 'legacy';
  // iptables before 1.8 had only the legacy backend and printed no mode.
  return /iptables v1\.[0-7]\./.test(version) ? 'legacy' : null;
}

export function decideFirewallBackend(probe: FirewallProbe): FirewallFacts {
  const iptablesMode = parseIptablesMode(probe.iptablesVersion);
  const nftAvailable = probe.nftVersion !== null;
  const legacyRules = countSaveRules(probe.legacySave);
  const nftRules = countSaveRules(probe.nftSave);
  let ambiguous: string | null = null;
  let backend: FirewallBackend | null;
  if (iptablesMode === null && probe.iptablesVersion !== null) {
    ambiguous = `cannot tell the iptables backend from \`iptables -V\`: ${JSON.stringify(probe.iptablesVersion.trim())}`;
  }
  if (legacyRules > 0 && nftRules > 0) {
    ambiguous = `rules exist in both iptables-legacy (${legacyRules}) and iptables-nft (${nftRules}); something on this host uses each`;
  } else if (iptablesMode === 'nf_tables' && legacyRules > 0) {
    ambiguous = `iptables is the nf_tables variant but ${legacyRules} rule(s) live in iptables-legacy (a legacy user such as an old kube-proxy or docker)`;
  } else if (iptablesMode === 'legacy' && nftRules > 0) {
    ambiguous = `iptables is the legacy variant but ${nftRules} rule(s) live in iptables-nft`;
  }
  if (iptablesMode === 'legacy') backend = 'iptables-legacy';
  else if (iptablesMode === 'nf_tables') backend = legacyRules > nftRules ? 'iptables-legacy' : 'iptables-nft';
  else if (nftAvailable) backend = 'nft';
  else backend = null;
  return { backend, iptablesMode, nftAvailable, legacyRules, nftRules, ambiguous };
}
