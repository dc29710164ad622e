// Gather for the firewall module: one read-only shell script run over the transport, printing `@@ <section>`
// blocks, and a pure parser of that output (tested on captured outputs). Nothing here writes: `iptables-save` is
// called without `-t nat`, because on iptables-legacy asking for a table creates it.
import type { FirewallParams } from './params';
import {
  confPath, dropInPath, parkedNftPath, parkedV4Path, parkedV6Path, rulesNftPath, rulesV4Path, rulesV6Path, scriptPath, unitName, unitPath,
} from './host-files';

export interface PasswdEntry { name: string; uid: number; gid: number }

export interface FirewallFacts {
  kernel: string;
  systemd: boolean;
  tools: string[];
  /** `iptables -V`: which variant the plain `iptables` command is (`nf_tables`/`legacy`), if installed. */
  iptablesDefault: 'nft' | 'legacy' | null;
  /** `nft list ruleset`, null without nft. */
  nftRuleset: string | null;
  /** Our table per family: JSON and text listings, null when absent. */
  nftTables: Record<'inet' | 'ip' | 'ip6', { json: string | null; text: string | null }>;
  /** Whole `*-save` outputs per variant and family, null when the tool is missing. */
  iptablesSave: Record<'legacy' | 'nft', { v4: string | null; v6: string | null }>;
  agentUser: PasswdEntry | null;
  agentGroup: { name: string; gid: number } | null;
  /** Each `excludeUsers` entry as written in params, with what getent found. */
  excludeUsers: { ref: string; entry: PasswdEntry | null }[];
  /** Client address of the SSH connection the controller uses, from SSH_CONNECTION. */
  controllerAddress: string | null;
  /** Our managed files: content, or null when absent. */
  files: Record<string, string | null>;
  agent: { active: boolean; healthy: boolean };
  /** epoch-firewall.service (systemd) or the watchdog (no systemd) is running. */
  bindingActive: boolean;
  services: { firewalld: boolean; ufw: boolean; docker: boolean };
}

export function managedPaths(p: FirewallParams): string[] {
  return [scriptPath, confPath, rulesNftPath, rulesV4Path, rulesV6Path, parkedNftPath, parkedV4Path, parkedV6Path, unitPath, dropInPath(p.agentUnit)];
}

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** The read-only probe script. Values from params are single-quoted here (they are validated names/URLs). */
export function gatherScript(p: FirewallParams): string {
  const lines = [
    'export LC_ALL=C',
    'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    'have() { command -v "$1" >/dev/null 2>&1; }',
    'echo "@@ kernel"; uname -r',
    'echo "@@ systemd"; if [ -d /run/systemd/system ] && have systemctl; then echo yes; else echo no; fi',
    'echo "@@ tools"; for t in nft iptables iptables-nft iptables-legacy ip6tables-nft ip6tables-legacy iptables-nft-save iptables-legacy-save systemd-run setsid curl base64 getent; do have "$t" && echo "$t"; done',
    'echo "@@ iptables-version"; have iptables && iptables -V 2>&1',
    'if have nft; then echo "@@ nft-ruleset"; nft list ruleset 2>&1; fi',
    // Which families have our table: one `nft list tables` ("table FAMILY NAME" per line) rather than a try per family.
    'nt=; if have nft; then nt=$(nft list tables 2>/dev/null); fi',
    'for fam in inet ip ip6; do case "\n$nt\n" in *"\ntable $fam epoch_provision\n"*) echo "@@ nft-json $fam"; nft -j list table "$fam" epoch_provision; echo; echo "@@ nft-text $fam"; nft list table "$fam" epoch_provision ;; esac; done',
    'for t in iptables-legacy ip6tables-legacy iptables-nft ip6tables-nft; do if have "$t-save"; then echo "@@ save $t"; "$t-save" 2>/dev/null; fi; done',
    `echo "@@ agent-user"; getent passwd ${q(p.agentUser)}`,
    `echo "@@ agent-group"; getent group ${q(p.agentGroup)}`,
    ...p.excludeUsers.map((u) => `echo ${q(`@@ exclude-user ${u}`)}; getent passwd ${q(String(u))}`),
    ...managedPaths(p).map((path) => `if [ -f ${q(path)} ]; then echo ${q(`@@ file ${path}`)}; base64 -w0 ${q(path)}; echo; fi`),
    // One systemctl call for every unit state the sections below report, in this order ($1..$5).
    `if [ -d /run/systemd/system ]; then set -- $(systemctl is-active ${q(p.agentUnit)} ${unitName} firewalld ufw docker 2>/dev/null); else set --; fi`,
    `echo "@@ agent-active"; if [ -d /run/systemd/system ]; then echo "$1"; else pgrep -u ${q(p.agentUser)} >/dev/null 2>&1 && echo active || echo unknown; fi`,
    `echo "@@ agent-health"; if have curl; then curl -fsS --max-time 2 ${q(p.healthUrl)} 2>/dev/null; elif have wget; then wget -q -T 2 -O - ${q(p.healthUrl)} 2>/dev/null; fi; echo`,
    `echo "@@ binding"; if [ -d /run/systemd/system ]; then echo "$2"; elif [ -r /run/epoch-firewall-watchdog.pid ] && kill -0 "$(cat /run/epoch-firewall-watchdog.pid)" 2>/dev/null; then echo active; else echo inactive; fi`,
    // Read here too: a login as root keeps it, which saves the separate call below (sudo resets the environment).
    'echo "@@ ssh-connection"; printf \'%s\\n\' "$SSH_CONNECTION"',
    'echo "@@ services"; if [ -d /run/systemd/system ]; then [ "$3" = active ] && echo firewalld; [ "$4" = active ] && echo ufw; [ "$5" = active ] && echo docker; fi; have docker && echo docker-cli; [ -e /var/run/docker.sock ] && echo docker; true',
  ];
  return `${lines.join('\n')}\n`;
}

/** The controller's address is read without become: sudo resets the environment and drops SSH_CONNECTION. */
export const sshConnectionProbe = ['sh', '-c', 'echo "$SSH_CONNECTION"'] as const;

/** SSH_CONNECTION as the gather script saw it ('' when its environment had none, e.g. after sudo). */
export function sshConnectionFrom(out: string): string {
  return (sections(out).get('ssh-connection') ?? '').trim();
}

function sections(out: string): Map<string, string> {
  const map = new Map<string, string>();
  let current: string | null = null;
  let buf: string[] = [];
  const flush = () => { if (current !== null) map.set(current, buf.join('\n')); };
  for (const line of out.split('\n')) {
    if (line.startsWith('@@ ')) { flush(); current = line.slice(3); buf = []; } else buf.push(line);
  }
  flush();
  return map;
}

function parsePasswd(line: string | undefined): PasswdEntry | null {
  const parts = (line ?? '').trim().split('\n')[0]?.split(':') ?? [];
  if (parts.length < 4 || !/^\d+$/.test(parts[2]!) || !/^\d+$/.test(parts[3]!)) return null;
  return { name: parts[0]!, uid: Number(parts[2]), gid: Number(parts[3]) };
}

export function parseGatherOutput(p: FirewallParams, out: string, sshConnection: string): FirewallFacts {
  const s = sections(out);
  const text = (k: string) => s.get(k) ?? null;
  const trimmed = (k: string) => (s.get(k) ?? '').trim();
  const version = trimmed('iptables-version');
  const group = trimmed('agent-group').split('\n')[0]?.split(':') ?? [];
  const files: Record<string, string | null> = {};
  for (const path of managedPaths(p)) {
    const b64 = s.get(`file ${path}`);
    files[path] = b64 === undefined ? null : Buffer.from(b64.trim(), 'base64').toString('utf8');
  }
  const table = (fam: string) => ({ json: s.has(`nft-json ${fam}`) ? trimmed(`nft-json ${fam}`) : null, text: s.has(`nft-text ${fam}`) ? text(`nft-text ${fam}`) : null });
  const health = trimmed('agent-health');
  let healthy = false;
  try { healthy = health !== '' && (JSON.parse(health) as { ready?: unknown }).ready === true; } catch { healthy = false; }
  const services = trimmed('services').split('\n');
  const client = sshConnection.trim().split(/\s+/)[0] ?? '';
  return {
    kernel: trimmed('kernel'),
    systemd: trimmed('systemd') === 'yes',
    tools: trimmed('tools').split('\n').filter(Boolean),
    iptablesDefault: /nf_tables/.test(version) ? 'nft' : /legacy/.test(version) ? 'legacy' : null,
    nftRuleset: text('nft-ruleset'),
    nftTables: { inet: table('inet'), ip: table('ip'), ip6: table('ip6') },
    iptablesSave: {
      legacy: { v4: text('save iptables-legacy'), v6: text('save ip6tables-legacy') },
      nft: { v4: text('save iptables-nft'), v6: text('save ip6tables-nft') },
    },
    agentUser: parsePasswd(s.get('agent-user')),
    agentGroup: group.length >= 3 && /^\d+$/.test(group[2]!) ? { name: group[0]!, gid: Number(group[2]) } : null,
    excludeUsers: p.excludeUsers.map((u) => ({ ref: String(u), entry: parsePasswd(s.get(`exclude-user ${u}`)) })),
    controllerAddress: client === '' ? null : client.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, '$1'),
    files,
    agent: { active: trimmed('agent-active') === 'active', healthy },
    bindingActive: trimmed('binding') === 'active',
    services: {
      firewalld: services.includes('firewalld'),
      ufw: services.includes('ufw'),
      docker: services.includes('docker'),
    },
  };
}
