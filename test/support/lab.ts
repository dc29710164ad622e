// Lab helpers for tests: bring up K real systemd hosts (the `epoch-provision lab` fleet) and run commands in them.
//
// Stable API (other areas' tests rely on it):
//   labSkipReason(): string | undefined
//       Why a lab cannot run here (not root, no netns/overlay, missing tool); pass to test(..., { skip }).
//   startLab({ hosts, flavor?, name? }): Promise<Lab>
//       hosts: number of hosts (1..1000); flavor: 'debian' (default) | 'rhel' | 'mixed' (deb1, rhel1, deb2, ...);
//       name: lab name (default: unique per call, e.g. "t12345-1"); each test lab gets its own slot/subnet, so
//       tests in parallel processes do not collide. The image is built on first use (~2 min) and cached.
//   withLab(opts, async (lab) => { ... }): runs fn and always tears the lab down (even when fn throws).
//   Lab:
//     name, hosts: LabHost[] (name, address, flavor, netns, rootPath, machine), host(name): LabHost
//     controllerAddress             the controller's address on the lab bridge (reachable from every host)
//     upstream: { valid, untrusted, wrongHost }  addresses of the upstream HTTPS service (port 443):
//         valid      -> cert for upstream.lab.test, *.lab.test and the IP, from the lab public CA
//         untrusted  -> cert for untrusted.lab.test from a CA nobody trusts (PEM in untrustedCaCertPem)
//         wrongHost  -> valid cert for other.lab.test only (call it as wronghost.lab.test to get a name mismatch)
//       every host's /etc/hosts has upstream.lab.test, untrusted.lab.test, other.lab.test, wronghost.lab.test,
//       controller.lab.test and <host>.lab.test.
//     labPublicCaCert               path of the lab public CA certificate (trusted by every host)
//     inventoryPath, inventoryDir, sshConfigPath, keyFile, knownHostsFile
//                                   hosts.yml (groups debian/rhel), `ssh -F sshConfigPath HOST CMD`, the key, known_hosts
//     exec(host, argv, { user?, stdin?, timeoutMs?, env? }) -> { exitCode, stdout, stderr, timedOut }
//                                   runs inside the host via nsenter (clean env, LC_ALL=C); never throws on exit != 0
//     execOk(host, argv, opts)      same, throws with the output unless exit 0; returns stdout
//     copyTo(host, localFile, remotePath, mode = 0o644)   copies a file into the host (through stdin)
//     down()                        tears everything down (idempotent)
//   withNetns(prefix, async (pair) => { ... }): two bare namespaces `${prefix}-a-<pid>` / `${prefix}-b-<pid>` joined
//       by a veth (eth0 in each), addresses 198.19.255.1/30 (a) and .2 (b), lo up, no route beyond; nothing in the
//       root namespace. pair.exec(side, argv, opts) runs argv in 'a' or 'b'. Always deleted afterwards (processes in
//       them killed by PID first).
//
// Teardown is guaranteed: withLab/withNetns use finally; labs still up when the test process is about to exit
// (beforeExit) or gets SIGINT/SIGTERM are torn down then; and startLab first cleans labs whose owner process died
// (a killed run). Processes are killed by PID, never by name. `epoch-provision lab clean --all` is the manual
// last resort.
import { readFileSync } from 'node:fs';
import {
  type ExecOptions, type LabFlavor, type LabHostState, type LabState, execInHost, labClean, labDown, labRebootHost, labUp,
  preflight,
} from '../../provisioner/src/lab/lab';
import { type RunResult, run, runOk, tracked } from '../../provisioner/src/lab/proc';

export type { ExecOptions } from '../../provisioner/src/lab/lab';

export interface LabHost {
  name: string;
  address: string;
  flavor: 'debian' | 'rhel';
  netns: string;
  rootPath: string;
  machine: string;
}

export interface ExecResult {
  exitCode: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface Lab {
  name: string;
  hosts: LabHost[];
  host(name: string): LabHost;
  controllerAddress: string;
  upstream: { valid: string; untrusted: string; wrongHost: string };
  labPublicCaCert: string;
  untrustedCaCertPem: string;
  inventoryPath: string;
  inventoryDir: string;
  sshConfigPath: string;
  keyFile: string;
  knownHostsFile: string;
  exec(host: string | LabHost, argv: readonly string[], opts?: ExecOptions): Promise<ExecResult>;
  execOk(host: string | LabHost, argv: readonly string[], opts?: ExecOptions): Promise<string>;
  copyTo(host: string | LabHost, localFile: string, remotePath: string, mode?: number): Promise<void>;
  /** Power off, a fresh network namespace (no rules, no conntrack), boot the same root again; resolves once running. */
  reboot(host: string | LabHost): Promise<void>;
  down(): Promise<void>;
}

export interface StartLabOptions {
  hosts: number;
  flavor?: LabFlavor;
  name?: string;
  log?: (message: string) => void;
}

export function labSkipReason(): string | undefined {
  try {
    preflight();
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

const active = new Set<Lab>();
let counter = 0;
let handlersInstalled = false;

function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('beforeExit', () => {
    if (active.size > 0) void Promise.allSettled([...active].map((l) => l.down()));
  });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      console.error(`test/support/lab: ${sig}: tearing down ${active.size} lab(s)`);
      Promise.allSettled([...active].map((l) => l.down())).finally(() => process.exit(130));
    });
  }
}

function toResult(r: RunResult): ExecResult {
  return { exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr, timedOut: r.timedOut };
}

export async function startLab(opts: StartLabOptions): Promise<Lab> {
  const reason = labSkipReason();
  if (reason) throw new Error(`startLab: ${reason}`);
  installHandlers();
  const owner = tracked(process.pid) ?? undefined;
  // Labs of killed test runs: removing them must not fail this test, but is reported.
  await labClean({ staleOnly: true }, opts.log).catch((e: unknown) => {
    console.error(`startLab: could not clean a stale lab (try \`epoch-provision lab clean --all\`): ${(e as Error).message}`);
  });
  counter += 1;
  const name = opts.name ?? `t${process.pid}-${counter}`;
  let state: LabState;
  try {
    state = await labUp({ count: opts.hosts, flavor: opts.flavor ?? 'debian', name, owner, log: opts.log });
  } catch (e) {
    await labDown(name).catch(() => {});
    throw e;
  }
  const byName = new Map<string, LabHostState>(state.hosts.map((h) => [h.name, h]));
  const resolveHost = (h: string | LabHost): LabHostState => {
    const found = byName.get(typeof h === 'string' ? h : h.name);
    if (!found) throw new Error(`lab ${name}: no host ${JSON.stringify(typeof h === 'string' ? h : h.name)}; hosts: ${[...byName.keys()].join(' ')}`);
    return found;
  };
  let downPromise: Promise<void> | null = null;
  const lab: Lab = {
    name,
    hosts: state.hosts.map((h) => ({
      name: h.name, address: h.address, flavor: h.flavor, netns: h.netns, rootPath: h.rootPath, machine: h.machine,
    })),
    host(n) {
      const h = resolveHost(n);
      return lab.hosts.find((x) => x.name === h.name) as LabHost;
    },
    controllerAddress: state.controllerAddress,
    upstream: { ...state.upstream.addresses },
    labPublicCaCert: state.image.caCert,
    untrustedCaCertPem: state.upstream.untrustedCaCert,
    inventoryPath: state.inventory.hostsFile,
    inventoryDir: state.inventory.dir,
    sshConfigPath: state.inventory.sshConfig,
    keyFile: state.inventory.keyFile,
    knownHostsFile: state.inventory.knownHosts,
    async exec(host, argv, o) {
      return toResult(await execInHost(resolveHost(host), argv, o));
    },
    async execOk(host, argv, o) {
      const r = await execInHost(resolveHost(host), argv, o);
      if (r.exitCode !== 0) {
        throw new Error(
          `${typeof host === 'string' ? host : host.name}: \`${argv.join(' ')}\` exited ${r.exitCode}${r.timedOut ? ' (timed out)' : ''}, expected 0: ${(r.stderr || r.stdout).trim()}`,
        );
      }
      return r.stdout;
    },
    async copyTo(host, localFile, remotePath, mode = 0o644) {
      await lab.execOk(host, ['sh', '-c', 'umask 077 && cat > "$1.tmp" && chmod "$2" "$1.tmp" && mv "$1.tmp" "$1"', 'sh', remotePath, mode.toString(8)], {
        stdin: readFileSync(localFile),
      });
    },
    async reboot(host) {
      await labRebootHost(state, resolveHost(host).name, opts.log);
    },
    down() {
      downPromise ??= labDown(name).then(
        () => {
          active.delete(lab);
        },
        (e: unknown) => {
          downPromise = null; // let a later down() (after hook, exit handler) retry
          throw e;
        },
      );
      return downPromise;
    },
  };
  active.add(lab);
  return lab;
}

export async function withLab<T>(opts: StartLabOptions, fn: (lab: Lab) => Promise<T>): Promise<T> {
  const lab = await startLab(opts);
  try {
    return await fn(lab);
  } finally {
    await lab.down();
  }
}

// ---- bare namespace pairs ---------------------------------------------------------------------------------------

export interface NetnsPair {
  a: { name: string; address: string };
  b: { name: string; address: string };
  exec(side: 'a' | 'b', argv: readonly string[], opts?: { stdin?: string | Buffer; timeoutMs?: number }): Promise<ExecResult>;
}

async function deleteNetnsWithPids(ns: string): Promise<void> {
  const list = await run(['ip', 'netns', 'list']);
  if (!list.stdout.split('\n').some((l) => l.split(' ')[0] === ns)) return;
  const pids = (await run(['ip', 'netns', 'pids', ns])).stdout.split('\n').filter(Boolean);
  for (const p of pids) {
    const t = tracked(Number(p));
    if (t) process.kill(t.pid, 'SIGKILL');
  }
  await runOk(['ip', 'netns', 'del', ns]);
}

export async function withNetns<T>(prefix: string, fn: (pair: NetnsPair) => Promise<T>): Promise<T> {
  if (process.getuid?.() !== 0) throw new Error('withNetns: needs root (use labSkipReason() to skip)');
  const a = { name: `${prefix}-a-${process.pid}`, address: '198.19.255.1' };
  const b = { name: `${prefix}-b-${process.pid}`, address: '198.19.255.2' };
  try {
    for (const ns of [a, b]) {
      await deleteNetnsWithPids(ns.name);
      await runOk(['ip', 'netns', 'add', ns.name]);
      await runOk(['ip', '-n', ns.name, 'link', 'set', 'lo', 'up']);
    }
    await runOk(['ip', '-n', a.name, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', b.name]);
    for (const ns of [a, b]) {
      await runOk(['ip', '-n', ns.name, 'addr', 'add', `${ns.address}/30`, 'dev', 'eth0']);
      await runOk(['ip', '-n', ns.name, 'link', 'set', 'eth0', 'up']);
    }
    const pair: NetnsPair = {
      a,
      b,
      exec: async (side, argv, opts = {}) =>
        toResult(await run(['ip', 'netns', 'exec', (side === 'a' ? a : b).name, ...argv], { stdin: opts.stdin, timeoutMs: opts.timeoutMs })),
    };
    return await fn(pair);
  } finally {
    await deleteNetnsWithPids(a.name);
    await deleteNetnsWithPids(b.name);
  }
}
