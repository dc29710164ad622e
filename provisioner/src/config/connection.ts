// ansible_* connection variables → ConnectionSpec. Values may be templates (`ansible_host: "{{ ip }}"`); they are
// resolved against the host's own variables. ProxyJump comes from ansible_ssh_common_args / ansible_ssh_extra_args
// (`-o ProxyJump=a,b`, `-J a,b`, or the classic `-o ProxyCommand="ssh -W %h:%p bastion"`).
import { homedir, userInfo } from 'node:os';
import { shellSplit } from '../modules/command/shell-split';
import { Problems, show } from './problems';
import { Resolver } from './templating';
import type { ConnectionSpec, Inventory, InventoryHost } from './types';
import { ansibleBool } from './when';

export interface ConnectionOptions {
  /** --become-password-env NAME: the env var that holds the become password (read by the transport). */
  becomePasswordEnv?: string;
  /** The user when ansible_user is unset (default: the local user, as ssh does). */
  defaultUser?: string;
  /** Extra variables (-e) that override the inventory, as in Ansible. */
  extraVars?: Record<string, unknown>;
}

type Jump = ConnectionSpec['proxyJump'][number];

/** `[user@]host[:port]` or `ssh://[user@]host[:port]`. */
export function parseJumpHost(text: string): Jump {
  const m = /^(?:ssh:\/\/)?(?:([^@\s]+)@)?(\[[^\]]+\]|[^:@\s/]+)(?::(\d+))?\/?$/.exec(text.trim());
  if (!m) throw new Error(`bad ProxyJump host ${JSON.stringify(text)} (expected [user@]host[:port])`);
  const port = m[3] ? Number(m[3]) : 22;
  if (port < 1 || port > 65535) throw new Error(`bad port in ProxyJump host ${JSON.stringify(text)}`);
  const address = m[2]!.replace(/^\[|\]$/g, '');
  return m[1] ? { user: m[1], address, port } : { address, port };
}

export interface SshArgs {
  proxyJump: Jump[];
  knownHostsFile?: string;
}

/** Reads the options we honour out of ssh command-line args; other options are left to the transport's defaults. */
export function parseSshArgs(text: string): SshArgs {
  const words = shellSplit(text);
  const out: SshArgs = { proxyJump: [] };
  const option = (kv: string): void => {
    const m = /^([A-Za-z]+)(?:\s*=\s*|\s+)(.*)$/s.exec(kv.trim());
    if (!m) return;
    const [, key, value] = m as unknown as [string, string, string];
    const k = key.toLowerCase();
    if (k === 'proxyjump') {
      if (value.toLowerCase() !== 'none') out.proxyJump = value.split(',').map(parseJumpHost);
    } else if (k === 'proxycommand') {
      out.proxyJump = [parseProxyCommand(value)];
    } else if (k === 'userknownhostsfile') {
      out.knownHostsFile = value.split(/\s+/)[0];
    }
  };
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (w === '-o') option(words[++i] ?? '');
    else if (w.startsWith('-o')) option(w.slice(2));
    else if (w === '-J') out.proxyJump = (words[++i] ?? '').split(',').map(parseJumpHost);
    else if (w.startsWith('-J')) out.proxyJump = w.slice(2).split(',').map(parseJumpHost);
  }
  return out;
}

/** Only the `ssh [-p PORT] [-l USER] [-q] -W %h:%p [user@]bastion` shape, which is the same as a ProxyJump. */
function parseProxyCommand(command: string): Jump {
  const words = shellSplit(command);
  const fail = (): Error =>
    new Error(`ProxyCommand ${JSON.stringify(command)} is not supported (only "ssh -W %h:%p [user@]bastion"; use ProxyJump)`);
  if (words[0] !== 'ssh' || !words.includes('-W')) throw fail();
  let port: number | undefined;
  let user: string | undefined;
  const rest: string[] = [];
  for (let i = 1; i < words.length; i++) {
    const w = words[i]!;
    if (w === '-W') {
      if (words[++i] !== '%h:%p') throw fail();
    } else if (w === '-p') port = Number(words[++i]);
    else if (w === '-l') user = words[++i];
    else if (w === '-q' || w === '-A' || w === '-T') continue;
    else if (w === '-o' || w === '-i') i++;
    else if (w.startsWith('-')) throw fail();
    else rest.push(w);
  }
  if (rest.length !== 1) throw fail();
  const jump = parseJumpHost(rest[0]!);
  if (port !== undefined) jump.port = port;
  if (user !== undefined && jump.user === undefined) jump.user = user;
  return jump;
}

const firstDefined = (vars: Record<string, unknown>, names: string[]): [string, unknown] | undefined => {
  for (const n of names) if (vars[n] !== undefined && vars[n] !== null) return [n, vars[n]];
  return undefined;
};

/** The ConnectionSpec of one host. Throws ConfigError listing every bad connection variable. */
export function connectionSpecFor(host: InventoryHost, options: ConnectionOptions = {}): ConnectionSpec {
  const problems = new Problems();
  const vars = { ...magicVars(host), ...host.vars, ...(options.extraVars ?? {}) };
  const resolver = new Resolver(vars, host.varLocations);
  const get = (names: string[]): { name: string; value: unknown; location: string } | undefined => {
    const found = firstDefined(vars, names);
    if (!found) return undefined;
    const [name] = found;
    const location = host.varLocations[name] ?? '';
    try {
      return { name, value: resolver.variable(name), location };
    } catch (e) {
      problems.absorb(e);
      return undefined;
    }
  };
  const str = (names: string[]): string | undefined => {
    const v = get(names);
    if (!v) return undefined;
    if (typeof v.value === 'string' || typeof v.value === 'number') return String(v.value);
    problems.add(v.location, `${v.name} of host ${host.name} is ${show(v.value)} (expected a string)`);
    return undefined;
  };

  const connection = str(['ansible_connection']) ?? 'ssh';
  let kind: ConnectionSpec['kind'] = 'ssh';
  if (connection === 'local') kind = 'local';
  else if (!['ssh', 'smart', 'paramiko', 'paramiko_ssh'].includes(connection)) {
    problems.add(host.varLocations.ansible_connection ?? '', `ansible_connection of host ${host.name} is ${show(connection)} (expected ssh or local)`);
  }

  let port = 22;
  const portVar = get(['ansible_port', 'ansible_ssh_port']);
  if (portVar) {
    const n = typeof portVar.value === 'string' && /^\d+$/.test(portVar.value) ? Number(portVar.value) : portVar.value;
    if (typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 65535) port = n;
    else problems.add(portVar.location, `${portVar.name} of host ${host.name} is ${show(portVar.value)} (expected a port number 1-65535)`);
  }

  const spec: ConnectionSpec = {
    kind,
    address: str(['ansible_host', 'ansible_ssh_host']) ?? host.name,
    port,
    user: str(['ansible_user', 'ansible_ssh_user', 'ansible_remote_user']) ?? options.defaultUser ?? localUser(),
    proxyJump: [],
    become: false,
    becomeUser: str(['ansible_become_user', 'ansible_sudo_user']) ?? 'root',
  };
  const key = str(['ansible_ssh_private_key_file', 'ansible_private_key_file']);
  if (key !== undefined) spec.privateKeyFile = key.startsWith('~/') ? homedir() + key.slice(1) : key;

  for (const name of ['ansible_ssh_common_args', 'ansible_ssh_extra_args']) {
    const text = str([name]);
    if (text === undefined) continue;
    try {
      const args = parseSshArgs(text);
      if (args.proxyJump.length > 0) spec.proxyJump = args.proxyJump;
      if (args.knownHostsFile !== undefined) spec.knownHostsFile = args.knownHostsFile;
    } catch (e) {
      if (!(e instanceof Error)) throw e;
      problems.add(host.varLocations[name] ?? '', `${name} of host ${host.name}: ${(e as Error).message}`);
    }
  }

  const become = get(['ansible_become', 'ansible_sudo']);
  if (become) spec.become = ansibleBool(become.value);
  const method = str(['ansible_become_method']);
  if (method !== undefined && method !== 'sudo') {
    problems.add(host.varLocations.ansible_become_method ?? '', `ansible_become_method of host ${host.name} is ${show(method)} (only sudo is supported)`);
  }
  if (options.becomePasswordEnv !== undefined) spec.becomePasswordEnv = options.becomePasswordEnv;
  const password = get(['ansible_become_password', 'ansible_become_pass', 'ansible_sudo_pass']);
  if (password) {
    if (typeof password.value === 'string' || typeof password.value === 'number') {
      // Non-enumerable: never printed, logged or serialised with the spec.
      Object.defineProperty(spec, 'becomePassword', { value: String(password.value), enumerable: false, writable: false });
    } else problems.add(password.location, `${password.name} of host ${host.name} is not a string (expected the password)`);
  }
  problems.throwIfAny();
  return spec;
}

/** ssh's own default: the local user name. */
function localUser(): string {
  try {
    return userInfo().username;
  } catch {
    const fromEnv = process.env.USER ?? process.env.LOGNAME;
    if (fromEnv) return fromEnv;
    throw new Error('no ansible_user is set and the local user name is unknown (set ansible_user)');
  }
}

/** Connection specs for many hosts; every problem of every host in one ConfigError. */
export function connectionSpecsFor(inv: Inventory, hosts: readonly string[], options: ConnectionOptions = {}): Map<string, ConnectionSpec> {
  const problems = new Problems();
  const out = new Map<string, ConnectionSpec>();
  for (const name of hosts) {
    const host = inv.hosts.get(name);
    if (!host) {
      problems.add('', `no host ${JSON.stringify(name)} in the inventory`);
      continue;
    }
    try {
      out.set(name, connectionSpecFor(host, options));
    } catch (e) {
      problems.absorb(e);
    }
  }
  problems.throwIfAny();
  return out;
}

/** The magic variables Ansible defines for every host (those that make sense without a play). */
export function magicVars(host: InventoryHost, inv?: Inventory): Record<string, unknown> {
  const out: Record<string, unknown> = {
    inventory_hostname: host.name,
    inventory_hostname_short: host.name.split('.')[0],
    group_names: host.groups.filter((g) => g !== 'all').sort(),
  };
  if (inv) out.groups = groupsVar(inv);
  return out;
}

const groupsCache = new WeakMap<Inventory, Record<string, string[]>>();

/** Ansible's `groups` magic variable: every group with all its hosts (computed once per inventory). */
function groupsVar(inv: Inventory): Record<string, string[]> {
  let groups = groupsCache.get(inv);
  if (!groups) {
    const built: Record<string, string[]> = {};
    for (const g of inv.groups.keys()) built[g] = [];
    for (const h of inv.hosts.values()) for (const g of h.groups) built[g]?.push(h.name);
    groups = built;
    groupsCache.set(inv, groups);
  }
  return groups;
}

