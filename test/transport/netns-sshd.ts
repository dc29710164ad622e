// Test scaffolding until the shared lab exists: real OpenSSH sshd processes inside network namespaces of our own
// (prefix eprn-, addresses from 198.18.201.0/24). Root namespace gets only a veth end with a 198.18.201.x/30 address;
// the second namespace is reachable only through the first (for ProxyJump tests). Everything is torn down by PID/name.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface NetnsSshd {
  address: string;
  port: number;
  namespace: string;
  hostKeyPub: string;
  /** Restarts this sshd with a fresh host key (to simulate a reinstalled or impersonated host). */
  rekey(): Promise<void>;
}

export interface NetnsSshLab {
  dir: string;
  clientKey: string;
  clientKeyPub: string;
  /** A known_hosts file listing both sshds' host keys. */
  knownHosts: string;
  bastion: NetnsSshd;
  /** The controller's end of the link to the bastion's namespace. */
  bastionLink: string;
  /** Only reachable through the bastion. */
  inner: NetnsSshd;
  stop(): Promise<void>;
}

export function skipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root to create network namespaces';
  for (const tool of ['/usr/sbin/sshd', '/usr/bin/ssh-keygen', '/usr/sbin/ip', '/usr/bin/unshare']) {
    try {
      execFileSync(tool, ['-V'], { stdio: 'ignore' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return `${tool} is not installed`;
    }
  }
  return undefined;
}

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });

/** sshd_config for a test sshd: key auth for root only, no PAM, no pid file (and no SFTP: nothing uses it); `extra` lines before the rest. */
export function sshdConfig(o: { listen: string; hostKey: string; authorizedKeys: string; extra?: string[] }): string {
  return [
    `ListenAddress ${o.listen}`,
    `HostKey ${o.hostKey}`,
    `AuthorizedKeysFile ${o.authorizedKeys}`,
    'PermitRootLogin prohibit-password',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'StrictModes no',
    'UsePAM no',
    'PidFile none',
    'AllowTcpForwarding yes',
    ...(o.extra ?? []),
    'LogLevel ERROR',
    '',
  ].join('\n');
}

/** Sends `signal` to each pid, ignoring the ones that exited meanwhile. */
export function signalAll(pids: readonly number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // exited meanwhile
    }
  }
}

export async function waitForPort(namespace: string, address: string, port: number): Promise<void> {
  for (let i = 0; i < 50; i++) {
    try {
      const out = execFileSync('ip', ['netns', 'exec', namespace, 'ss', '-Hltn', `sport = :${port}`]).toString();
      if (out.includes(address)) return;
    } catch {
      // ss not ready yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`sshd in ${namespace} did not listen on ${address}:${port} within 5 s`);
}

export async function startNetnsSshLab(): Promise<NetnsSshLab> {
  const id = `${process.pid % 10000}`;
  const nsA = `eprn-a${id}`;
  const nsB = `eprn-b${id}`;
  // A /30 per link inside 198.18.201.0/24, chosen from the pid so parallel test files do not collide.
  const base = (process.pid % 30) * 8;
  const addr = (n: number) => `198.18.201.${base + n}`;
  const vethRoot = `eprnr${id}`;
  const dir = mkdtempSync(join(tmpdir(), 'eprn-ssh-'));
  const processes: ChildProcess[] = [];
  const created: string[] = [];

  const cleanup = async () => {
    for (const p of processes) if (p.pid && p.exitCode === null) p.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 100));
    try {
      ip('link', 'del', vethRoot);
    } catch {
      // already gone with its namespace
    }
    for (const ns of created.reverse()) {
      try {
        ip('netns', 'del', ns);
      } catch {
        // already deleted
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    ip('netns', 'add', nsA);
    created.push(nsA);
    ip('netns', 'add', nsB);
    created.push(nsB);
    ip('link', 'add', vethRoot, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', nsA);
    ip('addr', 'add', `${addr(1)}/30`, 'dev', vethRoot);
    ip('link', 'set', vethRoot, 'up');
    ip('-n', nsA, 'addr', 'add', `${addr(2)}/30`, 'dev', 'eth0');
    ip('-n', nsA, 'link', 'set', 'eth0', 'up');
    ip('-n', nsA, 'link', 'set', 'lo', 'up');
    ip('-n', nsA, 'link', 'add', 'inner0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', nsB);
    ip('-n', nsA, 'addr', 'add', `${addr(5)}/30`, 'dev', 'inner0');
    ip('-n', nsA, 'link', 'set', 'inner0', 'up');
    ip('-n', nsB, 'addr', 'add', `${addr(6)}/30`, 'dev', 'eth0');
    ip('-n', nsB, 'link', 'set', 'eth0', 'up');
    ip('-n', nsB, 'link', 'set', 'lo', 'up');

    const clientKey = join(dir, 'id_ed25519');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'epoch-test', '-f', clientKey]);
    const clientKeyPub = readFileSync(`${clientKey}.pub`, 'utf8');
    writeFileSync(join(dir, 'authorized_keys'), clientKeyPub, { mode: 0o600 });

    const startSshd = async (name: string, namespace: string, address: string, port: number): Promise<NetnsSshd> => {
      let current: ChildProcess | undefined;
      const keyFile = join(dir, `${name}_host_key`);
      const start = async () => {
        rmSync(keyFile, { force: true });
        rmSync(`${keyFile}.pub`, { force: true });
        execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', keyFile]);
        const config = join(dir, `${name}_sshd_config`);
        writeFileSync(config, sshdConfig({ listen: `${address}:${port}`, hostKey: keyFile, authorizedKeys: join(dir, 'authorized_keys') }));
        // sshd needs its privilege-separation folder /run/sshd: give it a private tmpfs /run instead of touching the
        // host's. These "hosts" share this machine's file system, so /var/lib (where the runner keeps its host journal)
        // is a private tmpfs too: nothing a test applies lands in the real /var/lib.
        const script = 'mount -t tmpfs -o mode=755 tmpfs /run && mkdir -m 755 /run/sshd && mount -t tmpfs -o mode=755 tmpfs /var/lib && exec /usr/sbin/sshd -D -e -f "$1"';
        const child = spawn('ip', ['netns', 'exec', namespace, 'unshare', '-m', '--propagation', 'private', 'sh', '-c', script, 'sh', config], { stdio: ['ignore', 'ignore', 'pipe'] });
        child.stderr?.on('data', () => {});
        processes.push(child);
        current = child;
        await waitForPort(namespace, address, port);
        sshd.hostKeyPub = readFileSync(`${keyFile}.pub`, 'utf8').trim();
      };
      const sshd: NetnsSshd = {
        address,
        port,
        namespace,
        hostKeyPub: '',
        rekey: async () => {
          const old = current;
          if (old?.pid) {
            old.kill('SIGTERM');
            await new Promise((r) => old.once('exit', r));
          }
          await start();
        },
      };
      await start();
      return sshd;
    };

    const bastion = await startSshd('bastion', nsA, addr(2), 22);
    const inner = await startSshd('inner', nsB, addr(6), 2222);
    const knownHosts = join(dir, 'known_hosts');
    const keyOf = (pub: string) => pub.split(' ').slice(0, 2).join(' ');
    writeFileSync(knownHosts, `${bastion.address} ${keyOf(bastion.hostKeyPub)}\n[${inner.address}]:${inner.port} ${keyOf(inner.hostKeyPub)}\n`);
    return { dir, clientKey, clientKeyPub, knownHosts, bastion, bastionLink: vethRoot, inner, stop: cleanup };
  } catch (err) {
    await cleanup();
    throw err;
  }
}
