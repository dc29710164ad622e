// Other firewall managers on the host. Each one owns rules we must coexist with (and never flush).

export type FirewallManager = 'firewalld' | 'ufw' | 'docker' | 'kube-proxy';

export interface ManagerProbe {
  /** Process names (one per line, from /proc/<pid>/comm). */
  processes: string;
  /** /etc/ufw/ufw.conf, or null when absent. */
  ufwConf: string | null;
  /** iptables-save output from both backends, for chains the managers create. */
  saves: string;
  /** `nft list tables` output, or null. */
  nftTables: string | null;
}

export function detectManagers(probe: ManagerProbe): FirewallManager[] {
  const procs = new Set(probe.processes.split('\n').map((p) => p.trim()).filter(Boolean));
  const chains = new Set(probe.saves.split('\n').filter((l) => l.startsWith(':')).map((l) => l.slice(1).split(' ')[0]));
  const found: FirewallManager[] = [];
  if (procs.has('firewalld') || /\btable inet firewalld\b/.test(probe.nftTables ?? '')) found.push('firewalld');
  if (/^\s*ENABLED\s*=\s*yes\s*$/im.test(probe.ufwConf ?? '') || chains.has('ufw-before-input')) found.push('ufw');
  if (procs.has('dockerd') || chains.has('DOCKER') || chains.has('DOCKER-USER')) found.push('docker');
  if (procs.has('kube-proxy') || chains.has('KUBE-SERVICES') || /\btable ip kube-proxy\b/.test(probe.nftTables ?? '')) found.push('kube-proxy');
  return found;
}
