// `inventory --list`: the resolved inventory in the shape of `ansible-inventory --list` (ansible-core 2.11+):
// every group with its direct `hosts` and `children` (empty keys and empty groups dropped; `all` lists no hosts),
// and `_meta.hostvars` with each host's merged variables (hosts without variables are left out).
// Templates stay unresolved and undecrypted vault values print as {"__ansible_vault": "..."}, as Ansible does.
// Keys are sorted and indented by 4, like Ansible's json.dumps(sort_keys=True, indent=4).
import { matchPattern } from './patterns';
import type { Inventory } from './types';

/** Variables Ansible computes per host and ansible-inventory leaves out of its output. */
const internalVars = new Set([
  'ansible_config_file', 'ansible_facts', 'ansible_forks', 'ansible_inventory_sources', 'ansible_limit',
  'ansible_playbook_python', 'ansible_run_tags', 'ansible_skip_tags', 'ansible_verbosity', 'ansible_version',
  'inventory_dir', 'inventory_file', 'inventory_hostname', 'inventory_hostname_short', 'groups', 'group_names',
  'omit', 'hostvars', 'playbook_dir', 'play_hosts', 'role_names', 'ungrouped',
]);

interface GroupEntry {
  hosts?: string[];
  children?: string[];
}

export function inventoryList(inv: Inventory, limit?: string): Record<string, unknown> {
  const available = new Set(limit?.trim() ? matchPattern(inv, limit).hosts : inv.hosts.keys());
  const results: Record<string, unknown> = {};
  const seen = new Set<string>();
  const formatGroup = (name: string): void => {
    const group = inv.groups.get(name);
    if (!group) return;
    const entry: GroupEntry = {};
    if (name !== 'all') entry.hosts = group.hosts.filter((h) => available.has(h));
    entry.children = [];
    results[name] = entry;
    for (const child of group.children) {
      entry.children.push(child);
      if (!seen.has(child)) {
        seen.add(child);
        formatGroup(child);
      }
    }
    if (entry.hosts?.length === 0) delete entry.hosts;
    if (entry.children.length === 0) delete entry.children;
    if (Object.keys(entry).length === 0) delete results[name];
  };
  formatGroup('all');
  const hostvars: Record<string, unknown> = {};
  for (const host of inv.hosts.values()) {
    if (!available.has(host.name)) continue;
    const vars = Object.fromEntries(Object.entries(host.vars).filter(([k]) => !internalVars.has(k)));
    if (Object.keys(vars).length > 0) hostvars[host.name] = vars;
  }
  results._meta = { hostvars };
  return results;
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === 'object') {
    const json = (value as { toJSON?: () => unknown }).toJSON;
    if (typeof json === 'function') return sortKeys(json.call(value));
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, sortKeys((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}

export function formatInventoryList(inv: Inventory, limit?: string): string {
  return JSON.stringify(sortKeys(inventoryList(inv, limit)), null, 4);
}
