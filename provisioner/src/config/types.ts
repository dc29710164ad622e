// Typed results of loading inventories and playbooks (config/ produces them, runner/ consumes them).

export interface InventoryGroup {
  name: string;
  /** Hosts listed directly in this group. */
  hosts: string[];
  children: string[];
  vars: Record<string, unknown>;
  /** Distance from `all` (0) along the longest parent chain; Ansible merges shallower groups first. */
  depth: number;
  /** ansible_group_priority (default 1): among groups of the same depth, a higher priority wins. */
  priority: number;
}

export interface InventoryHost {
  name: string;
  /** Every group the host belongs to, directly or through children, plus `all`. */
  groups: string[];
  /** Merged variables with Ansible's precedence (all < parent group < child group < host). */
  vars: Record<string, unknown>;
  /** `file:line:column` where each merged variable's winning value was defined. */
  varLocations: Record<string, string>;
}

export interface Inventory {
  /** The file or folder it was loaded from. */
  source: string;
  /** In inventory order. */
  hosts: Map<string, InventoryHost>;
  groups: Map<string, InventoryGroup>;
  /** Things Ansible would warn about (e.g. a `[g:children]` entry never defined as a group). */
  warnings: string[];
}

/** How to reach a host, derived from its ansible_* variables. */
export interface ConnectionSpec {
  kind: 'ssh' | 'local';
  address: string;
  port: number;
  user: string;
  privateKeyFile?: string;
  /** Bastions from ansible_ssh_common_args ProxyJump, outermost first. */
  proxyJump: { user?: string; address: string; port: number }[];
  knownHostsFile?: string;
  become: boolean;
  becomeUser: string;
  /** Name of the env var holding the become password; the password itself is never stored. */
  becomePasswordEnv?: string;
  /**
   * A become password written in the inventory (clear text or a decrypted `!vault`), memory only. It is a
   * non-enumerable property, so JSON.stringify/console.log of a ConnectionSpec never shows it.
   */
  becomePassword?: string;
}

export interface Task {
  name: string;
  module: string;
  params: Record<string, unknown>;
  when?: string;
  /** `file:line:column` of the `when:` value, when there is one. */
  whenLocation?: string;
  tags: string[];
  /** `file:line:column` of the task, for error messages. */
  location: string;
  /** `file:line:column` of each parameter value, keyed by its path joined with '.' (e.g. `argv.0`). */
  paramLocations: Record<string, string>;
}

export interface Play {
  name: string;
  /** A host pattern, as in --limit. */
  hosts: string;
  /** Ansible's serial, normalised to a list; [] means all hosts in one batch. */
  serial: (number | string)[];
  maxFailPercentage?: number;
  vars: Record<string, unknown>;
  tasks: Task[];
  location: string;
  /** `file:line:column` of each play variable's value. */
  varLocations: Record<string, string>;
}
