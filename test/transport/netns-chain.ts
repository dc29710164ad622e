// A linear chain of real OpenSSH sshd "hosts", each in a network namespace of our own (prefix eptc-):
//
//   controller (root namespace) --link0-- host[0] --link1-- host[1] --link2-- host[2] ...
//
// Each link is its own /30 inside 198.18.206.0/24 (a /28 per chain, chosen from the pid and the chain index, so
// parallel runs do not collide). Only link0 has an end in the root namespace; no namespace has a route beyond its own
// links and none forwards (ip_forward is 0 in a fresh namespace), so host[i] can reach only host[i-1] and host[i+1]
// and the controller only host[0]. Nothing of the machine's own routes, firewall or /etc is touched: sshd gets
// private tmpfs mounts on /run and /var/lib. Teardown kills every process in our namespaces by PID (they are all
// ours), then deletes the namespaces and the root veth end.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sshdConfig, waitForPort } from './netns-sshd';

export interface ChainHost {
  name: string;
  namespace: string;
  /** Its address on the link towards the controller (what the previous hop connects to). */
  address: string;
  port: number;
  /** The interface towards the controller, inside its namespace. */
  uplink: string;
  hostKeyPub: string;
  /** Every process in this host's namespace (the sshd listener and its session processes). */
  pids(): number[];
}

export interface SshChain {
  dir: string;
  clientKey: string;
  /** known_hosts with every host of the chain, `[addr]:port` for ports other than 22. */
  knownHosts: string;
  hosts: ChainHost[];
  /** Runs argv inside a host's namespace (as root, no SSH). */
  nsExec(host: ChainHost, argv: string[], input?: string): string;
  stop(): Promise<void>;
}

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });

function namespacePids(namespace: string): number[] {
  try {
    return execFileSync('ip', ['netns', 'pids', namespace], { stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .split('\n')
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}


/** `hosts`: name and sshd port of each hop, controller side first (at most 4). `index`: 0..3, one per chain at once. */
export async function startSshChain(hosts: { name: string; port: number }[], index: number): Promise<SshChain> {
  if (hosts.length < 1 || hosts.length > 4) throw new Error('startSshChain: 1..4 hosts');
  if (!Number.isInteger(index) || index < 0 || index > 3) throw new Error('startSshChain: index 0..3');
  const id = `${process.pid % 100000}${index}`;
  const base = ((process.pid % 4) * 4 + index) * 16;
  // link i: .base+4i+1 on the controller side, .base+4i+2 on host i.
  const addr = (link: number, side: 1 | 2) => `198.18.206.${base + 4 * link + side}`;
  const vethRoot = `eptc${id}`;
  const dir = mkdtempSync(join(tmpdir(), 'eptc-ssh-'));
  const namespaces: string[] = [];
  const processes: ChildProcess[] = [];

  const stop = async () => {
    for (const ns of namespaces) {
      for (const pid of namespacePids(ns)) {
        try {
          process.kill(pid, 'SIGCONT');
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
    }
    await Promise.all(processes.filter((p) => p.exitCode === null && p.signalCode === null).map((p) => new Promise((r) => p.once('exit', r))));
    try {
      ip('link', 'del', vethRoot);
    } catch {
      // gone with its namespace
    }
    for (const ns of [...namespaces].reverse()) {
      try {
        ip('netns', 'del', ns);
      } catch {
        // deleted already
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    const chain: ChainHost[] = [];
    for (const [i, h] of hosts.entries()) {
      const ns = `eptc-${id}-${h.name}`;
      ip('netns', 'add', ns);
      namespaces.push(ns);
      ip('-n', ns, 'link', 'set', 'lo', 'up');
      const uplink = 'up0';
      if (i === 0) {
        ip('link', 'add', vethRoot, 'type', 'veth', 'peer', 'name', uplink, 'netns', ns);
        ip('addr', 'add', `${addr(0, 1)}/30`, 'dev', vethRoot);
        ip('link', 'set', vethRoot, 'up');
      } else {
        const prev = namespaces[i - 1] as string;
        ip('-n', prev, 'link', 'add', 'down0', 'type', 'veth', 'peer', 'name', uplink, 'netns', ns);
        ip('-n', prev, 'addr', 'add', `${addr(i, 1)}/30`, 'dev', 'down0');
        ip('-n', prev, 'link', 'set', 'down0', 'up');
      }
      ip('-n', ns, 'addr', 'add', `${addr(i, 2)}/30`, 'dev', uplink);
      ip('-n', ns, 'link', 'set', uplink, 'up');
      chain.push({ name: h.name, namespace: ns, address: addr(i, 2), port: h.port, uplink, hostKeyPub: '', pids: () => namespacePids(ns) });
    }

    const clientKey = join(dir, 'id_ed25519');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'epoch-chain-test', '-f', clientKey]);
    writeFileSync(join(dir, 'authorized_keys'), readFileSync(`${clientKey}.pub`, 'utf8'), { mode: 0o600 });

    for (const host of chain) {
      const keyFile = join(dir, `${host.name}_host_key`);
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', keyFile]);
      const config = join(dir, `${host.name}_sshd_config`);
      writeFileSync(
        config,
        sshdConfig({
          listen: `${host.address}:${host.port}`,
          hostKey: keyFile,
          authorizedKeys: join(dir, 'authorized_keys'),
          // The server side never gives up on us by itself: only the client's keepalive is under test.
          extra: ['ClientAliveInterval 0', 'TCPKeepAlive no'],
        }),
      );
      // A private /run (sshd's privilege-separation folder) and /var/lib (the runner's host journal) per host.
      const script = 'mount -t tmpfs -o mode=755 tmpfs /run && mkdir -m 755 /run/sshd && mount -t tmpfs -o mode=755 tmpfs /var/lib && exec /usr/sbin/sshd -D -e -f "$1"';
      const child = spawn('ip', ['netns', 'exec', host.namespace, 'unshare', '-m', '--propagation', 'private', 'sh', '-c', script, 'sh', config], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      child.stderr?.on('data', () => {});
      processes.push(child);
      await waitForPort(host.namespace, host.address, host.port);
      host.hostKeyPub = readFileSync(`${keyFile}.pub`, 'utf8').trim();
    }

    const knownHosts = join(dir, 'known_hosts');
    writeFileSync(
      knownHosts,
      chain.map((h) => `${h.port === 22 ? h.address : `[${h.address}]:${h.port}`} ${h.hostKeyPub.split(' ').slice(0, 2).join(' ')}\n`).join(''),
    );
    const nsExec = (host: ChainHost, argv: string[], input?: string) =>
      execFileSync('ip', ['netns', 'exec', host.namespace, ...argv], { input: input ?? '', stdio: ['pipe', 'pipe', 'pipe'] }).toString();
    return { dir, clientKey, knownHosts, hosts: chain, nsExec, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
