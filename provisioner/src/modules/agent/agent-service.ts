// `agent_service`: everything the agent needs around a release, and the running service.
//   user epoch-agent (system, /usr/sbin/nologin; undo removes it only when this module created it)
//   /etc/epoch-agent/agent.json, validated on the host with `epoch-agent check-config` before it is moved in
//   /var/lib/epoch-agent owned by the agent; key files 0600 owned by the agent
//   systemd: a hardened epoch-agent.service (verified with systemd-analyze when present), enabled, started, and
//            restarted when its unit, config or release changed; start returns once /healthz says ready
//   no systemd: the POSIX-sh supervisor (provisioner/assets/agent/epoch-agent-supervise.sh)
import { z } from 'zod';
import type { Argv, Change, Step } from '../../core/change';
import { knownIdentities } from '../../facts/binary-identity';
import { quoteWord } from '../../transport/shell-quote';
import type { ExecResult } from '../../transport/transport';
import { probeAll } from '../ca/host-files';
import type { HostContext, ProvisionModule } from '../module';
import { agentConfigParams, configHasSecrets, keyFilesOf, renderAgentConfig } from './agent-config';
import {
  agentEntry,
  agentGroup,
  agentUser,
  configDir,
  configPath,
  libexecDir,
  stateDir,
  supervisorEnvPath,
  supervisorScript,
  unitName,
  unitPath,
  waitHealthyScript,
} from './layout';
import { type HostRuntimeFacts, minimumNodeVersion, nodeCandidates, runtimeFromProbe, runtimeMemoKey, runtimeProbeArgv, usableNode } from './node-runtime';
import { missingNodeMessage, PreflightError } from './preflight';
import { supervisorSource } from './supervisor-script';
import { nologin, removeUserSteps, userComment, userChanges } from './agent-user';
import { renderUnit, waitHealthySource } from './systemd-unit';

export const agentServiceParams = z
  .object({
    ...agentConfigParams.shape,
    /** auto: systemd when /run/systemd/system exists, else the sh supervisor. */
    init: z.enum(['auto', 'systemd', 'supervisor']).default('auto'),
    /** Node binary for ExecStart; default: the first node/nodejs on the host that is new enough. */
    node_path: z.string().startsWith('/').optional(),
    min_node_version: z.string().regex(/^\d+\.\d+\.\d+$/).default(minimumNodeVersion),
    memory_max: z.string().regex(/^(\d+[KMGT]?|infinity)$/, 'memory_max must be like 256M').default('256M'),
    /** Bound on the agent's SIGTERM drain (it drains for up to 10 s itself); TimeoutStopSec is this + 5. */
    drain_seconds: z.number().int().min(1).max(600).default(15),
    ready_seconds: z.number().int().min(1).max(300).default(30),
    start_limit_burst: z.number().int().min(1).default(5),
    start_limit_interval_sec: z.number().int().min(1).default(300),
    /** absent: stop and remove the service, its files, state and the user this module created. */
    state: z.enum(['present', 'absent']).default('present'),
  })
  .strict();
export type AgentServiceParams = z.infer<typeof agentServiceParams>;

export interface PathState {
  owner: string;
  group: string;
  /** Octal permission bits as stat prints them, e.g. `750`. */
  mode: string;
  type: 'directory' | 'file' | 'other';
}

export interface AgentServiceFacts {
  runtime: HostRuntimeFacts;
  /** gecos tells whether this module created the user (it sets its own comment). */
  user: { uid: number; shell: string; gecos?: string } | null;
  groupExists: boolean;
  paths: Record<string, PathState | null>;
  /** Contents of the files this module writes; null when absent. */
  files: Record<string, string | null>;
  /** systemd's view of epoch-agent.service; null on hosts without systemd. */
  systemd: { activeState: string; unitFileState: string; loadState: string } | null;
  systemdAnalyze: boolean;
  supervisorRunning: boolean;
  /** Version in /opt/epoch-agent/current/manifest.json. */
  currentVersion: string | null;
  /** Version the running agent reports on /healthz (null when it does not answer). */
  runningVersion: string | null;
}

const managedFiles = [configPath, unitPath, waitHealthyScript, supervisorScript, supervisorEnvPath];

const healthJs = `const [h,p]=process.argv.slice(1);require('http').get({host:h,port:+p,path:'/healthz',timeout:3000},r=>{let b='';r.on('data',d=>b+=d);r.on('end',()=>process.stdout.write(b))}).on('timeout',function(){this.destroy()}).on('error',()=>{})`;

const probeScript = `user=$1 unit=$2 node=$3 hhost=$4 hport=$5 healthjs=$6; shift 6
echo "passwd=$(getent passwd "$user")"
echo "group=$(getent group "$user")"
mode=stat
for a in "$@"; do
  case $a in --stat) mode=stat; continue ;; --file) mode=file; continue ;; esac
  if [ "$mode" = stat ]; then
    if [ -e "$a" ]; then echo "stat=$(stat -c '%U %G %a %F' -- "$a")|$a"; else echo "stat=-|$a"; fi
  elif [ -f "$a" ]; then echo "file=$a $(base64 -w0 < "$a")"
  else echo "file=$a -"
  fi
done
if [ -d /run/systemd/system ]; then
  systemctl show "$unit" -p ActiveState -p LoadState --no-pager | sed 's/^/systemd./'
  # From disk: \`show\` keeps the state it read at the last daemon-reload, and \`enable --no-reload\` does not reload.
  echo "systemd.UnitFileState=$(systemctl is-enabled "$unit" 2>/dev/null)"
  if command -v systemd-analyze > /dev/null 2>&1; then echo systemd_analyze=yes; fi
fi
if [ -x /opt/epoch-agent/libexec/epoch-agent-supervise.sh ] && /opt/epoch-agent/libexec/epoch-agent-supervise.sh status > /dev/null 2>&1; then echo supervisor=running; fi
echo "current_manifest=$(base64 -w0 < /opt/epoch-agent/current/manifest.json 2>/dev/null)"
# One HTTP request with a short timeout: curl when the host has it (no process start to speak of), else node (the
# one given, or when none is, the first candidate there is: any node can make one HTTP request).
case $hhost in *:*) hurl="http://[$hhost]:$hport/healthz" ;; *) hurl="http://$hhost:$hport/healthz" ;; esac
if command -v curl > /dev/null 2>&1; then echo "health=$(curl -s --noproxy '*' --connect-timeout 2 --max-time 3 "$hurl" 2>/dev/null | base64 -w0)"
else
  if [ -z "$node" ]; then for c in ${nodeCandidates.map(quoteWord).join(' ')}; do node=$(command -v "$c" 2>/dev/null) && break; node=; done; fi
  if [ -n "$node" ]; then echo "health=$(timeout 5 "$node" -e "$healthjs" "$hhost" "$hport" 2>/dev/null | base64 -w0)"; fi
fi
exit 0
`;

/** nodePath: the node for the health request on a host without curl ('': the first candidate found). */
export function serviceProbeArgv(nodePath: string, health: { host: string; port: number }, statPaths: readonly string[]): Argv {
  return ['sh', '-c', probeScript, 'epoch-service-probe', agentUser, unitName, nodePath, health.host, String(health.port), healthJs, '--stat', ...statPaths, '--file', ...managedFiles];
}

const fromBase64 = (s: string) => Buffer.from(s, 'base64').toString('utf8');

export function parseServiceProbe(stdout: string, runtime: HostRuntimeFacts): AgentServiceFacts {
  const facts: AgentServiceFacts = {
    runtime,
    user: null,
    groupExists: false,
    paths: {},
    files: {},
    systemd: null,
    systemdAnalyze: false,
    supervisorRunning: false,
    currentVersion: null,
    runningVersion: null,
  };
  const systemd: Record<string, string> = {};
  for (const line of stdout.split('\n')) {
    const eq = line.indexOf('=');
    if (eq < 0) continue;
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1);
    if (key === 'passwd' && value) {
      const f = value.split(':');
      facts.user = { uid: Number(f[2]), shell: f[6] ?? '', gecos: f[4] ?? '' };
    } else if (key === 'group') facts.groupExists = value !== '';
    else if (key === 'stat') {
      const bar = value.indexOf('|');
      const [owner, group, mode, ...type] = value.slice(0, bar).split(' ');
      const kind = type.join(' ');
      facts.paths[value.slice(bar + 1)] = owner === '-' || !group || !mode
        ? null
        : { owner: owner!, group, mode, type: kind === 'directory' ? 'directory' : kind.startsWith('regular') ? 'file' : 'other' };
    } else if (key === 'file') {
      const space = value.lastIndexOf(' ');
      const content = value.slice(space + 1);
      facts.files[value.slice(0, space)] = content === '-' ? null : fromBase64(content);
    } else if (key.startsWith('systemd.')) systemd[key.slice(8)] = value;
    else if (key === 'systemd_analyze') facts.systemdAnalyze = true;
    else if (key === 'supervisor') facts.supervisorRunning = true;
    else if (key === 'current_manifest' && value) facts.currentVersion = jsonField(fromBase64(value), 'version');
    else if (key === 'health' && value) facts.runningVersion = jsonField(fromBase64(value), 'version');
  }
  if (systemd.ActiveState !== undefined) {
    facts.systemd = { activeState: systemd.ActiveState, unitFileState: systemd.UnitFileState ?? '', loadState: systemd.LoadState ?? '' };
  }
  return facts;
}

function jsonField(text: string, field: string): string | null {
  try {
    const v = (JSON.parse(text) as Record<string, unknown>)[field];
    return typeof v === 'string' ? v : null;
  } catch {
    return null;
  }
}

export const agentService: ProvisionModule<AgentServiceParams, AgentServiceFacts> & {
  predict(params: AgentServiceParams, facts: AgentServiceFacts, earlier: ReadonlyMap<string, readonly string[]>): Change[] | null;
} = {
  name: 'agent_service',
  params: agentServiceParams,
  async gather(host: HostContext, params: AgentServiceParams): Promise<AgentServiceFacts> {
    const fail = (message: string) => new PreflightError(message);
    const statPaths = [configDir, stateDir, libexecDir, ...keyFilesOf(renderAgentConfig(params))];
    const serviceFrom = (r: ExecResult, runtime: HostRuntimeFacts) => {
      if (r.exitCode !== 0) throw new PreflightError(`service probe \`${r.command}\` exited ${r.exitCode}: ${r.stderr.trim()}`);
      return parseServiceProbe(r.stdout, runtime);
    };
    // agent_preflight took the runtime earlier in this run (and nothing was applied since): the service probe only.
    const held = host.memo?.get<HostRuntimeFacts>(runtimeMemoKey);
    if (held) {
      const nodePath = params.node_path ?? usableNode(held.nodes, params.min_node_version)?.path ?? '';
      return serviceFrom(await host.transport.exec(serviceProbeArgv(nodePath, params.health, statPaths), { timeoutMs: 60_000 }), held);
    }
    // Otherwise both probes in one round trip (`--version` follows only for a node the controller has not seen).
    const [rt, svc] = await probeAll(host.transport, [{ argv: runtimeProbeArgv(knownIdentities(host.memo)) }, { argv: serviceProbeArgv(params.node_path ?? '', params.health, statPaths) }], 60_000);
    const runtime = await runtimeFromProbe(host.transport, host.name, fail, rt!, host.memo);
    return serviceFrom(svc!, runtime);
  },
  /** The agent user comes from an earlier agent_user task of the run: plan as if it existed. */
  predict(params: AgentServiceParams, facts: AgentServiceFacts, earlier: ReadonlyMap<string, readonly string[]>): Change[] | null {
    if (facts.user || !earlier.has('agent_user')) return null;
    return planService(params, { ...facts, user: { uid: -1, shell: nologin, gecos: userComment }, groupExists: true });
  },
  plan: planService,
};

export function useSystemd(params: AgentServiceParams, facts: AgentServiceFacts): boolean {
  return params.init === 'systemd' || (params.init === 'auto' && facts.runtime.systemd);
}

export function planService(params: AgentServiceParams, facts: AgentServiceFacts): Change[] {
  if (params.state === 'absent') return planAbsent(params, facts);
  const nodePath = params.node_path ?? usableNode(facts.runtime.nodes, params.min_node_version)?.path;
  if (!nodePath) throw new PreflightError(missingNodeMessage(facts.runtime, params.min_node_version));
  const systemd = useSystemd(params, facts);
  if (params.init === 'systemd' && !facts.runtime.systemd) {
    throw new PreflightError('init is systemd, but the host does not run systemd (/run/systemd/system is missing); use init: supervisor or auto');
  }
  const config = renderAgentConfig(params);
  const changes: Change[] = [];

  // The user and group.
  changes.push(...userChanges(facts.user));

  // Folders.
  changes.push(...ensureDir(facts, configDir, 'root', agentGroup, '750', 'emptyOnly'));
  changes.push(...ensureDir(facts, stateDir, agentUser, agentGroup, '750', 'recursive'));
  changes.push(...ensureDir(facts, libexecDir, 'root', 'root', '755', 'recursive'));

  // Key material: 0600, owned by the agent (the CA module creates it; this keeps it right).
  for (const key of keyFilesOf(config)) {
    const st = facts.paths[key];
    if (!st || (st.owner === agentUser && st.mode === '600')) continue;
    changes.push({
      id: `mode:${key}`,
      summary: `make ${key} mode 0600 owned by ${agentUser} (is ${st.mode} ${st.owner}:${st.group})`,
      steps: [
        { kind: 'run', argv: ['chown', `${agentUser}:${st.group}`, key] },
        { kind: 'run', argv: ['chmod', '0600', key] },
      ],
      undo: [
        { kind: 'run', argv: ['chown', `${st.owner}:${st.group}`, key] },
        { kind: 'run', argv: ['chmod', st.mode, key] },
      ],
    });
  }

  const reload: Step[] = systemd ? [{ kind: 'run', argv: ['systemctl', 'daemon-reload'], timeoutMs: 60_000 }] : [];
  const fileChanges: Change[] = [];
  fileChanges.push(...putFile(facts, waitHealthyScript, waitHealthySource, 0o755, 'root:root'));
  const configText = `${JSON.stringify(config, null, 2)}\n`;
  fileChanges.push(
    ...putFile(facts, configPath, configText, 0o640, `root:${agentGroup}`, {
      validate: [nodePath, agentEntry, 'check-config', '{}'],
      secret: configHasSecrets(config),
    }),
  );
  if (systemd) {
    const unit = renderUnit({
      nodePath,
      health: params.health,
      drainSeconds: params.drain_seconds,
      readySeconds: params.ready_seconds,
      memoryMax: params.memory_max,
      startLimitBurst: params.start_limit_burst,
      startLimitIntervalSec: params.start_limit_interval_sec,
    });
    // systemd-analyze wants the real unit name, so the temp file is checked under that name in a scratch folder.
    const verify: Argv | undefined = facts.systemdAnalyze
      ? ['sh', '-c', 'd=$(mktemp -d) && cp "$1" "$d/$2" && systemd-analyze verify "$d/$2"; s=$?; rm -rf "$d"; exit $s', 'epoch-verify-unit', '{}', unitName]
      : undefined;
    fileChanges.push(...putFile(facts, unitPath, unit, 0o644, 'root:root', { validate: verify, after: reload, undoAfter: reload }));
  } else {
    fileChanges.push(...putFile(facts, supervisorScript, supervisorSource, 0o755, 'root:root'));
    fileChanges.push(...putFile(facts, supervisorEnvPath, renderSupervisorEnv(nodePath, params), 0o644, 'root:root'));
  }
  changes.push(...fileChanges);

  // Run it: start when stopped; restart when what it runs changed (files, or the release behind `current`).
  const releaseChanged = facts.currentVersion !== null && facts.runningVersion !== facts.currentVersion;
  const why = [
    ...fileChanges.map((c) => c.id.replace(/^file:/, '')),
    ...(releaseChanged ? [`release ${facts.runningVersion ?? '(not answering)'} -> ${facts.currentVersion}`] : []),
  ];
  if (systemd) {
    const s = facts.systemd;
    if (s?.unitFileState !== 'enabled') {
      changes.push({
        id: `enable:${unitName}`,
        summary: `enable ${unitName} at boot`,
        // Only the boot-time symlink: a reload of PID 1 (~0.15 CPU-s on a host) would add nothing, the unit file
        // change above already reloaded, and systemd reads the symlink at the next boot.
        steps: [{ kind: 'run', argv: ['systemctl', '--no-reload', 'enable', unitName], timeoutMs: 60_000 }],
        undo: [{ kind: 'run', argv: ['systemctl', 'disable', unitName], timeoutMs: 60_000 }],
      });
    }
    // `start`/`restart` return once ExecStartPost saw /healthz ready, or fail.
    const timeoutMs = (params.ready_seconds + params.drain_seconds + 30) * 1000;
    if (s?.activeState !== 'active') {
      changes.push({
        id: `start:${unitName}`,
        summary: `start ${unitName} and wait until /healthz is ready (is ${s?.activeState ?? 'not loaded'})`,
        steps: [
          // A unit that hit its start limit refuses `start` until its failure state is cleared.
          ...(s?.activeState === 'failed' ? [{ kind: 'run', argv: ['systemctl', 'reset-failed', unitName] } satisfies Step] : []),
          { kind: 'run', argv: ['systemctl', 'start', unitName], timeoutMs },
        ],
        undo: [{ kind: 'run', argv: ['systemctl', 'stop', unitName], timeoutMs }],
      });
    } else if (why.length > 0) {
      changes.push({
        id: `restart:${unitName}`,
        summary: `restart ${unitName} (drains in-flight connections; ${why.join(', ')})`,
        steps: [{ kind: 'run', argv: ['systemctl', 'restart', unitName], timeoutMs }],
        // Undoing the file or release changes restarts the agent again (their undo runs try-restart).
        undo: [],
      });
    }
  } else {
    const supervise = [supervisorScript];
    const timeoutMs = (params.ready_seconds + params.drain_seconds + 30) * 1000;
    if (!facts.supervisorRunning) {
      changes.push({
        id: 'start:supervisor',
        summary: 'start epoch-agent under the sh supervisor and wait until /healthz is ready',
        steps: [{ kind: 'run', argv: [...supervise, 'start'], timeoutMs }],
        undo: [{ kind: 'run', argv: [...supervise, 'stop'], timeoutMs }],
      });
    } else if (why.length > 0) {
      changes.push({
        id: 'restart:supervisor',
        summary: `restart epoch-agent under the sh supervisor (${why.join(', ')})`,
        steps: [{ kind: 'run', argv: [...supervise, 'restart'], timeoutMs }],
        undo: [],
      });
    }
  }
  return changes;
}

function ensureDir(facts: AgentServiceFacts, path: string, owner: string, group: string, mode: string, removal: 'recursive' | 'emptyOnly'): Change[] {
  const st = facts.paths[path];
  if (st && st.owner === owner && st.group === group && st.mode === mode && st.type === 'directory') return [];
  const install: Step = { kind: 'run', argv: ['install', '-d', '-o', owner, '-g', group, '-m', `0${mode}`, path] };
  if (!st) {
    return [{
      id: `dir:${path}`,
      summary: `create ${path} (${owner}:${group} 0${mode})`,
      steps: [install],
      undo: [{ kind: 'run', argv: removal === 'recursive' ? ['rm', '-rf', '--', path] : ['rmdir', '--ignore-fail-on-non-empty', path] }],
    }];
  }
  return [{
    id: `dir:${path}`,
    summary: `fix ${path}: ${st.type} ${st.owner}:${st.group} 0${st.mode} -> directory ${owner}:${group} 0${mode}`,
    steps: [install],
    undo: [
      { kind: 'run', argv: ['chown', `${st.owner}:${st.group}`, path] },
      { kind: 'run', argv: ['chmod', st.mode, path] },
    ],
  }];
}

interface PutOptions {
  validate?: Argv | undefined;
  secret?: boolean;
  /** Steps that follow the write (daemon-reload), and follow its undo. */
  after?: Step[];
  undoAfter?: Step[];
}

function putFile(facts: AgentServiceFacts, path: string, content: string, mode: number, owner: string, o: PutOptions = {}): Change[] {
  const before = facts.files[path] ?? null;
  if (before === content) return [];
  const secret = o.secret ?? false;
  const restore: Step[] = before === null
    ? [{ kind: 'run', argv: ['rm', '-f', path] }]
    : [{ kind: 'put', path, content: before, mode, owner, ...(secret && { secret }) }];
  return [{
    id: `file:${path}`,
    summary: `${before === null ? 'create' : 'update'} ${path}${o.validate ? ` (validated with ${o.validate[0] === 'sh' ? 'systemd-analyze verify' : o.validate.slice(0, 3).join(' ')})` : ''}`,
    ...(!secret && { diff: { subject: path, before: before ?? '', after: content } }),
    steps: [{ kind: 'put', path, content, mode, owner, ...(o.validate && { validate: o.validate }), ...(secret && { secret }) }, ...(o.after ?? [])],
    undo: [...restore, ...(o.undoAfter ?? [])],
  }];
}

/** Sourced by the supervisor script (a shell file, so values go through the one shell quoter). */
export function renderSupervisorEnv(nodePath: string, p: AgentServiceParams): string {
  const q = (v: string | number) => quoteWord(String(v));
  return [
    '# Managed by epoch-provision (agent_service); read by epoch-agent-supervise.sh.',
    `EPOCH_NODE=${q(nodePath)}`,
    `EPOCH_HEALTH_HOST=${q(p.health.host)}`,
    `EPOCH_HEALTH_PORT=${q(p.health.port)}`,
    `EPOCH_DRAIN_SECONDS=${q(p.drain_seconds)}`,
    `EPOCH_READY_SECONDS=${q(p.ready_seconds)}`,
    '',
  ].join('\n');
}

/** Uninstall: stop first (the agent drains), then the unit, files, state, and the user if this module made it. */
function planAbsent(params: AgentServiceParams, facts: AgentServiceFacts): Change[] {
  const changes: Change[] = [];
  const timeoutMs = (params.drain_seconds + 30) * 1000;
  const s = facts.systemd;
  const unitPresent = facts.files[unitPath] != null;
  if (s && (s.activeState !== 'inactive' || s.unitFileState === 'enabled')) {
    changes.push({
      id: `stop:${unitName}`,
      summary: `stop and disable ${unitName} (is ${s.activeState}, ${s.unitFileState || 'no unit file'})`,
      steps: [{ kind: 'run', argv: ['sh', '-c', 'systemctl disable --now "$1"; systemctl reset-failed "$1" 2> /dev/null; exit 0', 'epoch-agent-stop', unitName], timeoutMs }],
      undo: null,
    });
  }
  if (facts.supervisorRunning) {
    changes.push({ id: 'stop:supervisor', summary: 'stop the agent and its sh supervisor', steps: [{ kind: 'run', argv: [supervisorScript, 'stop'], timeoutMs }], undo: null });
  }
  if (unitPresent) {
    changes.push({
      id: `absent:${unitPath}`,
      summary: `remove ${unitPath}`,
      steps: [{ kind: 'run', argv: ['rm', '-f', unitPath] }, ...(s ? [{ kind: 'run', argv: ['systemctl', 'daemon-reload'], timeoutMs: 60_000 } satisfies Step] : [])],
      undo: null,
    });
  }
  const files = [configPath, supervisorEnvPath].filter((f) => facts.files[f] != null);
  const trees = [libexecDir, stateDir].filter((d) => facts.paths[d] != null);
  if (files.length + trees.length > 0) {
    changes.push({ id: 'absent:files', summary: `remove ${[...files, ...trees].join(', ')}`, steps: [{ kind: 'run', argv: ['rm', '-rf', '--', ...files, ...trees] }], undo: null });
  }
  // The CA module owns /etc/epoch-agent/ca; the folder goes only once it is empty.
  if (facts.paths[configDir] != null && changes.length > 0) {
    changes.push({ id: `absent:${configDir}`, summary: `remove ${configDir} if empty`, steps: [{ kind: 'run', argv: ['rmdir', '--ignore-fail-on-non-empty', configDir] }], undo: null });
  }
  if (facts.user && facts.user.gecos === userComment) {
    changes.push({ id: `absent:user:${agentUser}`, summary: `remove user ${agentUser} (created by epoch-provision; the shadow-utils backups in /etc go back as they were)`, steps: removeUserSteps(), undo: null });
  }
  return changes;
}
