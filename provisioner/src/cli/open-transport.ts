// Opens the transport for one inventory host: ssh2 (strict host keys, bastions, sudo) or local. Shared by every
// command that talks to hosts, so they all check host keys and take the become password the same way.
import type { ConnectionSpec } from '../config';
import { ConfigError } from '../core/errors';
import type { CommandLogger } from '../transport/command-log';
import { LocalTransport } from '../transport/local-transport';
import { type JumpPool, SshTransport } from '../transport/ssh-transport';
import type { Transport } from '../transport/transport';

/** Host variable naming the known_hosts file for that host (the lab's inventories set it). */
export const knownHostsFileVar = 'epoch_known_hosts_file';

export interface OpenOptions {
  /** Fallback known_hosts (--known-hosts); UserKnownHostsFile in ansible_ssh_common_args or epoch_known_hosts_file win. */
  knownHostsFile: string;
  acceptNewHostKeys: boolean;
  onCommand?: CommandLogger;
  /** Shares one connection per bastion between the hosts behind it. */
  jumpPool?: JumpPool;
}

/** The sudo password for a host: from the inventory (kept in memory only) or the env var the flag names. */
export function becomePasswordOf(spec: ConnectionSpec): string | undefined {
  const inline = (spec as ConnectionSpec & { becomePassword?: string }).becomePassword;
  if (inline !== undefined) return inline;
  if (spec.becomePasswordEnv) {
    const value = process.env[spec.becomePasswordEnv];
    if (value === undefined) throw new ConfigError([{ location: '--become-password-env', message: `environment variable ${spec.becomePasswordEnv} is not set (expected the sudo password)` }]);
    return value;
  }
  return undefined;
}

export async function openTransport(
  name: string,
  spec: ConnectionSpec | undefined,
  hostVars: Readonly<Record<string, unknown>>,
  becomePassword: string | undefined,
  options: OpenOptions,
): Promise<Transport> {
  if (!spec) throw new ConfigError([{ location: name, message: 'no connection settings for this host' }]);
  const become = spec.become ? { user: spec.becomeUser, ...(becomePassword !== undefined && { password: becomePassword }) } : undefined;
  const onCommand = options.onCommand;
  if (spec.kind === 'local') return new LocalTransport({ hostName: name, ...(onCommand && { onCommand }), ...(become && { become }) });
  const knownHostsVar = hostVars[knownHostsFileVar];
  const knownHostsFile = spec.knownHostsFile ?? (typeof knownHostsVar === 'string' && knownHostsVar !== '' ? knownHostsVar : options.knownHostsFile);
  return SshTransport.connect({
    hostName: name,
    target: { address: spec.address, port: spec.port, user: spec.user },
    jumps: spec.proxyJump.map((j) => ({ address: j.address, port: j.port, user: j.user ?? spec.user })),
    ...(spec.privateKeyFile !== undefined && { privateKeyFile: spec.privateKeyFile }),
    knownHostsFile,
    acceptNewHostKeys: options.acceptNewHostKeys,
    ...(become && { become }),
    ...(onCommand && { onCommand }),
    ...(options.jumpPool && { jumpPool: options.jumpPool }),
  });
}
