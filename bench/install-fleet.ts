// bench/install-fleet: the full install (playbooks/site.yml with interception on) over N lab hosts (default 50),
// then the idempotent re-run, through the real CLI (dist/epoch-provision.mjs), timed. Goals (issue 9): the re-run
// under 3 s; the install at least 5x faster than the same steps in Ansible.
//
// Ansible side by side: when `ansible-playbook` is on PATH, the same hosts are then reset with our uninstall
// (playbooks/uninstall.yml; checked per host: no agent tree, user, CA, anchor, unit or nft table left; a fresh lab
// when that check fails) and bench/ansible/site.yml runs its install and re-run, timed the same way (wall clock of
// the whole command), with forks = --forks (default: the host count), ANSIBLE_PIPELINING=1, host key checking
// against the lab's known_hosts (the lab inventory's ansible_ssh_common_args), Ansible's default ControlPersist
// SSH multiplexing, ansible_python_interpreter=/usr/bin/python3 (no interpreter discovery) and the json callback.
// Its files are rendered into a temp dir from the same sources and build: dist/agent, the agent config and unit
// (agent_service defaults), the readiness probe, and the nft ruleset of the firewall module (buildDesired +
// renderNftApply; the agent's uid/gid filled in per host from the user/group tasks).
//
// What the Ansible playbook does NOT do that our site.yml does (so our run does more work, not less):
//   - agent_release: no sha256 check of every file against the manifest on the host (copy compares checksums file
//     by file instead), no atomic tmp-dir rename, no `previous` link, no pruning of old releases;
//   - agent_user / trust_store: no save of the shadow-utils backups and of the regenerated trust tree (what makes
//     our uninstall byte-identical);
//   - trust_coverage (the Node/certifi/Java trust report, a JVM keytool listing on the first run): not done at all;
//   - agent_service: no systemd-analyze verify of the unit (Ansible validates into a temp name without .service);
//   - firewall: no commit-confirmed auto-revert, no epoch-firewall.service health watcher / agent drop-in (rules are
//     loaded with a plain `nft -f`, guarded by "file changed or our table missing"), no semantic compare of the live
//     rules, no iptables fallback or backend choice; firewall_confirm has no counterpart;
//   - verify: curl as nobody + the served certificate checked against the host CA, but not the agent's metrics
//     count and no drift re-check of firewall/trust store;
//   - no journal (rollback), no automatic rollback of a failed canary. Both run the same serial [1, "50%", "100%"]
//     batches with max_fail_percentage 0.
// Usage: npm run build && node --import tsx bench/install-fleet.ts [--hosts N] [--forks F] [--flavor mixed] [--reruns R] [--no-ansible]  (root)
// --reruns R: R idempotent re-runs in a row (default 1; the first is `rerun`, all are in `reruns`).
// --no-ansible: time only our install and re-run, even with ansible-playbook on PATH (its 6-host run takes minutes).
// Every run also records where its CPU went (`cpu`: the machine, the command, the lab hosts by cgroup; see CpuSplit).
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { agentServiceParams } from '../provisioner/src/modules/agent/agent-service';
import { renderAgentConfig } from '../provisioner/src/modules/agent/agent-config';
import { renderUnit, waitHealthySource } from '../provisioner/src/modules/agent/systemd-unit';
import { buildDesired } from '../provisioner/src/modules/firewall/model';
import { firewallParams } from '../provisioner/src/modules/firewall/params';
import { kernelSupportsInetNat } from '../provisioner/src/modules/firewall/plan';
import { nftFamiliesFor, renderNftApply } from '../provisioner/src/modules/firewall/render-nft';
import { type Lab, labSkipReason, withLab } from '../test/support/lab';

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? fallback) : fallback;
};
const hosts = Number(arg('hosts', '50'));
const forks = Number(arg('forks', String(hosts)));
const flavor = arg('flavor', 'mixed') as 'mixed' | 'debian' | 'rhel';
const reruns = Math.max(1, Number(arg('reruns', '1')));
const repo = resolve(import.meta.dirname, '..');

const skip = labSkipReason();
if (skip) {
  console.error(`install-fleet: cannot run: ${skip}`);
  process.exit(2);
}

interface Timed {
  seconds: number;
  exitCode: number | null;
  changed: number;
  failed: number;
  /** Per task: host-seconds summed over hosts, and the slowest host; the slowest tasks first. */
  tasks: { task: string; hostSeconds: number; maxSeconds: number }[];
  cpu: CpuSplit;
}

// Where the CPU of a run went, in CPU-seconds: the whole machine (/proc/stat), the command itself with the children it
// waited for (the shell's `times`), and the lab hosts by cgroup (every host's payload cgroup, cgroup2): `sessions`
// is user.slice (what SSH sessions run, and the per-login user manager), `sshd` is ssh.service (connections, key
// exchange, authentication), `agent` and `watcher` our two units, `other` the rest (systemd, logind, dbus, journald).
// A unit restarted during the run loses its old cgroup's count from its own line (it stays in the host's total).
interface CpuSplit {
  machine: number;
  command: number | null;
  hosts: { total: number; sessions: number; sshd: number; agent: number; watcher: number; other: number };
}

function machineBusyJiffies(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  return f.reduce((a, b) => a + b, 0) - f[3]! - f[4]!;
}

const cgroupRoot = existsSync('/sys/fs/cgroup/unified/cgroup.procs') ? '/sys/fs/cgroup/unified' : '/sys/fs/cgroup';
const hostCgroupParts = { total: '', sessions: '/user.slice', sshd: '/system.slice/ssh.service', agent: '/system.slice/epoch-agent.service', watcher: '/system.slice/epoch-firewall.service' } as const;
type HostCpu = Record<keyof typeof hostCgroupParts, number>;

function usageUsec(dir: string): number {
  try {
    return Number(/^usage_usec (\d+)/m.exec(readFileSync(`${dir}/cpu.stat`, 'utf8'))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

function hostsCpu(lab: Lab): HostCpu[] {
  return lab.hosts.map((h) => {
    const base = `${cgroupRoot}/epoch-lab/${lab.name}/${h.machine}/payload`;
    return Object.fromEntries(Object.entries(hostCgroupParts).map(([k, part]) => [k, usageUsec(base + part)])) as HostCpu;
  });
}

function cpuSplit(lab: Lab, before: { jiffies: number; hosts: HostCpu[] }, commandSeconds: number | null): CpuSplit {
  const after = hostsCpu(lab);
  const sum = { total: 0, sessions: 0, sshd: 0, agent: 0, watcher: 0 };
  after.forEach((a, i) => {
    for (const k of Object.keys(sum) as (keyof typeof sum)[]) {
      const b = before.hosts[i]![k];
      // A cgroup that was removed and made again (a unit restarted) counts from zero.
      sum[k] += (a[k] >= b ? a[k] - b : a[k]) / 1e6;
    }
  });
  const r = (x: number) => Number(x.toFixed(1));
  return {
    machine: r((machineBusyJiffies() - before.jiffies) / 100),
    command: commandSeconds === null ? null : r(commandSeconds),
    hosts: { total: r(sum.total), sessions: r(sum.sessions), sshd: r(sum.sshd), agent: r(sum.agent), watcher: r(sum.watcher), other: r(sum.total - sum.sessions - sum.sshd - sum.agent - sum.watcher) },
  };
}

const cpuMark = (lab: Lab) => ({ jiffies: machineBusyJiffies(), hosts: hostsCpu(lab) });

/** The children's user + system CPU-seconds from the `times` line the wrapping shell prints last on stderr. */
function childrenCpuSeconds(stderr: string): number | null {
  const m = /(\d+)m([\d.]+)s (\d+)m([\d.]+)s\s*$/.exec(stderr.trim());
  return m ? Number(m[1]) * 60 + Number(m[2]) + Number(m[3]) * 60 + Number(m[4]) : null;
}
const withTimes = ['sh', '-c', '"$@"; rc=$?; times >&2; exit $rc', 'sh'];

// The controller's caches (keystore listings) start empty, as on a fresh CI runner; the re-run reuses them.
const cacheHome = mkdtempSync(join(tmpdir(), 'epoch-bench-cache-'));
process.on('exit', () => rmSync(cacheHome, { recursive: true, force: true }));

type Event = { type: string; task?: string; durationMs?: number; hosts?: { changed: number; failed: number }[] };

function run(lab: Lab): Timed {
  const mark = cpuMark(lab);
  const started = performance.now();
  const r = spawnSync(withTimes[0]!, [...withTimes.slice(1), process.execPath, join(repo, 'bin/epoch-provision.mjs'), '--inventory', lab.inventoryPath, '--yes', '--output', 'json', '--forks', String(forks), '-e', 'epoch_intercept=true'], {
    cwd: repo,
    env: { ...process.env, XDG_CACHE_HOME: cacheHome },
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
  });
  const seconds = (performance.now() - started) / 1000;
  const events = r.stdout
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Event);
  const recap = events.find((e) => e.type === 'recap');
  const sum = (k: 'changed' | 'failed') => (recap?.hosts ?? []).reduce((a, h) => a + h[k], 0);
  const byTask = new Map<string, { hostSeconds: number; maxSeconds: number }>();
  for (const e of events) {
    if (e.type !== 'task-result' || !e.task || e.durationMs === undefined) continue;
    const t = byTask.get(e.task) ?? { hostSeconds: 0, maxSeconds: 0 };
    t.hostSeconds += e.durationMs / 1000;
    t.maxSeconds = Math.max(t.maxSeconds, e.durationMs / 1000);
    byTask.set(e.task, t);
  }
  const tasks = [...byTask].map(([task, t]) => ({ task, hostSeconds: Number(t.hostSeconds.toFixed(2)), maxSeconds: Number(t.maxSeconds.toFixed(2)) })).sort((a, b) => b.hostSeconds - a.hostSeconds);
  if (r.status !== 0) console.error(r.stderr.slice(-2000));
  return { seconds, exitCode: r.status, changed: sum('changed'), failed: sum('failed'), tasks, cpu: cpuSplit(lab, mark, childrenCpuSeconds(r.stderr)) };
}

// ---- Ansible, side by side ----

// Ansible refuses to start unless the locale encoding is UTF-8 (test runners often export LC_ALL=C).
const ansibleLocale = { LC_ALL: 'C.UTF-8', LANG: 'C.UTF-8' };
const noAnsible = process.argv.includes('--no-ansible');
const ansibleOnPath = !noAnsible && spawnSync('sh', ['-c', 'command -v ansible-playbook']).status === 0;
let ansibleProblem = noAnsible ? 'skipped (--no-ansible)' : ansibleOnPath ? '' : 'not installed';
const ansibleVersion = (() => {
  if (!ansibleOnPath) return null;
  const r = spawnSync('ansible-playbook', ['--version'], { encoding: 'utf8', env: { ...process.env, ...ansibleLocale } });
  if (r.error || r.status !== 0) {
    ansibleProblem = `on PATH, but \`ansible-playbook --version\` failed: ${(r.stderr || r.stdout || String(r.error)).trim()}`;
    console.error(`install-fleet: ansible-playbook ${ansibleProblem}; no comparison`);
    return null;
  }
  const core = /ansible-playbook \[core ([^\]]+)\]/.exec(r.stdout)?.[1] ?? r.stdout.split('\n')[0]!.trim();
  const pkg = spawnSync('dpkg-query', ['-W', '-f', '\x24{Version}', 'ansible'], { encoding: 'utf8' });
  return { core, package: pkg.status === 0 ? `ansible ${pkg.stdout.trim()} (Debian)` : 'unknown package' };
})();

// Stand-ins for the agent's uid/gid in the rendered ruleset; the template fills in each host's own.
const uidMark = 4294967001;
const gidMark = 4294967002;

/** The files bench/ansible/site.yml reads (epoch_files_dir), rendered from the sources and build our modules use. */
function renderAnsibleFiles(dir: string, controllerAddress: string): { version: string } {
  const manifest = JSON.parse(readFileSync(join(repo, 'dist/agent/manifest.json'), 'utf8')) as { version: string; files: Record<string, string> };
  mkdirSync(join(dir, 'release'), { recursive: true });
  for (const f of [...Object.keys(manifest.files), 'manifest.json']) {
    mkdirSync(join(dir, 'release', f, '..'), { recursive: true });
    cpSync(join(repo, 'dist/agent', f), join(dir, 'release', f));
  }
  const p = agentServiceParams.parse({});
  writeFileSync(join(dir, 'agent.json'), `${JSON.stringify(renderAgentConfig(p), null, 2)}\n`);
  writeFileSync(join(dir, 'wait-healthy.cjs'), waitHealthySource);
  const unit = renderUnit({
    nodePath: '{{ epoch_node }}',
    health: p.health,
    drainSeconds: p.drain_seconds,
    readySeconds: p.ready_seconds,
    memoryMax: p.memory_max,
    startLimitBurst: p.start_limit_burst,
    startLimitIntervalSec: p.start_limit_interval_sec,
  });
  writeFileSync(join(dir, 'epoch-agent.service.j2'), unit);
  const fw = firewallParams.parse({});
  const desired = buildDesired(fw, { agentUid: uidMark, agentGid: gidMark, excludeUids: [], controllerAddress });
  const kernel = spawnSync('uname', ['-r'], { encoding: 'utf8' }).stdout.trim();
  const rules = renderNftApply(desired, nftFamiliesFor(desired, kernelSupportsInetNat(kernel)), 'loaded');
  if (rules.includes('{{') || rules.includes('{%') || rules.includes('{#')) throw new Error('rules.nft would not survive Jinja');
  writeFileSync(join(dir, 'rules.nft.j2'), rules.replaceAll(String(uidMark), '{{ epoch_user.uid }}').replaceAll(String(gidMark), '{{ epoch_group.gid }}'));
  return { version: manifest.version };
}

interface AnsibleTimed {
  seconds: number;
  exitCode: number | null;
  changed: number;
  failed: number;
  /** Per task: wall seconds over all hosts (the json callback has no per-host durations), summed over the batches. */
  tasks: { task: string; seconds: number }[];
  cpu: CpuSplit;
}

interface AnsibleJson {
  plays?: { tasks?: { task: { name: string; duration?: { start?: string; end?: string } } }[] }[];
  stats?: Record<string, { changed: number; failures: number; unreachable: number }>;
}

function runAnsible(lab: Lab, filesDir: string, version: string, ansibleHome: string): AnsibleTimed {
  const vars = {
    epoch_files_dir: filesDir,
    epoch_version: version,
    ansible_python_interpreter: '/usr/bin/python3',
  };
  const varsFile = join(ansibleHome, 'vars.json');
  writeFileSync(varsFile, JSON.stringify(vars));
  const mark = cpuMark(lab);
  const started = performance.now();
  const r = spawnSync(withTimes[0]!, [...withTimes.slice(1), 'ansible-playbook', '-i', lab.inventoryPath, '--forks', String(forks), '-e', `@${varsFile}`, join(repo, 'bench/ansible/site.yml')], {
    // Not the repo: no ansible.cfg is picked up from the working directory.
    cwd: ansibleHome,
    env: {
      ...process.env,
      ...ansibleLocale,
      ANSIBLE_CONFIG: '',
      ANSIBLE_HOME: ansibleHome,
      ANSIBLE_LOCAL_TEMP: join(ansibleHome, 'tmp'),
      ANSIBLE_SSH_CONTROL_PATH_DIR: join(ansibleHome, 'cp'),
      ANSIBLE_PIPELINING: '1',
      ANSIBLE_FORKS: String(forks),
      ANSIBLE_HOST_KEY_CHECKING: 'True',
      ANSIBLE_TIMEOUT: '60',
      ANSIBLE_STDOUT_CALLBACK: 'json',
      ANSIBLE_NOCOLOR: '1',
      ANSIBLE_RETRY_FILES_ENABLED: 'False',
    },
    encoding: 'utf8',
    maxBuffer: 512 * 1024 * 1024,
  });
  const seconds = (performance.now() - started) / 1000;
  let out: AnsibleJson = {};
  try {
    out = JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))) as AnsibleJson;
  } catch {
    console.error(`ansible-playbook output is not JSON:\n${r.stdout.slice(-2000)}`);
  }
  const stats = Object.values(out.stats ?? {});
  const byTask = new Map<string, number>();
  for (const play of out.plays ?? []) {
    for (const t of play.tasks ?? []) {
      const d = t.task.duration;
      if (!d?.start || !d.end) continue;
      byTask.set(t.task.name, (byTask.get(t.task.name) ?? 0) + (Date.parse(d.end) - Date.parse(d.start)) / 1000);
    }
  }
  const tasks = [...byTask].map(([task, s]) => ({ task, seconds: Number(s.toFixed(2)) })).sort((a, b) => b.seconds - a.seconds);
  if (r.status !== 0) {
    console.error(r.stderr.slice(-2000));
    for (const play of (out as { plays?: { tasks?: { task: { name: string }; hosts: Record<string, { failed?: boolean; unreachable?: boolean; msg?: string; stdout?: string; stderr?: string }> }[] }[] }).plays ?? []) {
      for (const t of play.tasks ?? []) {
        for (const [h, res] of Object.entries(t.hosts)) {
          if (res.failed || res.unreachable) console.error(`  ${h}: ${t.task.name}: ${JSON.stringify({ msg: res.msg, stdout: res.stdout, stderr: res.stderr }).slice(0, 600)}`);
        }
      }
    }
  }
  return {
    seconds,
    exitCode: r.status,
    changed: stats.reduce((a, s) => a + s.changed, 0),
    failed: stats.reduce((a, s) => a + s.failures + s.unreachable, 0),
    tasks,
    cpu: cpuSplit(lab, mark, childrenCpuSeconds(r.stderr)),
  };
}

/** Our uninstall, then a per-host check that nothing of the install is left; the hosts that still have something. */
async function resetHosts(lab: Lab): Promise<{ seconds: number; exitCode: number | null; dirtyHosts: string[] }> {
  const started = performance.now();
  const r = spawnSync(process.execPath, [join(repo, 'bin/epoch-provision.mjs'), 'uninstall', '--inventory', lab.inventoryPath, '--yes', '--output', 'json', '--forks', String(forks)], {
    cwd: repo,
    env: { ...process.env, XDG_CACHE_HOME: cacheHome },
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
  });
  const seconds = (performance.now() - started) / 1000;
  if (r.status !== 0) console.error(`uninstall exited ${r.status}: ${r.stderr.slice(-2000)}`);
  const check = `for p in /opt/epoch-agent /etc/epoch-agent /etc/systemd/system/epoch-agent.service /usr/local/share/ca-certificates/epoch-provision-ca.crt /etc/pki/ca-trust/source/anchors/epoch-provision-ca.pem; do [ -e "$p" ] && echo "left: $p"; done
getent passwd epoch-agent > /dev/null && echo 'left: user epoch-agent'
getent group epoch-agent > /dev/null && echo 'left: group epoch-agent'
nft list table inet epoch_provision > /dev/null 2>&1 && echo 'left: nft table'
systemctl is-active -q epoch-agent.service && echo 'left: agent running'
exit 0`;
  const results = await Promise.all(lab.hosts.map(async (h) => ({ host: h.name, out: (await lab.execOk(h, ['sh', '-c', check])).trim() })));
  for (const x of results) if (x.out) console.error(`reset: ${x.host}: ${x.out.replace(/\n/g, '; ')}`);
  return { seconds, exitCode: r.status, dirtyHosts: results.filter((x) => x.out).map((x) => x.host) };
}

// The files both installs write from the same sources: Ansible's must equal ours, byte for byte, on the same host.
const comparedFiles = ['/etc/epoch-agent/agent.json', '/etc/systemd/system/epoch-agent.service', '/opt/epoch-agent/libexec/wait-healthy.cjs', '/etc/epoch-provision/firewall/rules.nft'];

async function snapshotFiles(lab: Lab): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const h of lab.hosts.slice(0, 2)) {
    for (const f of comparedFiles) {
      const r = await lab.exec(h, ['sha256sum', f]);
      out.set(`${h.name}:${f}`, r.exitCode === 0 ? (r.stdout.split(' ')[0] ?? '') : 'missing');
    }
  }
  return out;
}

async function ansibleSide(lab: Lab, oursFiles: Map<string, string> | null) {
  const home = mkdtempSync(join(tmpdir(), 'epoch-bench-ansible-'));
  try {
    mkdirSync(join(home, 'tmp'));
    mkdirSync(join(home, 'cp'));
    const files = join(home, 'files');
    const { version } = renderAnsibleFiles(files, lab.controllerAddress);
    const install = runAnsible(lab, files, version, home);
    let differentFiles: string[] | null = null;
    if (oursFiles) {
      const theirs = await snapshotFiles(lab);
      differentFiles = [...oursFiles].filter(([k, v]) => theirs.get(k) !== v).map(([k]) => k);
      if (differentFiles.length) console.error(`install-fleet: Ansible wrote different files than ours: ${differentFiles.join(', ')}`);
    }
    const rerun = runAnsible(lab, files, version, home);
    return { install, rerun, differentFiles };
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

const cpuLine = (c: CpuSplit) =>
  `machine ${c.machine}, the command ${c.command ?? '?'}, lab hosts ${c.hosts.total} (sessions ${c.hosts.sessions}, sshd ${c.hosts.sshd}, agent ${c.hosts.agent}, watcher ${c.hosts.watcher}, other ${c.hosts.other})`;
const load = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const fmt = (t: { seconds: number; exitCode: number | null; changed: number; failed: number }) =>
  `${t.seconds.toFixed(1)} s, exit ${t.exitCode}, ${t.changed} changed, ${t.failed} failed`;

interface AnsibleRun {
  install: AnsibleTimed;
  rerun: AnsibleTimed;
  loadBefore: string;
  loadAfter: string;
  /** host:path of the compared files whose sha256 differs from what our install wrote there (null: not compared). */
  differentFiles: string[] | null;
}
// Filled in inside the lab callbacks (an object, so TypeScript does not narrow the fields to their initial null).
const state: {
  ours: { install: Timed; rerun: Timed; reruns: Timed[]; loadBeforeRerun: string; loadAfter: string } | null;
  reset: Awaited<ReturnType<typeof resetHosts>> | null;
  ansible: AnsibleRun | null;
  freshLab: boolean;
} = { ours: null, reset: null, ansible: null, freshLab: false };

async function timedAnsible(lab: Lab, oursFiles: Map<string, string> | null): Promise<AnsibleRun> {
  const loadBefore = load();
  const side = await ansibleSide(lab, oursFiles);
  return { ...side, loadBefore, loadAfter: load() };
}

const loadBefore = load();
let oursFiles: Map<string, string> | null = null;
await withLab({ hosts, flavor }, async (lab) => {
  const install = run(lab);
  const loadBeforeRerun = load();
  const runs: Timed[] = [];
  for (let i = 0; i < reruns; i++) runs.push(run(lab));
  const rerun = runs[0]!;
  state.ours = { install, rerun, reruns: runs, loadBeforeRerun, loadAfter: load() };
  if (runs.length > 1) console.log(`re-runs: ${runs.map((r) => `${r.seconds.toFixed(2)} s (exit ${r.exitCode}, ${r.changed} changed)`).join(', ')}`);
  console.log(`CPU-seconds, install: ${cpuLine(install.cpu)}`);
  for (const [i, r] of runs.entries()) console.log(`CPU-seconds, re-run ${i + 1}: ${cpuLine(r.cpu)}`);
  console.log('re-run, slowest tasks (host-seconds, slowest host):');
  for (const t of rerun.tasks.slice(0, 8)) console.log(`  ${t.task}: ${t.hostSeconds} s, max ${t.maxSeconds} s`);
  if (!ansibleVersion) return;
  oursFiles = await snapshotFiles(lab);
  state.reset = await resetHosts(lab);
  if (state.reset.exitCode !== 0 || state.reset.dirtyHosts.length > 0) state.freshLab = true;
  else state.ansible = await timedAnsible(lab, oursFiles);
});
if (ansibleVersion && state.freshLab) {
  console.error('install-fleet: our uninstall did not reset every host; Ansible runs on a fresh lab instead');
  await withLab({ hosts, flavor }, async (lab) => {
    state.ansible = await timedAnsible(lab, oursFiles);
  });
}

const o = state.ours;
if (!o) process.exit(1);
const a = state.ansible;
const ratio = (x: number, y: number) => Number((y / x).toFixed(2));
const comparison = a && {
  ansibleVersion,
  settings: { forks, pipelining: true, hostKeyChecking: 'lab known_hosts', pythonInterpreter: '/usr/bin/python3', serial: [1, '50%', '100%'] },
  reset: state.reset && { via: 'epoch-provision uninstall', seconds: Number(state.reset.seconds.toFixed(1)), exitCode: state.reset.exitCode, dirtyHosts: state.reset.dirtyHosts },
  freshLab: state.freshLab,
  loadAverage: { before: loadBefore, afterOurs: o.loadAfter, beforeAnsible: a.loadBefore, afterAnsible: a.loadAfter },
  filesIdenticalToOurs: a.differentFiles === null ? 'not compared' : a.differentFiles.length === 0 ? true : a.differentFiles,
  install: a.install,
  rerun: a.rerun,
  speedup: { install: ratio(o.install.seconds, a.install.seconds), rerun: ratio(o.rerun.seconds, a.rerun.seconds) },
  goalMet5x: o.install.seconds * 5 <= a.install.seconds,
};
const result = {
  date: new Date().toISOString(),
  hosts,
  flavor,
  forks,
  install: o.install,
  rerun: o.rerun,
  ...(o.reruns.length > 1 && { reruns: o.reruns.map((r) => ({ seconds: Number(r.seconds.toFixed(2)), exitCode: r.exitCode, changed: r.changed })) }),
  loadAverage: { before: loadBefore, beforeRerun: o.loadBeforeRerun, afterRerun: o.loadAfter },
  ansible: comparison ?? ansibleProblem,
};
writeFileSync(join(repo, 'bench/results/install-fleet.json'), `${JSON.stringify(result, null, 2)}\n`);
console.log(`load average (1, 5, 15 min): ${loadBefore} at start, ${o.loadBeforeRerun} before the re-run, ${o.loadAfter} after it`);
console.log(`| hosts | install | idempotent re-run | ansible-playbook |\n|---|---|---|---|`);
console.log(`| ${hosts} (${flavor}, forks ${forks}) | ${o.install.seconds.toFixed(1)} s, exit ${o.install.exitCode}, ${o.install.changed} changed tasks, ${o.install.failed} failed | ${o.rerun.seconds.toFixed(1)} s, exit ${o.rerun.exitCode}, ${o.rerun.changed} changed | ${comparison ? 'see below' : ansibleProblem} |`);
if (comparison && a) {
  console.log(`\nside by side, ${hosts} ${flavor} hosts, forks ${forks} (${ansibleVersion?.package}, core ${ansibleVersion?.core}; pipelining on):`);
  console.log('| | epoch-provision | ansible-playbook | Ansible / epoch |\n|---|---|---|---|');
  console.log(`| install | ${fmt(o.install)} | ${fmt(a.install)} | ${comparison.speedup.install}x |`);
  console.log(`| idempotent re-run | ${fmt(o.rerun)} | ${fmt(a.rerun)} | ${comparison.speedup.rerun}x |`);
  console.log(`load average: ${loadBefore} at start, ${o.loadAfter} after ours, ${a.loadBefore} before Ansible, ${a.loadAfter} after`);
  console.log(`5x goal (install): ${comparison.goalMet5x ? 'met' : 'NOT met'}`);
  console.log(`CPU-seconds, Ansible install: ${cpuLine(a.install.cpu)}`);
  console.log(`CPU-seconds, Ansible re-run: ${cpuLine(a.rerun.cpu)}`);
  console.log('Ansible, slowest tasks of the install (wall seconds, all hosts):');
  for (const t of a.install.tasks.slice(0, 8)) console.log(`  ${t.task}: ${t.seconds} s`);
}
