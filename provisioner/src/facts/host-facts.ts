// All host facts in ONE round trip: a POSIX sh script prints delimited sections, pure parsers read them.
import { identityFunction } from './binary-identity';
import { FactParseError } from './fact-parse-error';
import { type EpochState, journalDir, parseEpochState } from './epoch-state';
import { decideFirewallBackend, type FirewallFacts } from './firewall-backend';
import { detectManagers, type FirewallManager } from './managers';
import { parseNodeVersion, type NodeVersion } from './node-version';
import { classifyOs, type OsVerdict } from './os-release';
import { splitSections } from './sections';

export interface HostFacts {
  os: OsVerdict;
  /** `uname -m`, normalised: x86_64, aarch64, armv7l, ... */
  architecture: string;
  initSystem: 'systemd' | 'other';
  firewall: FirewallFacts;
  managers: FirewallManager[];
  node: NodeVersion | null;
  epoch: EpochState;
}

// Each probe prints its section marker, or the `:absent` marker when the tool is not installed.
// Runs as root (become) because iptables-save needs it; every command is read-only. Kept lean because it runs on
// every host of every run: IPv4 tables only (enough to tell the backends apart and to see docker/kube-proxy/ufw
// chains), plain iptables-save only where the -legacy/-nft variants do not exist (iptables < 1.8).
export const hostFactsScript = `
${identityFunction}
probe() { name=$1; tool=$2; shift 2
  if command -v "$tool" >/dev/null 2>&1; then echo "@@epoch:$name@@"; "$@" 2>&1; else echo "@@epoch:$name:absent@@"; fi; }
echo '@@epoch:os-release@@'; cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release 2>/dev/null
echo '@@epoch:arch@@'; uname -m
echo '@@epoch:init@@'; cat /proc/1/comm 2>/dev/null; [ -d /run/systemd/system ] && echo run-systemd-system
probe iptables-version iptables iptables -V
probe nft-version nft command -v nft
probe legacy-save iptables-legacy-save iptables-legacy-save
probe nft-save iptables-nft-save iptables-nft-save
command -v iptables-legacy-save >/dev/null 2>&1 || probe iptables-save iptables-save iptables-save
probe nft-tables nft nft list tables
echo '@@epoch:processes@@'; cat /proc/[0-9]*/comm 2>/dev/null
if [ -r /etc/ufw/ufw.conf ]; then echo '@@epoch:ufw-conf@@'; cat /etc/ufw/ufw.conf; else echo '@@epoch:ufw-conf:absent@@'; fi
# node's version comes from the controller cache while the binary's identity holds (gather-host-facts.ts).
if p=$(command -v node 2>/dev/null); then echo '@@epoch:node-identity@@'; echo "path=$p"; epoch_identity "$p"; else echo '@@epoch:node:absent@@'; fi
if [ -L /opt/epoch-agent/current ]; then echo '@@epoch:agent-current@@'; readlink /opt/epoch-agent/current; else echo '@@epoch:agent-current:absent@@'; fi
if [ -d ${journalDir} ]; then echo '@@epoch:journal@@'; ls -1 ${journalDir}; else echo '@@epoch:journal:absent@@'; fi
echo '@@epoch:end@@'
`;

const normaliseArch: Record<string, string> = { amd64: 'x86_64', arm64: 'aarch64' };

export function parseHostFacts(output: string): HostFacts {
  const s = splitSections(output);
  if (!s.has('end')) throw new FactParseError('host facts', 'the fact script output ended early (no @@epoch:end@@ marker)', output);
  const osText = s.get('os-release') ?? '';
  const archRaw = (s.get('arch') ?? '').trim();
  if (!archRaw) throw new FactParseError('architecture', '`uname -m` printed nothing', output);
  const init = s.get('init') ?? '';
  // iptables < 1.8 has no -legacy-save/-nft-save names: its plain iptables-save is the legacy backend.
  const iptablesVersion = s.get('iptables-version') ?? null;
  const legacySave = s.get('legacy-save') ?? (iptablesVersion && !iptablesVersion.includes('(nf_tables)') ? (s.get('iptables-save') ?? null) : null);
  const nftSave = s.get('nft-save') ?? null;
  const firewall = decideFirewallBackend({ iptablesVersion, nftVersion: s.get('nft-version') ?? null, legacySave, nftSave });
  return {
    os: classifyOs(osText),
    architecture: normaliseArch[archRaw] ?? archRaw,
    initSystem: /^systemd$/m.test(init) && init.includes('run-systemd-system') ? 'systemd' : 'other',
    firewall,
    managers: detectManagers({
      processes: s.get('processes') ?? '',
      ufwConf: s.get('ufw-conf') ?? null,
      saves: [legacySave, nftSave, s.get('iptables-save')].filter(Boolean).join('\n'),
      nftTables: s.get('nft-tables') ?? null,
    }),
    node: parseNodeVersion(s.get('node') ?? null),
    epoch: parseEpochState(s.get('agent-current') ?? null, s.get('journal') ?? null),
  };
}
