// The in-memory inventory that the INI and YAML parsers fill in, and the Ansible rules applied once everything
// is read: implicit `all`/`ungrouped`, group depth, ansible_group_priority, and variable precedence.
import type { Inventory, InventoryGroup, InventoryHost } from './types';
import type { Problems } from './problems';

export interface RawGroup {
  name: string;
  /** Hosts listed directly in the group, in first-seen order. */
  hosts: string[];
  children: string[];
  parents: string[];
  /** Variables from the inventory file itself (`[g:vars]`, `vars:`). */
  vars: Record<string, unknown>;
  varLocations: Record<string, string>;
  location: string;
  priorityValue?: unknown;
  priorityLocation?: string;
}

export interface RawHost {
  name: string;
  vars: Record<string, unknown>;
  varLocations: Record<string, string>;
  location: string;
}

/** Variables from a group_vars/ or host_vars/ file or folder, already merged in file order. */
export interface VarsLayer {
  vars: Record<string, unknown>;
  varLocations: Record<string, string>;
}

export class InventoryBuilder {
  readonly groups = new Map<string, RawGroup>();
  readonly hosts = new Map<string, RawHost>();
  readonly groupVarsFiles = new Map<string, VarsLayer>();
  readonly hostVarsFiles = new Map<string, VarsLayer>();
  /** group_vars/ and host_vars/ beside the playbook (Ansible reads both; the playbook's rank higher). */
  readonly playGroupVarsFiles = new Map<string, VarsLayer>();
  readonly playHostVarsFiles = new Map<string, VarsLayer>();
  readonly warnings: string[] = [];

  constructor(readonly problems: Problems) {
    this.addGroup('all', '');
    this.addGroup('ungrouped', '');
    this.addChild('all', 'ungrouped', '');
  }

  addGroup(name: string, location: string): RawGroup {
    let group = this.groups.get(name);
    if (!group) {
      group = { name, hosts: [], children: [], parents: [], vars: {}, varLocations: {}, location };
      this.groups.set(name, group);
    }
    return group;
  }

  addChild(parent: string, child: string, location: string): void {
    const p = this.addGroup(parent, location);
    const c = this.addGroup(child, location);
    if (parent === child || this.isDescendant(child, parent)) {
      this.problems.add(location, `adding group ${JSON.stringify(child)} as a child of ${JSON.stringify(parent)} creates a loop (expected a tree of groups)`);
      return;
    }
    if (!p.children.includes(child)) p.children.push(child);
    if (!c.parents.includes(parent)) c.parents.push(parent);
  }

  /** True when `maybeDescendant` is reachable from `group` through children. */
  private isDescendant(group: string, maybeDescendant: string): boolean {
    const seen = new Set<string>();
    const stack = [group];
    while (stack.length > 0) {
      const g = stack.pop()!;
      if (g === maybeDescendant) return true;
      if (seen.has(g)) continue;
      seen.add(g);
      stack.push(...(this.groups.get(g)?.children ?? []));
    }
    return false;
  }

  addHost(group: string, name: string, location: string): RawHost {
    let host = this.hosts.get(name);
    if (!host) {
      host = { name, vars: {}, varLocations: {}, location };
      this.hosts.set(name, host);
    }
    const g = this.addGroup(group, location);
    if (!g.hosts.includes(name)) g.hosts.push(name);
    return host;
  }

  setHostVar(host: RawHost, key: string, value: unknown, location: string): void {
    host.vars[key] = value;
    host.varLocations[key] = location;
  }

  setGroupVar(group: string, key: string, value: unknown, location: string): void {
    const g = this.addGroup(group, location);
    if (key === 'ansible_group_priority') {
      // Ansible turns it into the group's priority instead of a variable
      g.priorityValue = value;
      g.priorityLocation = location;
      return;
    }
    g.vars[key] = value;
    g.varLocations[key] = location;
  }

  /** Applies Ansible's reconcile step and precedence rules, and returns the finished inventory. */
  finish(source: string): Inventory {
    // Groups with no parent hang under `all`; a host in no group but `all` is `ungrouped`.
    for (const group of this.groups.values()) {
      if (group.name !== 'all' && group.parents.length === 0) this.addChild('all', group.name, group.location);
    }
    const ungrouped = this.groups.get('ungrouped')!;
    const inSomeGroup = new Set<string>();
    for (const group of this.groups.values()) {
      if (group.name === 'all' || group.name === 'ungrouped') continue;
      for (const h of group.hosts) inSomeGroup.add(h);
    }
    ungrouped.hosts = [...this.hosts.keys()].filter((h) => !inSomeGroup.has(h));
    const all = this.groups.get('all')!;
    all.hosts = all.hosts.filter((h) => !inSomeGroup.has(h) && !ungrouped.hosts.includes(h));

    const depth = this.depths();
    const priority = new Map<string, number>();
    for (const group of this.groups.values()) {
      const raw = group.priorityValue;
      let p = 1;
      if (raw !== undefined) {
        const n = typeof raw === 'string' && /^-?\d+$/.test(raw.trim()) ? Number(raw) : raw;
        if (typeof n === 'number' && Number.isInteger(n)) p = n;
        else {
          this.problems.add(
            group.priorityLocation ?? group.location,
            `ansible_group_priority of group ${JSON.stringify(group.name)} is ${JSON.stringify(raw)} (expected an integer)`,
          );
        }
      }
      priority.set(group.name, p);
    }

    const groups = new Map<string, InventoryGroup>();
    for (const g of this.groups.values()) {
      groups.set(g.name, {
        name: g.name,
        hosts: [...g.hosts],
        children: [...g.children],
        vars: { ...g.vars },
        depth: depth.get(g.name) ?? 0,
        priority: priority.get(g.name) ?? 1,
      });
    }

    const memberOf = this.membership();
    const hosts = new Map<string, InventoryHost>();
    for (const raw of this.hosts.values()) {
      const hostGroups = [...this.groups.keys()].filter((g) => g === 'all' || memberOf.get(g)?.has(raw.name));
      const sorted = sortGroups(hostGroups.map((name) => groups.get(name)!));
      const vars: Record<string, unknown> = {};
      const varLocations: Record<string, string> = {};
      const layer = (l: VarsLayer | undefined): void => {
        if (!l) return;
        for (const [k, v] of Object.entries(l.vars)) {
          vars[k] = v;
          varLocations[k] = l.varLocations[k] ?? '';
        }
      };
      // Ansible's default VARIABLE_PRECEDENCE: inventory-file group vars (all, then groups by depth, priority,
      // name), then group_vars/all (inventory's, then playbook's), then group_vars/<group> in the same order
      // (inventory's, then playbook's), then host vars, then host_vars/ (inventory's, then playbook's).
      for (const g of sorted) layer(this.groups.get(g.name));
      layer(this.groupVarsFiles.get('all'));
      layer(this.playGroupVarsFiles.get('all'));
      for (const g of sorted) if (g.name !== 'all') layer(this.groupVarsFiles.get(g.name));
      for (const g of sorted) if (g.name !== 'all') layer(this.playGroupVarsFiles.get(g.name));
      layer(raw);
      layer(this.hostVarsFiles.get(raw.name));
      layer(this.playHostVarsFiles.get(raw.name));
      hosts.set(raw.name, { name: raw.name, groups: hostGroups, vars, varLocations });
    }

    for (const name of this.groupVarsFiles.keys()) {
      if (!this.groups.has(name)) this.warnings.push(`group_vars for ${JSON.stringify(name)}: no such group in the inventory`);
    }
    for (const name of this.hostVarsFiles.keys()) {
      if (!this.hosts.has(name)) this.warnings.push(`host_vars for ${JSON.stringify(name)}: no such host in the inventory`);
    }
    return { source, hosts, groups, warnings: this.warnings };
  }

  /** Longest distance from `all`, as Ansible's Group.depth. */
  private depths(): Map<string, number> {
    const depth = new Map<string, number>([['all', 0]]);
    const visit = (name: string, d: number, seen: Set<string>): void => {
      if (seen.has(name)) return;
      if ((depth.get(name) ?? -1) < d) depth.set(name, d);
      const next = new Set(seen).add(name);
      for (const child of this.groups.get(name)?.children ?? []) visit(child, d + 1, next);
    };
    visit('all', 0, new Set());
    return depth;
  }

  /** Every host of each group, directly or through children. */
  private membership(): Map<string, Set<string>> {
    const memo = new Map<string, Set<string>>();
    const hostsOf = (name: string, stack: Set<string>): Set<string> => {
      const known = memo.get(name);
      if (known) return known;
      const g = this.groups.get(name);
      const out = new Set<string>(g?.hosts ?? []);
      if (name === 'all') for (const h of this.hosts.keys()) out.add(h);
      if (!stack.has(name)) {
        const next = new Set(stack).add(name);
        for (const child of g?.children ?? []) for (const h of hostsOf(child, next)) out.add(h);
      }
      memo.set(name, out);
      return out;
    };
    for (const name of this.groups.keys()) hostsOf(name, new Set());
    return memo;
  }
}

/** Ansible's sort_groups: by depth, then ansible_group_priority, then name; later entries win when merging. */
export function sortGroups<T extends { name: string; depth: number; priority: number }>(groups: T[]): T[] {
  return [...groups].sort((a, b) => a.depth - b.depth || a.priority - b.priority || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
