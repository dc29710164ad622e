// plan(params, facts) → Change[]: pure. Chooses the backend, renders the desired files and ruleset, compares the
// live state semantically, and emits nothing for a converged host. Every non-empty plan starts by arming the
// on-host auto-revert, and every change's undo restores that snapshot.
import { createHash } from 'node:crypto';
import type { Change, Step } from '../../core/change';
import { ProvisionError } from '../../core/errors';
import type { FirewallFacts } from './facts';
import { managedPaths } from './facts';
import {
  type BackendName, confPath, dropInPath, parkedNftPath, parkedV4Path, parkedV6Path, renderConf, renderDropIn, renderUnit,
  rulesNftPath, rulesV4Path, rulesV6Path, scriptPath, stagedScriptPath, stateDir, unitPath,
} from './host-files';
import { epochFirewallScript } from './host-scripts/epoch-firewall-sh';
import { type Chain, type DesiredRuleset, buildDesired, parkedChains } from './model';
import type { FirewallParams } from './params';
import { describeIptablesDesired, describeIptablesOurs, iptablesConverged, parseIptablesSave } from './parse-iptables';
import { nftTablesEqual, parseNftTableJson } from './parse-nft';
import { ALL_CHAINS, renderIptablesApply } from './render-iptables';
import { NFT_COMMENT, NFT_TABLE, type NftFamily, chainsForNftFamily, describeNft, nftFamiliesFor, renderNftApply } from './render-nft';

/** The host or the parameters make a safe apply impossible; raised before anything is applied. */
export class FirewallRefusedError extends ProvisionError {
  constructor(message: string) {
    super(message, 'firewall-refused');
  }
}

const NFT_FAMILIES: NftFamily[] = ['inet', 'ip', 'ip6'];
const IPTABLES_OWN_TABLES = new Set(['filter', 'nat', 'mangle', 'raw', 'security']);

export function kernelSupportsInetNat(kernel: string): boolean {
  const m = /^(\d+)\.(\d+)/.exec(kernel);
  if (!m) return false;
  const [major, minor] = [Number(m[1]), Number(m[2])];
  return major > 5 || (major === 5 && minor >= 2);
}

/** Tables in `nft list ruleset` that are neither ours nor iptables-nft's compatibility tables. */
export function nativeNftTables(ruleset: string | null): string[] {
  if (!ruleset) return [];
  const out: string[] = [];
  for (const m of ruleset.matchAll(/^table (\S+) (\S+) \{/gm)) {
    const [family, name] = [m[1]!, m[2]!];
    if (name === NFT_TABLE) continue;
    if ((family === 'ip' || family === 'ip6') && IPTABLES_OWN_TABLES.has(name)) continue;
    out.push(`${family} ${name}`);
  }
  return out;
}

const iptRuleCount = (f: FirewallFacts, v: 'legacy' | 'nft') =>
  parseIptablesSave(f.iptablesSave[v].v4 ?? '').ruleCount + parseIptablesSave(f.iptablesSave[v].v6 ?? '').ruleCount;

/** Which backend to use. Prefers nft; follows iptables-nft/-legacy where the host already uses it; never mixes. */
export function chooseBackend(p: FirewallParams, f: FirewallFacts): BackendName {
  const has = (t: string) => f.tools.includes(t);
  const need = (backend: BackendName): BackendName => {
    const tool = backend === 'nft' ? 'nft' : backend;
    if (!has(tool)) throw new FirewallRefusedError(`backend ${backend} was chosen but \`${tool}\` is not installed on the host (tools found: ${f.tools.join(', ') || 'none'})`);
    return backend;
  };
  if (p.backend !== 'auto') return need(p.backend);
  const legacy = iptRuleCount(f, 'legacy');
  const iptNft = iptRuleCount(f, 'nft');
  const native = nativeNftTables(f.nftRuleset);
  if (legacy > 0 && (iptNft > 0 || native.length > 0)) {
    throw new FirewallRefusedError(
      `ambiguous firewall backend: iptables-legacy has ${legacy} rule(s)/chain(s) and nf_tables has ${iptNft} iptables-nft rule(s) and tables [${native.join(', ')}]; ` +
        'adding rules to either could mix backends. Set `backend:` (nft, iptables-nft or iptables-legacy) for this host.',
    );
  }
  if (legacy > 0) return need('iptables-legacy');
  if (iptNft > 0) return need('iptables-nft');
  if (has('nft')) return 'nft';
  if (f.iptablesDefault === 'nft' && has('iptables-nft')) return 'iptables-nft';
  if (f.iptablesDefault === 'legacy' && has('iptables-legacy')) return 'iptables-legacy';
  throw new FirewallRefusedError(`no usable firewall tool on the host: expected nft, iptables-nft or iptables-legacy (found: ${f.tools.join(', ') || 'none'})`);
}

function refuseForeign(p: FirewallParams, f: FirewallFacts): void {
  for (const fam of NFT_FAMILIES) {
    const t = f.nftTables[fam];
    if (t.text !== null && !t.text.includes(NFT_COMMENT)) {
      throw new FirewallRefusedError(`nft table \`${fam} ${NFT_TABLE}\` exists but was not created by epoch-provision (its comment is not "${NFT_COMMENT}"); remove or rename it first`);
    }
  }
  const installed = f.files[confPath] !== null;
  for (const v of ['legacy', 'nft'] as const) {
    for (const fam of ['v4', 'v6'] as const) {
      const nat = parseIptablesSave(f.iptablesSave[v][fam] ?? '');
      if (nat.foreignRules.length > 0) {
        throw new FirewallRefusedError(`iptables-${v} (${fam}) chain with our name holds rules we did not write: ${nat.foreignRules[0]}`);
      }
      for (const c of ALL_CHAINS) {
        if (nat.chains[c].exists && nat.chains[c].rules.length === 0 && !installed) {
          throw new FirewallRefusedError(`iptables-${v} (${fam}) already has a chain named EPOCH_${c.toUpperCase()} that epoch-provision did not create; remove or rename it first`);
        }
      }
    }
  }
  void p;
}

/** Resolves uids/gids from facts; unknown ones are refused with the value that failed. */
function identities(p: FirewallParams, f: FirewallFacts) {
  if (!f.agentUser) throw new FirewallRefusedError(`agent user ${JSON.stringify(p.agentUser)} does not exist on the host (getent passwd found nothing); install the agent first`);
  if (!f.agentGroup) throw new FirewallRefusedError(`agent group ${JSON.stringify(p.agentGroup)} does not exist on the host (getent group found nothing)`);
  const unknown = f.excludeUsers.filter((u) => u.entry === null).map((u) => u.ref);
  if (unknown.length > 0) throw new FirewallRefusedError(`excludeUsers: unknown user(s) ${unknown.map((u) => JSON.stringify(u)).join(', ')} (getent passwd found nothing)`);
  return {
    agentUid: f.agentUser.uid,
    agentGid: f.agentGroup.gid,
    excludeUids: f.excludeUsers.map((u) => u.entry!.uid),
    controllerAddress: f.controllerAddress,
  };
}

/** Files for the chosen backend: path → content (null = must not exist). */
export function desiredFiles(p: FirewallParams, f: FirewallFacts, backend: BackendName, d: DesiredRuleset): Record<string, string | null> {
  const files: Record<string, string | null> = Object.fromEntries(managedPaths(p).map((path) => [path, null]));
  const nftFamilies = backend === 'nft' ? nftFamiliesFor(d, kernelSupportsInetNat(f.kernel)) : [];
  files[scriptPath] = epochFirewallScript;
  files[confPath] = renderConf(p, backend, nftFamilies);
  if (backend === 'nft') {
    files[rulesNftPath] = renderNftApply(d, nftFamilies, 'loaded');
    files[parkedNftPath] = renderNftApply(d, nftFamilies, 'parked');
  } else {
    const zero = { jumps: { output: 0, prerouting: 0 }, exists: { output: false, prerouting: false } };
    const v4 = chainsForNftFamily(d, 'ip');
    const v6 = chainsForNftFamily(d, 'ip6');
    if (d.families.includes(4)) {
      files[rulesV4Path] = renderIptablesApply(v4, zero);
      files[parkedV4Path] = renderIptablesApply(parkedChains(v4), zero);
    }
    if (d.families.includes(6)) {
      files[rulesV6Path] = renderIptablesApply(v6, zero);
      files[parkedV6Path] = renderIptablesApply(parkedChains(v6), zero);
    }
  }
  if (f.systemd) {
    files[unitPath] = renderUnit(p);
    files[dropInPath(p.agentUnit)] = renderDropIn();
  }
  return files;
}

interface LiveView {
  converged: boolean;
  before: string;
  after: string;
  subject: string;
}

/** Our live rules compared with the desired state: redirecting when `wantRules`, else parked (or none). */
function liveView(f: FirewallFacts, backend: BackendName | null, d: DesiredRuleset | null, wantRules: boolean): LiveView {
  const nftLive = NFT_FAMILIES.filter((fam) => f.nftTables[fam].text !== null);
  const ipt = {
    legacy: { v4: parseIptablesSave(f.iptablesSave.legacy.v4 ?? ''), v6: parseIptablesSave(f.iptablesSave.legacy.v6 ?? '') },
    nft: { v4: parseIptablesSave(f.iptablesSave.nft.v4 ?? ''), v6: parseIptablesSave(f.iptablesSave.nft.v6 ?? '') },
  };
  const iptOurs = (v: 'legacy' | 'nft', fam: 'v4' | 'v6') => describeIptablesOurs(ipt[v][fam]);
  const beforeParts = [
    ...nftLive.map((fam) => f.nftTables[fam].text!.trimEnd()),
    ...(['legacy', 'nft'] as const).flatMap((v) => (['v4', 'v6'] as const).map((fam) => (iptOurs(v, fam) ? `# iptables-${v} ${fam} nat\n${iptOurs(v, fam).trimEnd()}` : ''))),
  ].filter(Boolean);
  const before = beforeParts.length ? `${beforeParts.join('\n')}\n` : '';
  if (!backend || !d) {
    const anything = nftLive.length > 0 || before !== '';
    return { converged: !anything, before, after: '', subject: 'epoch-provision firewall rules' };
  }
  const nothingOfOurs = nftLive.length === 0 && before === '';
  // Loaded (agent healthy) must match the redirecting rules; otherwise parked (or never loaded: fresh, or after a
  // reboot before the agent became healthy) is converged, and a redirect would be wrong.
  const want = (chains: Chain[]) => (wantRules ? chains : parkedChains(chains));
  let converged: boolean;
  let after: string;
  if (backend === 'nft') {
    const fams = nftFamiliesFor(d, kernelSupportsInetNat(f.kernel));
    const matches =
      NFT_FAMILIES.every((fam) => fams.includes(fam) || f.nftTables[fam].json === null) &&
      fams.every((fam) => {
        const json = f.nftTables[fam].json;
        return json !== null && nftTablesEqual(parseNftTableJson(json), want(chainsForNftFamily(d, fam)));
      }) &&
      (['legacy', 'nft'] as const).every((v) => iptOurs(v, 'v4') === '' && iptOurs(v, 'v6') === '');
    converged = matches || (!wantRules && nothingOfOurs);
    after = describeNft(d, fams, wantRules ? 'loaded' : 'parked');
  } else {
    const v = backend === 'iptables-nft' ? 'nft' : 'legacy';
    const other = v === 'nft' ? 'legacy' : 'nft';
    const want4 = d.families.includes(4) ? want(chainsForNftFamily(d, 'ip')) : [];
    const want6 = d.families.includes(6) ? want(chainsForNftFamily(d, 'ip6')) : [];
    const matches =
      nftLive.length === 0 &&
      iptablesConverged(ipt[v].v4, want4) &&
      iptablesConverged(ipt[v].v6, want6) &&
      iptOurs(other, 'v4') === '' && iptOurs(other, 'v6') === '';
    converged = matches || (!wantRules && nothingOfOurs);
    after = [
      want4.length ? `# iptables-${v} v4 nat\n${describeIptablesDesired(want4).trimEnd()}` : '',
      want6.length ? `# iptables-${v} v6 nat\n${describeIptablesDesired(want6).trimEnd()}` : '',
    ].filter(Boolean).join('\n');
    after = after ? `${after}\n` : '';
  }
  return { converged, before, after, subject: `epoch-provision firewall rules (${backend})` };
}

/** A short, stable id of what this plan moves from and to; names the auto-revert on the host. */
function generation(...parts: unknown[]): string {
  return createHash('sha256').update(JSON.stringify(parts)).digest('hex').slice(0, 12);
}

function armChange(gen: string, seconds: number): Change {
  // seconds = 0: snapshot only (removal): it can only make traffic flow directly, so nothing needs confirming,
  // and uninstall must not come back by itself; the snapshot still lets the runner undo it.
  // The script travels on stdin and is staged first, so arming works before it is installed and the revert never
  // runs a script that the apply is about to replace.
  const arm: Step = {
    kind: 'run',
    argv: ['sh', '-c', `umask 022 && mkdir -p ${stateDir} && cat > ${stagedScriptPath}.new && chmod 755 ${stagedScriptPath}.new && mv -f ${stagedScriptPath}.new ${stagedScriptPath} && exec ${stagedScriptPath} arm "$1" "$2"`, 'sh', gen, String(seconds)],
    stdin: epochFirewallScript,
    timeoutMs: 30_000,
  };
  return {
    id: seconds === 0 ? 'firewall:snapshot' : 'firewall:arm-revert',
    summary:
      seconds === 0
        ? `snapshot the firewall state as ${gen} (for undo; removal is not auto-reverted)`
        : `arm on-host auto-revert ${gen}: restores the previous firewall state in ${seconds} s unless confirmed`,
    steps: [arm],
    undo: [undoStep(gen)],
  };
}

const undoStep = (gen: string): Step => ({ kind: 'run', argv: [stagedScriptPath, 'undo', gen], timeoutMs: 120_000 });

export function planFirewall(p: FirewallParams, f: FirewallFacts): Change[] {
  refuseForeign(p, f);
  if (p.state === 'absent') return planRemoval(p, f);

  const ids = identities(p, f);
  const backend = chooseBackend(p, f);
  const d = buildDesired(p, ids);
  const files = desiredFiles(p, f, backend, d);
  const wantRules = f.agent.active && f.agent.healthy;
  const live = liveView(f, backend, d, wantRules);
  const fileChanges = Object.entries(files).filter(([path, content]) => f.files[path] !== content);
  const bindingOk = !f.agent.active || f.bindingActive;
  if (fileChanges.length === 0 && live.converged && bindingOk) return [];

  const gen = generation(files, live.before, backend);
  const undo = [undoStep(gen)];
  const changes: Change[] = [armChange(gen, p.revertSeconds)];
  if (fileChanges.length > 0) {
    const steps: Step[] = fileChanges.map(([path, content]): Step => {
      if (content === null) return { kind: 'run', argv: ['rm', '-f', path] };
      const validate =
        path === rulesNftPath || path === parkedNftPath ? ['nft', '-c', '-f', '{}']
        : path === rulesV4Path || path === parkedV4Path ? [`${backend}-restore`, '-w', '--test', '--noflush', '{}']
        : path === rulesV6Path || path === parkedV6Path ? [`ip6${backend.slice(2)}-restore`, '-w', '--test', '--noflush', '{}']
        : path === scriptPath ? ['sh', '-n', '{}']
        : undefined;
      return { kind: 'put', path, content, mode: path === scriptPath ? 0o755 : 0o644, ...(validate && { validate }) };
    });
    const changed = fileChanges.map(([path]) => path);
    const rulesFile = backend === 'nft' ? rulesNftPath : rulesV4Path;
    changes.push({
      id: 'firewall:files',
      summary: `write ${changed.join(', ')}`,
      diff: { subject: rulesFile, before: f.files[rulesFile] ?? '', after: files[rulesFile] ?? '' },
      steps,
      undo,
    });
  }
  // The kernel cannot unregister a legacy table once loaded: say so before the first load, not after removal.
  const legacyNatUnloaded = backend === 'iptables-legacy'
    ? (['v4', 'v6'] as const).filter((fam) => files[fam === 'v4' ? rulesV4Path : rulesV6Path] !== undefined && !/^\*nat$/m.test(f.iptablesSave.legacy[fam] ?? ''))
    : [];
  const notes = [
    legacyNatUnloaded.length > 0
      ? ` (iptables-legacy: this host's ${legacyNatUnloaded.join(' and ')} nat table is not loaded yet; loading our rules creates it and the kernel cannot unregister it, so removal will leave it empty (ACCEPT policies, no rules) rather than absent; choose backend: nft to avoid that)`
      : '',
    wantRules ? '' : ` (agent ${f.agent.active ? 'not healthy' : 'not running'}: rules stay unloaded until it passes its health check)`,
    f.services.docker && p.containerInterfaces.length === 0 && p.modes.includes('outgoing')
      ? ' (docker: container traffic is not covered by OUTPUT; set containerInterfaces: [docker0] to redirect it in PREROUTING)'
      : '',
  ].join('');
  changes.push({
    id: 'firewall:activate',
    summary: `load the ${backend} rules bound to ${p.agentUnit}'s health${notes}`,
    diff: { subject: live.subject, before: live.before, after: live.after },
    steps: [{ kind: 'run', argv: [scriptPath, 'activate'], timeoutMs: (p.healthTimeoutSeconds + 30) * 1000 }],
    undo,
  });
  return changes;
}

function planRemoval(p: FirewallParams, f: FirewallFacts): Change[] {
  const live = liveView(f, null, null, false);
  const present = managedPaths(p).filter((path) => f.files[path] !== null);
  if (present.length === 0 && live.converged && !f.bindingActive) return [];
  const gen = generation('absent', f.files, live.before);
  return [
    armChange(gen, 0),
    {
      id: 'firewall:remove',
      summary: `remove the epoch-provision firewall rules, binding and files (${present.join(', ') || 'live rules only'})`,
      diff: { subject: 'epoch-provision firewall rules', before: live.before, after: '' },
      steps: [
        { kind: 'run', argv: [stagedScriptPath, 'purge'], timeoutMs: 60_000 },
        { kind: 'run', argv: ['rm', '-f', ...present] },
        ...(f.systemd ? [{ kind: 'run' as const, argv: ['systemctl', 'daemon-reload'] }] : []),
      ],
      undo: [undoStep(gen)],
    },
  ];
}
