// Typed results of loading inventories and playbooks (config/ produces them, runner/ consumes them).

export interface InventoryGroup {
  name: string;
  /** Hosts listed directly in this group. */
  hosts: string[];
  children: string[];
  vars: Record<string, unknown>;
}

export interface InventoryHost {
  name: string;
  /** Every group the host belongs to, directly or through children, plus `all`. */
  groups: string[];
  /** Merged variables with Ansible's precedence (all < parent group < child group < host). */
  vars: Record<string, unknown>;
}

export interface Inventory {
  /** The file or folder it was loaded from. */
  source: string;
  /** In inventory order. */
  hosts: Map<string, InventoryHost>;
  groups: Map<string, InventoryGroup>;
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
}

export interface Task {
  name: string;
  module: string;
  params: Record<string, unknown>;
  when?: string;
  tags: string[];
  /** `file:line:column` of the task, for error messages. */
  location: string;
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
}
