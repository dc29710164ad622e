// The local lab fleet: N systemd hosts (systemd-nspawn, one netns + overlay root each) on a bridge, plus an
// upstream HTTPS service. Every resource is recorded in <labHome>/labs/<name>/state.json before it is created, so
// down/clean can remove exactly what a run made (processes by PID + start time, never by name).
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  existsSync, mkdirSync, readFileSync, readdirSync, realpathSync, rmSync, rmdirSync, statSync, unlinkSync, writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { ensureImage, generateCa, imagePaths, mountOverlay, pruneImages } from './image';
import { writeInventory, removeInventory } from './inventory';
import {
  createAttachedNetns, deleteLink, deleteNetns, ensureBridge, hostAddress, linkExists, maxSlot, netnsExists, netnsPath,
  slotAddresses,
} from './network';
import { assertInsideLabHome, assetsDir, labHome, labsDir, mountsUnder, removeTree, repoRoot, slotsDir, writeAtomic, writeInRoot } from './paths';
import {
  type RunResult, type TrackedProcess, findNamespaceInit, isAlive, mapLimit, run, runOk, signal, sleep, spawnDetached,
  tracked, waitGone,
} from './proc';

export type Flavor = 'debian' | 'rhel';
export type LabFlavor = Flavor | 'mixed';

export interface LabHostState {
  name: string;
  flavor: Flavor;
  /** 1-based position; fixes the address. */
  index: number;
  address: string;
  netns: string;
  veth: string;
  machine: string;
  dir: string;
  rootPath: string;
  cgroups: string[];
  nspawn?: TrackedProcess;
  init?: TrackedProcess;
}

export interface LabState {
  version: 1;
  name: string;
  slot: number;
  flavor: LabFlavor;
  dir: string;
  image: { hash: string; debianRoot: string; rhelLayer: string; caCert: string };
  bridge: string;
  controllerAddress: string;
  upstream: {
    netns: string;
    veth: string;
    addresses: { valid: string; untrusted: string; wrongHost: string };
    /** PEM of the CA that signed the untrusted listener's cert (trusted by nobody). */
    untrustedCaCert: string;
    process?: TrackedProcess;
  };
  inventory: { dir: string; hostsFile: string; sshConfig: string; knownHosts: string; keyFile: string };
  hosts: LabHostState[];
  /** Set by test helpers: the lab belongs to that process and is stale once it is gone. */
  owner?: TrackedProcess;
}

export interface UpOptions {
  count: number;
  flavor: LabFlavor;
  name?: string;
  /** Where hosts.yml, ssh_config, known_hosts and the key go (default: inventories/lab for `lab`, else the lab dir). */
  inventoryDir?: string;
  owner?: TrackedProcess;
  log?: (message: string) => void;
}

export const defaultLabName = 'lab';
export const maxHosts = 1000;
const nameRe = /^[a-z][a-z0-9-]{0,19}$/;

/** The lab cannot run here (not root, no kernel support, missing tool); nothing was changed. */
export class LabUnavailable extends Error {
  override name = 'LabUnavailable';
}

export const labDir = (name: string) => join(labsDir, name);
const stateFile = (name: string) => join(labDir(name), 'state.json');

export function loadState(name: string): LabState | null {
  try {
    return JSON.parse(readFileSync(stateFile(name), 'utf8')) as LabState;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new Error(`${stateFile(name)}: unreadable lab state: ${(e as Error).message}`);
  }
}

export function listLabs(): string[] {
  try {
    return readdirSync(labsDir).filter((n) => existsSync(stateFile(n)));
  } catch {
    return [];
  }
}

function saveState(state: LabState): void {
  writeAtomic(stateFile(state.name), `${JSON.stringify(state, null, 2)}\n`);
}

/** Checks everything `lab up` needs before it changes anything; throws LabUnavailable with one clear line. */
/** What preflight looks at; tests pass their own to show each missing piece's message. */
export interface PreflightProbe {
  uid: number | undefined;
  exists(path: string): boolean;
  read(path: string): string;
  /** Folders searched for the tools. */
  pathDirs: string[];
}

const hostProbe = (): PreflightProbe => ({
  uid: process.getuid?.(),
  exists: existsSync,
  read: (path) => readFileSync(path, 'utf8'),
  pathDirs: (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':').concat(['/usr/sbin', '/sbin']),
});

/** Throws LabUnavailable with one line naming what this machine lacks for the lab (root, kernel features, tools). */
export function preflight(probe: PreflightProbe = hostProbe()): void {
  if (probe.uid !== 0) {
    throw new LabUnavailable('the lab needs root (network namespaces, overlay mounts, systemd-nspawn): run it with sudo');
  }
  if (!probe.exists('/proc/self/ns/net')) throw new LabUnavailable('this kernel has no network namespaces (/proc/self/ns/net is missing)');
  const fs = probe.read('/proc/filesystems');
  const release = probe.read('/proc/sys/kernel/osrelease').trim();
  const overlayModule = [`/lib/modules/${release}/kernel/fs/overlayfs`, `/usr/lib/modules/${release}/kernel/fs/overlayfs`];
  if (!/\toverlay$/m.test(fs) && !overlayModule.some((m) => probe.exists(m))) {
    throw new LabUnavailable(`this kernel (${release}) has no overlayfs (not in /proc/filesystems, no module)`);
  }
  if (!probe.exists('/sys/fs/cgroup/unified/cgroup.procs') && !probe.exists('/sys/fs/cgroup/cgroup.procs')) {
    throw new LabUnavailable('no cgroup2 hierarchy at /sys/fs/cgroup or /sys/fs/cgroup/unified');
  }
  const tools: [string, string][] = [
    ['ip', 'iproute2'], ['systemd-nspawn', 'systemd-container'], ['nsenter', 'util-linux'], ['ssh-keygen', 'openssh-client'],
    ['openssl', 'openssl'], ['mount', 'mount'], ['chroot', 'coreutils'],
  ];
  const missing = tools.filter(([t]) => !probe.pathDirs.some((d) => probe.exists(join(d, t))));
  if (missing.length > 0) {
    throw new LabUnavailable(`missing tools: ${missing.map(([t, p]) => `${t} (apt-get install ${p})`).join(', ')}`);
  }
}

function validateName(name: string): void {
  if (!nameRe.test(name)) throw new Error(`lab name ${JSON.stringify(name)}: expected ${nameRe} (it names interfaces)`);
}

export function hostPlan(count: number, flavor: LabFlavor): { name: string; flavor: Flavor; index: number }[] {
  if (!Number.isInteger(count) || count < 1 || count > maxHosts) throw new Error(`host count ${count}: expected 1..${maxHosts}`);
  const counters = { debian: 0, rhel: 0 };
  return Array.from({ length: count }, (_, i) => {
    const f: Flavor = flavor === 'mixed' ? (i % 2 === 0 ? 'debian' : 'rhel') : flavor;
    counters[f] += 1;
    return { name: `${f === 'debian' ? 'deb' : 'rhel'}${counters[f]}`, flavor: f, index: i + 1 };
  });
}

// ---- slots ----------------------------------------------------------------------------------------------------

/** Slot 0 is the default lab's; other labs take the first free slot file (created O_EXCL, so parallel runs agree). */
function allocateSlot(name: string): number {
  mkdirSync(slotsDir, { recursive: true });
  const existing = loadState(name);
  if (existing) return existing.slot;
  if (name === defaultLabName) {
    writeFileSync(join(slotsDir, '0'), `${name}\n`);
    return 0;
  }
  const taken = addressesInRootNamespace();
  for (let slot = 1; slot <= maxSlot; slot++) {
    const file = join(slotsDir, String(slot));
    // Another tool's address inside this slot's /20 (e.g. a test's own namespace pair) would shadow the lab's route.
    if (taken.some((a) => inSlot(a, slot))) continue;
    try {
      writeFileSync(file, `${name}\n`, { flag: 'wx' });
      return slot;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const holder = readFileSync(file, 'utf8').trim();
      if (holder === name) return slot;
      // A slot whose lab has no state a minute after allocation is a leftover of a killed run.
      if (!loadState(holder) && Date.now() - statSync(file).mtimeMs > 60_000) {
        unlinkSync(file);
        slot -= 1;
      }
    }
  }
  throw new Error(`no free lab slot (1..${maxSlot} all taken, see ${slotsDir}); run \`epoch-provision lab clean --all\``);
}

function addressesInRootNamespace(): string[] {
  const out = execFileSync('ip', ['-4', '-o', 'addr', 'show'], { encoding: 'utf8' });
  return [...out.matchAll(/\sinet (\d+\.\d+\.\d+\.\d+)\//g)].map((m) => m[1] as string);
}

function inSlot(address: string, slot: number): boolean {
  const [a, b, c] = address.split('.').map(Number) as [number, number, number];
  const third = (b - 18) * 256 + c;
  return a === 198 && (b === 18 || b === 19) && Math.floor(third / 16) === slot;
}

function releaseSlot(state: LabState): void {
  const file = join(slotsDir, String(state.slot));
  try {
    if (readFileSync(file, 'utf8').trim() === state.name) unlinkSync(file);
  } catch {
    // already released
  }
}

// ---- inotify (lab-notes: ~7 instances per systemd host) ---------------------------------------------------------

const inotifyFile = '/proc/sys/fs/inotify/max_user_instances';
const inotifySaved = () => join(labHome, 'inotify-max-user-instances.orig');

function raiseInotify(): void {
  const hosts = listLabs().reduce((n, l) => n + (loadState(l)?.hosts.length ?? 0), 0);
  const current = Number(readFileSync(inotifyFile, 'utf8').trim());
  if (!existsSync(inotifySaved())) writeFileSync(inotifySaved(), `${current}\n`);
  const wanted = 12 * hosts + 256;
  if (current < wanted) writeFileSync(inotifyFile, `${wanted}\n`);
}

function restoreInotify(): void {
  if (listLabs().length > 0 || !existsSync(inotifySaved())) return;
  writeFileSync(inotifyFile, readFileSync(inotifySaved(), 'utf8'));
  unlinkSync(inotifySaved());
}

// ---- cgroups ----------------------------------------------------------------------------------------------------

/** The per-host cgroup folders: the named systemd v1 hierarchy + cgroup2 on a hybrid layout, else cgroup2 only. */
function hostCgroups(lab: string, machine: string): string[] {
  if (existsSync('/sys/fs/cgroup/unified/cgroup.procs')) {
    const dirs = [`/sys/fs/cgroup/unified/epoch-lab/${lab}/${machine}`];
    if (existsSync('/sys/fs/cgroup/systemd/cgroup.procs')) dirs.unshift(`/sys/fs/cgroup/systemd/epoch-lab/${lab}/${machine}`);
    return dirs;
  }
  return [`/sys/fs/cgroup/epoch-lab/${lab}/${machine}`];
}

function cgroupPids(dir: string): number[] {
  const pids: number[] = [];
  const walk = (d: string) => {
    try {
      for (const p of readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n')) if (p) pids.push(Number(p));
      for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(join(d, e.name));
    } catch {
      // gone
    }
  };
  walk(dir);
  return pids;
}

function removeCgroup(dir: string): void {
  if (!existsSync(dir)) return;
  for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) removeCgroup(join(dir, e.name));
  // A just-killed process can keep its cgroup busy for a moment (this machine's PID 1 reaps late): retry briefly.
  for (let attempt = 0; ; attempt++) {
    try {
      rmdirSync(dir);
      return;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY' || attempt >= 50) {
        throw new Error(`cannot remove cgroup ${dir}: ${(e as Error).message}; pids still in it: ${cgroupPids(dir).join(' ') || 'none'}`);
      }
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
    }
  }
}

function labCgroupParents(lab: string): string[] {
  return hostCgroups(lab, 'x').map((d) => d.slice(0, d.lastIndexOf('/')));
}

// ---- up ---------------------------------------------------------------------------------------------------------

/** Brings the lab to `count` running hosts of `flavor` (idempotent: running hosts are kept as they are). */
export async function labUp(opts: UpOptions): Promise<LabState> {
  const log = opts.log ?? (() => {});
  const name = opts.name ?? defaultLabName;
  validateName(name);
  const plan = hostPlan(opts.count, opts.flavor);
  preflight();
  mkdirSync(labsDir, { recursive: true });
  return withLabLock(name, async () => {
    const image = await ensureImage(log);
    pruneImages(new Set([image.hash, ...listLabs().flatMap((l) => loadState(l)?.image.hash ?? [])]), log);
    let state = loadState(name);
    if (!state) {
      const slot = allocateSlot(name);
      const a = slotAddresses(slot);
      const dir = labDir(name);
      const invDir = opts.inventoryDir ?? (name === defaultLabName ? join(repoRoot(), 'inventories/lab') : join(dir, 'inventory'));
      state = {
        version: 1,
        name,
        slot,
        flavor: opts.flavor,
        dir,
        image: { hash: image.hash, debianRoot: image.debianRoot, rhelLayer: image.rhelLayer, caCert: image.caCert },
        bridge: a.bridge,
        controllerAddress: a.controller,
        upstream: { netns: a.upstreamNetns, veth: a.upstreamVeth, addresses: a.upstream, untrustedCaCert: '' },
        inventory: {
          dir: invDir,
          hostsFile: join(invDir, 'hosts.yml'),
          // Under .ssh/: an inventory folder's hidden entries are never parsed as inventory sources (as in Ansible).
          sshConfig: join(invDir, '.ssh', 'config'),
          knownHosts: join(invDir, '.ssh', 'known_hosts'),
          keyFile: join(invDir, '.ssh', 'id_ed25519'),
        },
        hosts: [],
        ...(opts.owner ? { owner: opts.owner } : {}),
      };
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      saveState(state);
    }
    const lab = state;
    if (lab.image.hash !== image.hash && lab.hosts.some((h) => hostRunning(h))) {
      log(`note: lab ${name} runs image ${lab.image.hash}; the cache now holds ${image.hash} (lab down + up to switch)`);
    } else {
      lab.image = { hash: image.hash, debianRoot: image.debianRoot, rhelLayer: image.rhelLayer, caCert: image.caCert };
    }
    lab.flavor = opts.flavor;
    if (!existsSync(lab.inventory.keyFile)) {
      mkdirSync(dirname(lab.inventory.keyFile), { recursive: true, mode: 0o700 });
      await runOk(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', `epoch-lab-${name}`, '-f', lab.inventory.keyFile]);
    }

    // Hosts that are no longer wanted go first, then the network, then the upstream and the new hosts.
    // A host is kept only if name, position (address) and flavour all still match the plan.
    const key = (h: { name: string; index: number; flavor: Flavor }) => `${h.name}@${h.index}/${h.flavor}`;
    const wanted = new Set(plan.map(key));
    const extra = lab.hosts.filter((h) => !wanted.has(key(h)));
    if (extra.length > 0) {
      log(`removing ${extra.length} host(s) not in the new plan`);
      await destroyHosts(extra);
      lab.hosts = lab.hosts.filter((h) => wanted.has(key(h)));
      saveState(lab);
    }
    await ensureBridge(lab.slot);
    const labImage = imagePaths(lab.image.hash);
    await ensureUpstream(lab, labImage.caCert, labImage.caKey, log);

    const toCreate: LabHostState[] = [];
    for (const p of plan) {
      const existing = lab.hosts.find((h) => h.name === p.name);
      if (existing && hostRunning(existing)) continue;
      if (existing) {
        await destroyHosts([existing]);
        lab.hosts = lab.hosts.filter((h) => h !== existing);
      }
      const machine = `eplab${lab.slot}-${p.name}`;
      const dir = join(lab.dir, 'hosts', p.name);
      toCreate.push({
        ...p,
        address: hostAddress(lab.slot, p.index),
        netns: machine,
        veth: `ep${lab.slot}h${p.index}`,
        machine,
        dir,
        rootPath: join(dir, 'root'),
        cgroups: hostCgroups(name, machine),
      });
    }
    lab.hosts.push(...toCreate);
    lab.hosts.sort((a, b) => a.index - b.index);
    saveState(lab);
    raiseInotify();
    if (toCreate.length > 0) {
      const started = Date.now();
      log(`starting ${toCreate.length} host(s)`);
      try {
        await mapLimit(toCreate, 6, async (h) => {
          await createHost(lab, h);
          saveState(lab); // the nspawn PID is on disk before the next host starts, should this run be killed
        });
        await mapLimit(toCreate, 8, (h) => waitBooted(h, log));
      } finally {
        saveState(lab);
      }
      log(`${toCreate.length} host(s) up in ${Math.round((Date.now() - started) / 100) / 10} s`);
    }
    writeEtcHosts(lab);
    writeInventory(lab);
    return lab;
  });
}

async function withLabLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const lock = join(labsDir, `${name}.lock`);
  for (let waited = 0; ; waited++) {
    try {
      writeFileSync(lock, `${process.pid} ${tracked(process.pid)?.startTime}\n`, { flag: 'wx' });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const [pid, start] = readFileSync(lock, 'utf8').trim().split(' ');
      if (!pid || !start || !isAlive({ pid: Number(pid), startTime: start })) {
        rmSync(lock, { force: true });
        continue;
      }
      if (waited > 600) throw new Error(`lab ${name} is locked by pid ${pid} (${lock}) for more than 10 min`);
      await sleep(1000);
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lock, { force: true });
  }
}

export const hostRunning = (h: LabHostState) => !!h.nspawn && isAlive(h.nspawn) && !!h.init && isAlive(h.init);

async function createHost(lab: LabState, h: LabHostState): Promise<void> {
  for (const d of ['upper', 'work', 'root']) mkdirSync(join(h.dir, d), { recursive: true, mode: 0o755 });
  await createAttachedNetns(h.netns, h.veth, lab.bridge, [h.address]);
  const root = assertInsideLabHome(h.rootPath, 'mount onto');
  const lowers = h.flavor === 'rhel' ? [lab.image.rhelLayer, lab.image.debianRoot] : [lab.image.debianRoot];
  await mountOverlay(root, lowers, join(h.dir, 'upper'), join(h.dir, 'work'));

  writeInRoot(root, 'etc/hostname', `${h.name}\n`);
  writeInRoot(root, 'etc/machine-id', `${randomBytes(16).toString('hex')}\n`, 0o444);
  writeInRoot(root, 'root/.ssh/authorized_keys', readFileSync(`${lab.inventory.keyFile}.pub`), 0o600);
  const sshDir = join(root, 'etc/ssh');
  if (realpathSync(sshDir) !== sshDir) throw new Error(`${sshDir} is a symlink; refusing to write host keys through it`);
  rmSync(join(sshDir, 'ssh_host_ed25519_key'), { force: true });
  rmSync(join(sshDir, 'ssh_host_ed25519_key.pub'), { force: true });
  await runOk(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', `root@${h.name}`, '-f', join(sshDir, 'ssh_host_ed25519_key')]);

  spawnHost(h);
}

/** Boots the host's root filesystem with systemd-nspawn in its own cgroups and network namespace. */
function spawnHost(h: LabHostState): void {
  const root = assertInsideLabHome(h.rootPath, 'boot');
  for (const cg of h.cgroups) mkdirSync(cg, { recursive: true });
  // A leftover from an earlier host of the same machine name makes nspawn refuse to start.
  rmSync(`/run/systemd/nspawn/propagate/${h.machine}`, { recursive: true, force: true });
  h.nspawn = spawnDetached(
    [
      '/bin/sh', join(assetsDir(), 'start-in-cgroup.sh'), ...h.cgroups.map((c) => join(c, 'cgroup.procs')), '--',
      'systemd-nspawn', '-q', '-b', '--register=no', '--keep-unit', '-D', root, `--network-namespace-path=${netnsPath(h.netns)}`,
      '-M', h.machine, `--hostname=${h.name}`, '--resolv-conf=off', '--timezone=off', '--link-journal=no',
      '--settings=false', '--console=read-only',
      // nspawn drops CAP_NET_ADMIN with --network-namespace-path; hosts need it for nft/iptables (firewall module).
      '--capability=CAP_NET_ADMIN',
    ],
    join(h.dir, 'console.log'),
    { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C', SYSTEMD_LOG_LEVEL: 'warning' },
  );
}

/**
 * Reboots one host as a machine reboots: systemd shuts down (units stop, their ExecStop/ExecStopPost run), the
 * network namespace is replaced by a fresh one (a booted kernel holds no rules, conntrack entries or sockets), and the
 * same root filesystem (its overlay keeps every file written) boots again. Returns when the host runs.
 */
export async function labRebootHost(lab: LabState, hostName: string, log: (m: string) => void = () => {}): Promise<void> {
  const h = lab.hosts.find((x) => x.name === hostName);
  if (!h) throw new Error(`lab ${lab.name}: no host ${JSON.stringify(hostName)}; hosts: ${lab.hosts.map((x) => x.name).join(' ')}`);
  if (!hostRunning(h)) throw new Error(`lab ${lab.name}: host ${hostName} is not running`);
  await withLabLock(lab.name, async () => {
    signal(h.init!, 38 /* SIGRTMIN+4: systemd powers off */);
    const left = await waitGone([h.nspawn!], 60_000);
    if (left.length > 0) throw new Error(`host ${hostName}: still running 60 s after the power-off request (systemd-nspawn pid ${h.nspawn!.pid})`);
    delete h.init;
    delete h.nspawn;
    await createAttachedNetns(h.netns, h.veth, lab.bridge, [h.address]);
    spawnHost(h);
    saveState(lab);
    await waitBooted(h, log);
    saveState(lab);
  });
}

async function waitBooted(h: LabHostState, log: (m: string) => void): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!h.init) {
    if (!h.nspawn || !isAlive(h.nspawn)) throw new Error(`host ${h.name}: systemd-nspawn exited while booting; see ${join(h.dir, 'console.log')}`);
    const pid = findNamespaceInit(h.nspawn.pid);
    const t = pid ? tracked(pid) : null;
    if (t) h.init = t;
    else if (Date.now() > deadline) throw new Error(`host ${h.name}: no container init 30 s after start; see ${join(h.dir, 'console.log')}`);
    else await sleep(100);
  }
  // Until systemd's private bus is up, systemctl answers "offline" at once: retry until the boot settles.
  const bootDeadline = Date.now() + 180_000;
  let r = await execInHost(h, ['systemctl', 'is-system-running', '--wait'], { timeoutMs: 180_000 });
  while (['offline', ''].includes(r.stdout.trim()) && Date.now() < bootDeadline && isAlive(h.init)) {
    await sleep(200);
    r = await execInHost(h, ['systemctl', 'is-system-running', '--wait'], { timeoutMs: bootDeadline - Date.now() });
  }
  let status = r.stdout.trim();
  const failedUnits = async () =>
    (await execInHost(h, ['systemctl', '--failed', '--no-legend', '--plain'], { timeoutMs: 10_000 })).stdout
      .split('\n')
      .map((l) => l.split(' ')[0] as string)
      .filter(Boolean);
  if (status === 'degraded') {
    // On a loaded 2-core machine a unit can time out at boot; restart the failed ones once, and say so.
    const units = await failedUnits();
    log(`host ${h.name}: boot degraded (${units.join(', ')}); restarting those units once`);
    await execInHost(h, ['systemctl', 'reset-failed'], { timeoutMs: 10_000 });
    if (units.length > 0) await execInHost(h, ['systemctl', 'restart', ...units], { timeoutMs: 120_000 });
    status = (await execInHost(h, ['systemctl', 'is-system-running', '--wait'], { timeoutMs: 60_000 })).stdout.trim();
  }
  if (status !== 'running') {
    const failed = await failedUnits();
    throw new Error(
      `host ${h.name}: systemctl is-system-running says ${JSON.stringify(status || r.stderr.trim())}, expected "running"` +
        (failed.length > 0 ? `; failed units: ${failed.join(', ')}` : '') + `; boot log: ${join(h.dir, 'console.log')}`,
    );
  }
}

export interface ExecOptions {
  user?: string;
  stdin?: string | Buffer;
  timeoutMs?: number;
  env?: Record<string, string>;
}

/** Runs argv inside the host (all its namespaces, its root) with a clean environment. */
export function execInHost(h: LabHostState, argv: readonly string[], opts: ExecOptions = {}): Promise<RunResult> {
  if (!h.init || !isAlive(h.init)) {
    return Promise.resolve({ exitCode: null, signal: null, stdout: '', stderr: `host ${h.name} is not running`, timedOut: false });
  }
  const env = [
    'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'LC_ALL=C', 'TERM=dumb',
    `HOME=${opts.user && opts.user !== 'root' ? `/home/${opts.user}` : '/root'}`,
    ...Object.entries(opts.env ?? {}).map(([k, v]) => `${k}=${v}`),
  ];
  const asUser = opts.user && opts.user !== 'root' ? ['runuser', '-u', opts.user, '--'] : [];
  return run(
    ['nsenter', '-t', String(h.init.pid), '-m', '-u', '-i', '-n', '-p', '-C', '-r', '-w', '--', ...asUser, '/usr/bin/env', '-i', ...env, ...argv],
    { stdin: opts.stdin, timeoutMs: opts.timeoutMs ?? 60_000 },
  );
}

/** /etc/hosts of every host: the lab's names, the upstream's names and every host. */
function writeEtcHosts(lab: LabState): void {
  const u = lab.upstream.addresses;
  const lines = [
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    `${lab.controllerAddress}\tcontroller.lab.test controller`,
    `${u.valid}\tupstream.lab.test`,
    `${u.untrusted}\tuntrusted.lab.test`,
    `${u.wrongHost}\tother.lab.test wronghost.lab.test`,
    ...lab.hosts.map((h) => `${h.address}\t${h.name}.lab.test ${h.name}`),
  ];
  for (const h of lab.hosts) {
    if (!mountsUnder(h.rootPath).includes(h.rootPath)) continue;
    writeInRoot(h.rootPath, 'etc/hosts', `${lines.join('\n')}\n`);
  }
}

// ---- upstream ---------------------------------------------------------------------------------------------------

async function ensureUpstream(lab: LabState, caCert: string, caKey: string, log: (m: string) => void): Promise<void> {
  const u = lab.upstream;
  if (u.process && isAlive(u.process) && netnsExists(u.netns)) return;
  if (u.process) signal(u.process, 'SIGKILL');
  const dir = join(lab.dir, 'upstream');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const certs = await upstreamCerts(dir, u.addresses, caCert, caKey);
  u.untrustedCaCert = readFileSync(join(dir, 'untrusted-ca.crt'), 'utf8');
  await createAttachedNetns(u.netns, u.veth, lab.bridge, [u.addresses.valid, u.addresses.untrusted, u.addresses.wrongHost]);
  const logFile = join(dir, 'upstream.log');
  writeFileSync(logFile, '');
  const args = certs.flatMap((c) => ['--listen', `${c.address}:443`, '--cert', c.cert, '--key', c.key]);
  u.process = spawnDetached(
    ['nsenter', `--net=${netnsPath(u.netns)}`, '--', process.execPath, join(assetsDir(), 'upstream-server.mjs'), ...args],
    logFile,
  );
  saveState(lab);
  const deadline = Date.now() + 15_000;
  while ((readFileSync(logFile, 'utf8').match(/^listening /gm) ?? []).length < certs.length) {
    if (!isAlive(u.process) || Date.now() > deadline) {
      throw new Error(`upstream server did not start: ${readFileSync(logFile, 'utf8').trim().split('\n').slice(-3).join(' | ')}`);
    }
    await sleep(50);
  }
  log(`upstream https on ${u.addresses.valid}, ${u.addresses.untrusted}, ${u.addresses.wrongHost} (port 443)`);
}

/** Leaf certs for the three upstream listeners (ECDSA P-256), generated once per lab. */
async function upstreamCerts(
  dir: string,
  a: LabState['upstream']['addresses'],
  caCert: string,
  caKey: string,
): Promise<{ address: string; cert: string; key: string }[]> {
  const untrustedCa = { cert: join(dir, 'untrusted-ca.crt'), key: join(dir, 'untrusted-ca.key') };
  if (!existsSync(untrustedCa.cert)) await generateCa(untrustedCa.cert, untrustedCa.key, 'epoch lab UNTRUSTED CA');
  const specs = [
    { id: 'valid', address: a.valid, cn: 'upstream.lab.test', san: `DNS:upstream.lab.test,DNS:*.lab.test,IP:${a.valid}`, ca: { cert: caCert, key: caKey } },
    { id: 'untrusted', address: a.untrusted, cn: 'untrusted.lab.test', san: `DNS:untrusted.lab.test,IP:${a.untrusted}`, ca: untrustedCa },
    { id: 'wronghost', address: a.wrongHost, cn: 'other.lab.test', san: 'DNS:other.lab.test', ca: { cert: caCert, key: caKey } },
  ];
  const out = [];
  for (const s of specs) {
    const cert = join(dir, `${s.id}.crt`);
    const key = join(dir, `${s.id}.key`);
    if (!existsSync(cert)) {
      const ext = join(dir, `${s.id}.ext`);
      writeFileSync(
        ext,
        `basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=${s.san}\n`,
      );
      writeFileSync(key, '', { mode: 0o600 });
      await runOk(['openssl', 'ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key]);
      const csr = join(dir, `${s.id}.csr`);
      await runOk(['openssl', 'req', '-new', '-key', key, '-subj', `/CN=${s.cn}/O=epoch lab`, '-out', csr]);
      await runOk([
        'openssl', 'x509', '-req', '-in', csr, '-CA', s.ca.cert, '-CAkey', s.ca.key, '-CAcreateserial', '-days', '825',
        '-sha256', '-extfile', ext, '-out', cert,
      ]);
    }
    out.push({ address: s.address, cert, key });
  }
  return out;
}

// ---- down / clean -----------------------------------------------------------------------------------------------

/** Powers hosts off (SIGRTMIN+4 to their init), then kills by PID whatever is left, and removes their resources. */
async function destroyHosts(hosts: LabHostState[]): Promise<void> {
  for (const h of hosts) {
    if (!h.init && h.nspawn && isAlive(h.nspawn)) {
      const pid = findNamespaceInit(h.nspawn.pid);
      const t = pid ? tracked(pid) : null;
      if (t) h.init = t;
    }
    if (h.init) signal(h.init, 38 /* SIGRTMIN+4: systemd powers off */);
  }
  const nspawns = hosts.flatMap((h) => (h.nspawn ? [h.nspawn] : []));
  let left = await waitGone(nspawns, 20_000);
  for (const h of hosts) {
    for (const p of [h.init, h.nspawn]) if (p) signal(p, 'SIGKILL');
    for (const cg of h.cgroups) {
      for (const pid of cgroupPids(cg)) {
        const t = tracked(pid);
        if (t) signal(t, 'SIGKILL');
      }
    }
  }
  left = await waitGone(left, 10_000);
  if (left.length > 0) throw new Error(`processes still alive after SIGKILL: ${left.map((p) => p.pid).join(', ')}`);
  await mapLimit(hosts, 4, async (h) => {
    if (existsSync(h.dir)) {
      for (const m of mountsUnder(assertInsideLabHome(h.dir, 'unmount'))) {
        const r = await run(['umount', m]);
        // nspawn's own mounts of a just-killed host can keep the overlay busy for a moment: detach it instead.
        if (r.exitCode !== 0) await runOk(['umount', '-l', m]);
      }
    }
    await deleteNetns(h.netns);
    await deleteLink(h.veth);
    for (const cg of h.cgroups) removeCgroup(cg);
    rmSync(`/run/systemd/nspawn/propagate/${h.machine}`, { recursive: true, force: true });
    removeTree(h.dir);
  });
}

/** Tears a lab down completely. Safe to repeat; with no lab recorded it does nothing and returns false. */
export async function labDown(name = defaultLabName, log: (m: string) => void = () => {}): Promise<boolean> {
  validateName(name);
  const state = loadState(name);
  if (!state) return false;
  if (process.getuid?.() !== 0) throw new LabUnavailable('the lab needs root to tear down: run it with sudo');
  return withLabLock(name, async () => {
    const lab = loadState(name);
    if (!lab) return false;
    if (lab.hosts.length > 0) log(`stopping ${lab.hosts.length} host(s)`);
    await destroyHosts(lab.hosts);
    lab.hosts = [];
    saveState(lab);
    if (lab.upstream.process) {
      signal(lab.upstream.process, 'SIGTERM');
      if ((await waitGone([lab.upstream.process], 3000)).length > 0) signal(lab.upstream.process, 'SIGKILL');
    }
    await killNetnsPids(lab.upstream.netns);
    await deleteNetns(lab.upstream.netns);
    await deleteLink(lab.upstream.veth);
    await deleteLink(lab.bridge);
    for (const p of labCgroupParents(name)) {
      removeCgroup(p);
      // The shared epoch-lab parent goes too once no lab uses it (ENOTEMPTY/EBUSY while another lab runs).
      try {
        rmdirSync(p.slice(0, p.lastIndexOf('/')));
      } catch {}
    }
    removeInventory(lab);
    releaseSlot(lab);
    removeTree(lab.dir);
    restoreInotify();
    log(`lab ${name} is down`);
    return true;
  });
}

/** Processes still inside a namespace of ours (e.g. an upstream whose state was lost): killed by PID. */
async function killNetnsPids(ns: string): Promise<void> {
  if (!netnsExists(ns)) return;
  const r = await run(['ip', 'netns', 'pids', ns]);
  const procs = r.stdout.split('\n').filter(Boolean).flatMap((p) => tracked(Number(p)) ?? []);
  for (const p of procs) signal(p, 'SIGKILL');
  await waitGone(procs, 5000);
}

/**
 * Removes leftovers of killed runs: every recorded lab in `names` (or all, or those whose owner process died), then
 * stray namespaces, bridges, mounts and nspawn propagate folders of the lab slots involved.
 */
export async function labClean(opts: { names?: string[]; all?: boolean; staleOnly?: boolean }, log: (m: string) => void = () => {}): Promise<string[]> {
  if (process.getuid?.() !== 0) throw new LabUnavailable('the lab needs root to clean up: run it with sudo');
  const recorded = listLabs();
  const targets = opts.all
    ? recorded
    : opts.staleOnly
      ? recorded.filter((n) => {
          const s = loadState(n);
          return !!s?.owner && !isAlive(s.owner);
        })
      : (opts.names ?? [defaultLabName]).filter((n) => recorded.includes(n));
  const slots = new Set<number>();
  for (const name of targets) {
    const s = loadState(name);
    if (s) slots.add(s.slot);
    await labDown(name, log);
  }
  // Labs of dead test runs are removed from their records only: a stray scan could race with a lab that another
  // process is creating in the slot just released. Explicit cleans (`lab clean`) also sweep the slots.
  if (opts.staleOnly) return targets;
  if (opts.all) {
    for (let s = 0; s <= maxSlot; s++) slots.add(s);
  } else {
    // A lab whose state file is gone is still known by its slot file.
    const names = opts.names ?? [defaultLabName];
    if (names.includes(defaultLabName)) slots.add(0);
    for (const f of existsSync(slotsDir) ? readdirSync(slotsDir) : []) {
      if (names.includes(readFileSync(join(slotsDir, f), 'utf8').trim())) slots.add(Number(f));
    }
  }
  const inUse = new Set(listLabs().map((n) => loadState(n)?.slot));
  const strays: string[] = [];
  const nsList = (await run(['ip', 'netns', 'list'])).stdout.split('\n').map((l) => l.split(' ')[0] ?? '');
  for (const slot of slots) {
    if (inUse.has(slot)) continue;
    const prefix = `eplab${slot}-`;
    for (const ns of nsList.filter((n) => n.startsWith(prefix))) {
      await killNetnsPids(ns);
      await deleteNetns(ns);
      strays.push(`netns ${ns}`);
    }
    if (await linkExists(`eplab${slot}`)) {
      await deleteLink(`eplab${slot}`);
      strays.push(`bridge eplab${slot}`);
    }
    const propagate = '/run/systemd/nspawn/propagate';
    if (existsSync(propagate)) {
      for (const d of readdirSync(propagate).filter((n) => n.startsWith(prefix))) {
        rmSync(join(propagate, d), { recursive: true, force: true });
        strays.push(`propagate ${d}`);
      }
    }
    const file = join(slotsDir, String(slot));
    if (existsSync(file) && !loadState(readFileSync(file, 'utf8').trim())) unlinkSync(file);
  }
  // Overlay mounts and folders of labs that have no state any more.
  if (existsSync(labsDir)) {
    for (const d of readdirSync(labsDir, { withFileTypes: true })) {
      if (!d.isDirectory() || existsSync(stateFile(d.name))) continue;
      if (!opts.all && !targets.includes(d.name) && !(opts.names ?? []).includes(d.name)) continue;
      const dir = join(labsDir, d.name);
      // Processes first (by PID, from the lab's cgroups), then mounts, folders and the cgroups themselves.
      const cgroups = labCgroupParents(d.name).filter((cg) => existsSync(cg));
      const procs = cgroups.flatMap(cgroupPids).flatMap((pid) => tracked(pid) ?? []);
      for (const p of procs) signal(p, 'SIGKILL');
      await waitGone(procs, 10_000);
      for (const m of mountsUnder(dir)) {
        const r = await run(['umount', m]);
        if (r.exitCode !== 0) await runOk(['umount', '-l', m]);
        strays.push(`mount ${m}`);
      }
      removeTree(dir);
      strays.push(`folder ${dir}`);
      for (const cg of cgroups) {
        removeCgroup(cg);
        strays.push(`cgroup ${cg}`);
      }
    }
  }
  restoreInotify();
  for (const s of strays) log(`removed stray ${s}`);
  return targets;
}
