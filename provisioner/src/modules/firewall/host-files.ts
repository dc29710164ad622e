// Where the firewall module's files live on a host, and the systemd units that bind the rules to the agent's health.
// The shell side (host-scripts/epoch-firewall.sh) uses the same paths; keep them in step.
import type { FirewallParams } from './params';

export const confDir = '/etc/epoch-provision/firewall';
export const confPath = `${confDir}/firewall.conf`;
export const rulesNftPath = `${confDir}/rules.nft`;
export const rulesV4Path = `${confDir}/rules.v4`;
export const rulesV6Path = `${confDir}/rules.v6`;
/** The "unloaded" rulesets: our chains stay (so conntrack keeps tracking) but redirect nothing. */
export const parkedNftPath = `${confDir}/parked.nft`;
export const parkedV4Path = `${confDir}/parked.v4`;
export const parkedV6Path = `${confDir}/parked.v6`;
export const stateDir = '/var/lib/epoch-provision/firewall';
export const scriptPath = '/usr/local/lib/epoch-provision/epoch-firewall';
export const stagedScriptPath = `${stateDir}/epoch-firewall.stage`;
export const unitName = 'epoch-firewall.service';
export const unitPath = `/etc/systemd/system/${unitName}`;
export const dropInPath = (agentUnit: string) => `/etc/systemd/system/${agentUnit}.d/50-epoch-firewall.conf`;

/**
 * The binding. A long-running watcher rather than a oneshot: it loads the rules once the agent's health endpoint
 * says ready, removes them when health fails (a hung agent, not only a dead one), and loads them again when it
 * recovers. BindsTo= stops it (ExecStopPost unloads) the moment the agent unit stops or crashes; the drop-in on the
 * agent unit also unloads in the agent's own ExecStopPost, so removal never waits for a poll.
 */
export function renderUnit(p: FirewallParams): string {
  return `# Managed by epoch-provision (firewall module); do not edit.
[Unit]
Description=epoch-provision: redirect traffic into ${p.agentUnit} only while it is healthy
BindsTo=${p.agentUnit}
After=${p.agentUnit}

[Service]
Type=simple
ExecStart=${scriptPath} watch
ExecStopPost=${scriptPath} unload
Restart=always
RestartSec=1
KillMode=mixed
TimeoutStopSec=10

[Install]
WantedBy=${p.agentUnit}
`;
}

export function renderDropIn(): string {
  return `# Managed by epoch-provision (firewall module): the agent never leaves rules behind when it stops.
[Unit]
Wants=${unitName}

[Service]
# '+': runs as root even though the agent runs as its own user; '-': never fails the agent's stop.
ExecStopPost=-+${scriptPath} unload
`;
}

export type BackendName = 'nft' | 'iptables-nft' | 'iptables-legacy';

export function renderConf(p: FirewallParams, backend: BackendName, nftFamilies: string[]): string {
  return [
    '# Managed by epoch-provision (firewall module); read by epoch-firewall.',
    `BACKEND=${backend}`,
    `NFT_FAMILIES='${nftFamilies.join(' ')}'`,
    `HEALTH_URL='${p.healthUrl}'`,
    `HEALTH_TIMEOUT=${p.healthTimeoutSeconds}`,
    `AGENT_UNIT='${p.agentUnit}'`,
    '',
  ].join('\n');
}
